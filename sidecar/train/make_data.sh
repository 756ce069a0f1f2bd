#!/usr/bin/env bash
# Generates the synthetic chest CT studies the lung-nodule demo model is trained and measured on,
# with `deno task synth` (DICOM Part 10 + truth.json per study), then caches them preprocessed.
#
#   sidecar/train/make_data.sh            # from the repository root
#
# Seeds (disjoint ranges; `--studies N --seed S` uses seeds S .. S+N-1):
#   train  1..24      default lesion count (seeded 1-3 per study)
#   train  101..124   5 lesions per study (more positives to learn from)
#   val    501..506   default lesion count (checkpoint choice; never used for the reported figures)
#   test   9001..9020 default lesion count (held out: the reported figures)
#   test5  9101..9110 5 lesions per study (held out: more, and more crowded, lesions)
#   test0  9201..9210 no lesion (held out: false positives on lesion-free studies)
# Every study: 100 slices of 512x512, 2.5 mm apart, ~0.7 mm pixels (the generator's defaults).
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA="${DATA:-sidecar/train/.data}"
PY="${PY:-/usr/bin/python3}"

synth() { # split seed studies [lesions]
  local split=$1 seed=$2 studies=$3 lesions=${4:-}
  deno task synth --out "$DATA/raw/$split" --studies "$studies" --seed "$seed" \
    --slices 100 --size 512 ${lesions:+--lesions "$lesions"} >/dev/null
}

rm -rf "$DATA/raw" "$DATA/cache"
synth train 1 24
synth train 101 24 5
synth val 501 6
synth test 9001 20
synth test5 9101 10 5
synth test0 9201 10 0
for split in train val; do
  "$PY" sidecar/train/prepare.py "$DATA/raw/$split" "$DATA/cache/$split"
done
echo "studies: $(ls "$DATA/raw/train" | wc -l) train, $(ls "$DATA/raw/val" | wc -l) val," \
  "$(ls "$DATA/raw/test" | wc -l)+$(ls "$DATA/raw/test5" | wc -l)+$(ls "$DATA/raw/test0" | wc -l) test in $DATA/raw; training cache in $DATA/cache"
