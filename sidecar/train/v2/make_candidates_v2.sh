#!/usr/bin/env bash
# The candidate stage of lung-nodule-demo 2.1: candidate patches from the generator-v2 studies of
# make_data_v2.sh (training studies with 6 jittered patches per nodule; validation studies as the
# detector finds them), the classifier trained (train_candidates.py), installed into the model
# (install_candidates.py), the reporting threshold fitted on the validation studies and the figures
# measured on the held-out ones (evaluate_v2.sh's sets).
#
#   sidecar/train/v2/make_candidates_v2.sh [MINUTES]      # from the repository root; default 25
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT="${DATA_V2:-sidecar/train/.data/v2}"
RAW="$OUT/raw"
CAND="$OUT/cand"
MINUTES="${1:-25}"
mkdir -p "$CAND"
dump() { deno run -A sidecar/train/v2/candidates_dump.ts "$@" >/dev/null; }
# Two halves side by side (one per core): symlinked study folders.
split() {
  local from="$1" into="$2" i=0
  rm -rf "$into" && mkdir -p "$into/a" "$into/b"
  for d in "$from"/*/; do
    d="$(cd "$d" && pwd)"
    if ((i % 2 == 0)); then ln -s "$d" "$into/a/"; else ln -s "$d" "$into/b/"; fi
    i=$((i + 1))
  done
}
[ -f "$CAND/train.u8" ] || {
  split "$RAW/train" "$CAND/split-train"
  dump "$CAND/split-train/a" --out "$CAND/train_a" --jitter 6 &
  dump "$CAND/split-train/b" --out "$CAND/train_b" --jitter 6
  wait
  /usr/bin/python3 sidecar/train/v2/concat_dumps.py "$CAND/train" "$CAND/train_a" "$CAND/train_b"
}
[ -f "$CAND/val.u8" ] || {
  split "$RAW/val" "$CAND/split-val"
  dump "$CAND/split-val/a" --out "$CAND/val_a" &
  dump "$CAND/split-val/b" --out "$CAND/val_b"
  wait
  /usr/bin/python3 sidecar/train/v2/concat_dumps.py "$CAND/val" "$CAND/val_a" "$CAND/val_b"
}
(cd sidecar/train/v2 && /usr/bin/python3 train_candidates.py --train "../../../$CAND/train" \
  --val "../../../$CAND/val" --minutes "$MINUTES" --out "../../../$CAND/model")
/usr/bin/python3 sidecar/train/v2/install_candidates.py "$CAND/model"
# The reporting threshold on the validation studies and 20 more (seeds 513-532): the highest that
# finds as many nodules as any within 0.5 false findings per scan. Then the figures on the
# held-out studies.
[ -d "$RAW/val2" ] || {
  deno run -A dicom/synth/main.ts --generator v2 --out "$RAW/val2" --studies 10 --seed 513 >/dev/null &
  deno run -A dicom/synth/main.ts --generator v2 --out "$RAW/val2" --studies 10 --seed 523 >/dev/null
  wait
}
deno run -A sidecar/train/v2/froc.ts "$RAW/val" "$RAW/val2" --fit-calibration --max-fp 0.5 \
  --json "$OUT/val.json"
deno run -A sidecar/train/v2/froc.ts "$RAW/test" "$RAW/test0" --json "$OUT/test.json"
[ -d sidecar/train/.data/v1test ] ||
  deno run -A dicom/synth/main.ts --generator v1 --out sidecar/train/.data/v1test --studies 20 --seed 9001 --slices 100 >/dev/null
deno run -A sidecar/train/v2/froc.ts sidecar/train/.data/v1test --json "$OUT/v1test.json"
/usr/bin/python3 sidecar/train/v2/install_candidates.py "$CAND/model" \
  --metrics "heldOutV2=$OUT/test.json" "heldOutV1=$OUT/v1test.json"
