"""Reads synthetic studies (DICOM + truth.json) and caches, per study, what training needs:
the preprocessed model slices (float16, S x 256 x 256), the lesion masks downsampled to the model
grid (fraction of each model pixel inside a lesion), and the lesions' centres and radii.

    /usr/bin/python3 sidecar/train/prepare.py RAW_SPLIT_DIR CACHE_DIR
"""

import json
import os
import sys

import numpy as np

from common import downsample_mask, lesion_masks, list_studies, load_study, preprocess


def main(raw, cache):
    os.makedirs(cache, exist_ok=True)
    for study in list_studies(raw):
        hu, spacing, truth = load_study(study)
        masks = lesion_masks(truth, hu.shape, spacing)
        union = np.zeros(hu.shape, bool)
        for m in masks:
            union |= m
        lesions = [
            {
                "slices": [l["boundingBox"]["min"]["slice"], l["boundingBox"]["max"]["slice"]],
                "center": [l["centerVoxel"]["row"], l["centerVoxel"]["column"]],
                "radiusMm": l["radiusMm"],
            }
            for l in truth["lesions"]
        ]
        np.savez(
            os.path.join(cache, f"{truth['seed']:05d}.npz"),
            slices=preprocess(hu).astype(np.float16),
            target=downsample_mask(union).astype(np.float16),
            rows=hu.shape[1],
            lesions=json.dumps(lesions),
        )
        print(f"{os.path.basename(study)} seed={truth['seed']} lesions={len(lesions)}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
