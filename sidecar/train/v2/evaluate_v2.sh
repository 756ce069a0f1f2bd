#!/usr/bin/env bash
# Installs the trained model 2.0 and measures it through the sidecar's own code (froc.ts):
# calibration and reporting threshold fitted on the validation studies, then the figures on the
# held-out test studies (generator v2, with and without nodules) and on generator-v1 studies.
#
#   sidecar/train/v2/evaluate_v2.sh            # after make_data_v2.sh and train_v2.py
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT="${DATA_V2:-sidecar/train/.data/v2}"
MODEL=sidecar/models/lung-nodule-demo
mkdir -p "$MODEL"
cp "$OUT/model/model.onnx" "$MODEL/model.onnx"
/usr/bin/python3 sidecar/train/v2/manifest_v2.py "$OUT/cache/training.json"
deno run -A sidecar/train/v2/froc.ts "$OUT/raw/val" --fit-calibration --max-fp 0.5 --json "$OUT/val.json"
deno run -A sidecar/train/v2/froc.ts "$OUT/raw/test" "$OUT/raw/test0" --json "$OUT/test.json"
[ -d sidecar/train/.data/v1test ] ||
  deno run -A dicom/synth/main.ts --generator v1 --out sidecar/train/.data/v1test --studies 20 --seed 9001 --slices 100 >/dev/null
deno run -A sidecar/train/v2/froc.ts sidecar/train/.data/v1test --json "$OUT/v1test.json"
/usr/bin/python3 sidecar/train/v2/manifest_v2.py "$OUT/cache/training.json" \
  --metrics "heldOutV2=$OUT/test.json" "heldOutV1=$OUT/v1test.json"
