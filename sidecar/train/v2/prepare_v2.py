"""Caches generator-v2 studies for training: per study the preprocessed model planes (float16,
S x 256 x 256), the nodule-and-mass target (fraction of each model pixel inside one), the lung mask
on the model grid, the slice spacing, and each lesion's slices and centre on the model grid.

    /usr/bin/python3 sidecar/train/v2/prepare_v2.py RAW_DIR CACHE_DIR [--jobs 2]
"""

import argparse
import json
import os
from multiprocessing import Pool

import numpy as np

from common_v2 import SIZE, area_resize, list_studies, load_study, preprocess


def prepare(args):
    study, cache = args
    out = os.path.join(cache, os.path.basename(study) + ".npz")
    if os.path.exists(out):
        return f"{os.path.basename(study)} cached"
    hu, spacing, truth, lungs, nodules = load_study(study)
    if nodules is None or lungs is None:
        raise SystemExit(f"{study}: lungs.nii.gz and nodules.nii.gz are needed")
    lesions = []
    sy, sx = SIZE / hu.shape[1], SIZE / hu.shape[2]
    for label in [int(v) for v in np.unique(nodules) if v]:
        z, r, c = np.nonzero(nodules == label)
        lesions.append(
            {
                "label": label,
                "mass": label >= 100,
                "slices": [int(z.min()), int(z.max())],
                "center": [float((r.mean() + 0.5) * sy - 0.5), float((c.mean() + 0.5) * sx - 0.5)],
                "voxels": int(z.size),
            }
        )
    np.savez(
        out,
        slices=preprocess(hu).astype(np.float16),
        target=area_resize(nodules > 0).astype(np.float16),
        lung=(area_resize(lungs > 0) >= 0.5),
        slice_mm=spacing[2],
        lesions=json.dumps(lesions),
        seed=int(truth.get("seed", 0)),
    )
    return f"{os.path.basename(study)} slices={hu.shape[0]} lesions={len(lesions)} slice={spacing[2]:.3g}mm"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("raw")
    ap.add_argument("cache")
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args()
    os.makedirs(a.cache, exist_ok=True)
    studies = list_studies(a.raw)
    with Pool(a.jobs) as pool:
        for line in pool.imap_unordered(prepare, [(s, a.cache) for s in studies]):
            print(line, flush=True)


if __name__ == "__main__":
    main()
