#!/usr/bin/env bash
# Generates the generator-v2 chest CT studies that lung-nodule-demo 2.0 is trained and measured on
# (`deno task synth --generator v2`: DICOM + truth.json + lungs.nii.gz + nodules.nii.gz per study,
# scanner settings seeded per study), then caches the training and validation sets for
# train_v2.py. Two generators run side by side (one per core).
#
#   sidecar/train/v2/make_data_v2.sh            # from the repository root
#
# Seeds (disjoint; `--studies N --seed S` uses seeds S .. S+N-1):
#   train   1..60       seeded 0-8 nodules, seeded scanner
#   train   61..72      a mass (35-60 mm) besides the seeded nodules
#   val     501..512    seeded (checkpoint choice and calibration; never in the figures)
#   test    9001..9040  seeded                        } the reported figures
#   test0   9201..9210  no nodules                    }
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT="${DATA_V2:-sidecar/train/.data/v2}"
RAW="$OUT/raw"
synth() { deno run --allow-all dicom/synth/main.ts --generator v2 "$@" >/dev/null; }
mkdir -p "$RAW"
[ -d "$RAW/train" ] || {
  synth --out "$RAW/train" --studies 30 --seed 1 &
  synth --out "$RAW/train" --studies 30 --seed 31
  wait
  synth --out "$RAW/train" --studies 12 --seed 61 --mass
}
[ -d "$RAW/val" ] || synth --out "$RAW/val" --studies 12 --seed 501
[ -d "$RAW/test" ] || {
  synth --out "$RAW/test" --studies 20 --seed 9001 &
  synth --out "$RAW/test" --studies 20 --seed 9021
  wait
}
[ -d "$RAW/test0" ] || synth --out "$RAW/test0" --studies 10 --seed 9201 --nodules 0
for split in train val; do
  /usr/bin/python3 sidecar/train/v2/prepare_v2.py "$RAW/$split" "$OUT/cache/$split" --jobs 2
done
