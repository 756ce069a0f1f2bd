"""Installs the candidate classifier (train_candidates.py) into lung-nodule-demo: copies
candidates.onnx beside model.onnx and writes the candidate stage into manifest.json (its file and
SHA-256, the detector's settings, the Platt scaling fitted on the validation candidates), the
version 2.1.0 and the training record; with --metrics, the figures of froc.ts --json.

    /usr/bin/python3 sidecar/train/v2/install_candidates.py CAND_MODEL_DIR [--metrics name=path ...]
"""

import argparse
import hashlib
import json
import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_DIR = os.path.join(HERE, "..", "..", "models", "lung-nodule-demo")
VERSION = "2.1.0"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trained", help="train_candidates.py --out folder")
    ap.add_argument("--metrics", nargs="*", default=[], help="froc.ts --json outputs: name=path")
    ap.add_argument("--min-probability", type=float, default=None, help="the reporting threshold (lung rules)")
    a = ap.parse_args()
    rec = json.load(open(os.path.join(a.trained, "training.json")))
    onnx_path = os.path.join(MODEL_DIR, "candidates.onnx")
    shutil.copyfile(os.path.join(a.trained, "candidates.onnx"), onnx_path)
    data = open(onnx_path, "rb").read()
    path = os.path.join(MODEL_DIR, "manifest.json")
    m = json.load(open(path))
    o = rec["options"]
    m["version"] = VERSION
    m["displayName"] = "Lung nodule demo 2.1 (realistic synthetic chest CT)"
    m["architecture"] = (
        "2.5D U-Net (4 levels: 16, 32, 64, 128 channels; two 3x3 conv + BatchNorm + ReLU per level; sigmoid) "
        "for segmentation, plus a candidate stage: multi-scale Laplacian-of-Gaussian blobs in the lung mask "
        "classified by a 3D CNN (24^3 patch at 1.25 mm; 3x3x3 conv 16-32-64-64 with BatchNorm, ReLU and "
        "max-pooling, global average and max pooling, two linear layers, sigmoid)"
    )
    post = m["postprocessing"]
    post["candidates"] = {
        "file": "candidates.onnx",
        "sha256": hashlib.sha256(data).hexdigest(),
        "input": "patch",
        "output": "probability",
        "patch": rec["patch"],
        "batch": 32,
        "gridMm": o["gridMm"],
        "scalesMm": o["scalesMm"],
        "minResponseHu": o["minResponseHu"],
        "minCentreHu": o["minCentreHu"],
        "minBlobness": o["minBlobness"],
        "pleuraMm": o["pleuraMm"],
        "maxCandidates": o["maxCandidates"],
        "minProbability": post.get("candidates", {}).get("minProbability", 0.05),
        "calibration": rec["calibration"],
        "description": (
            "Bright blobs in the lungs (local maxima of the scale-normalised LoG over space and scale on "
            "the lungs' box resampled to gridMm, ranked by response x Hessian blobness) each classified "
            "on a patch^3 cube of HU; those the classifier accepts are grown on the series' grid and "
            "judged by the lung rules with the network's components; one that duplicates a component "
            "is dropped."
        ),
    }
    if a.min_probability is not None:
        post["lung"]["minProbability"] = a.min_probability
    training = m.get("training", {})
    training["candidates"] = {k: v for k, v in rec.items() if k not in ("options",)}
    m["training"] = training
    metrics = m.get("metrics", {})
    for item in a.metrics:
        name, p = item.split("=", 1)
        # The FROC curve stays in froc.ts's output; the manifest keeps the figures.
        metrics[name] = {k: v for k, v in json.load(open(p)).items() if k != "curve"}
    if "heldOutV1" in metrics:
        metrics["sensitivity"] = metrics["heldOutV1"]["operatingPoint"]["sensitivity"]
        metrics["sensitivityOn"] = "generator-v1 held-out scans, at the reporting threshold"
    if "heldOutV2" in metrics:
        metrics["cpm"] = metrics["heldOutV2"]["froc"]["cpm"]
    m["metrics"] = metrics
    json.dump(m, open(path, "w"), indent=2)
    open(path, "a").write("\n")
    print(f"installed {onnx_path} ({len(data)} bytes) as lung-nodule-demo {VERSION}")


if __name__ == "__main__":
    main()
