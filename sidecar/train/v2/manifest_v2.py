"""Writes lung-nodule-demo 2.0's manifest.json from the preprocessing contract (common_v2.py), the
training record (training.json from train_v2.py) and, when given, the figures (froc.ts --json),
keeping a calibration fitted earlier (froc.ts --fit-calibration writes it into the manifest).

    /usr/bin/python3 sidecar/train/v2/manifest_v2.py CACHE/training.json [--metrics test.json ...]
"""

import argparse
import json
import os

from common_v2 import CHANNELS, NEIGHBOUR_SPACING_MM, NEIGHBOURS, SIZE, WINDOW_CENTER, WINDOW_WIDTH

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_DIR = os.path.join(HERE, "..", "..", "models", "lung-nodule-demo")

LUNG_RULES = {
    "minDiameterMm": 3,
    "maxNoduleDiameterMm": 30,
    "maxElongation": 3,
    "maxFlatness": 4,
    "minCompactness": 0.12,
    "maxZExtentRatio": 1.6,
    "minShellLung": 0.5,
    "minProbability": 0.5,
}


def training_of(path, rec):
    """The training record; a fine-tuning run (--init) is listed after the run it started from
    (training_stage1.json beside training.json)."""
    first = os.path.join(os.path.dirname(path), "training_stage1.json")
    if "initialisedFrom" in rec["training"] and os.path.exists(first):
        stages = [json.load(open(first))["training"], rec["training"]]
        return {"stages": stages, "seconds": sum(s["seconds"] for s in stages), "parameters": rec["training"]["parameters"]}
    return rec["training"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("training")
    ap.add_argument("--metrics", nargs="*", default=[], help="froc.ts --json outputs: name=path")
    a = ap.parse_args()
    rec = json.load(open(a.training))
    path = os.path.join(MODEL_DIR, "manifest.json")
    old = json.load(open(path)) if os.path.exists(path) else {}
    same_line = old.get("version", "").startswith("2.")
    post_old = old.get("postprocessing", {}) if same_line else {}
    lung = {**LUNG_RULES, **post_old.get("lung", {})}
    metrics = dict(old.get("metrics", {})) if same_line else {}
    for item in a.metrics:
        name, p = item.split("=", 1)
        metrics[name] = json.load(open(p))
    if "heldOutV1" in metrics:
        # What tests/sidecar/e2e_test.ts reads before it checks findings on a generator-v1 study.
        metrics["sensitivity"] = metrics["heldOutV1"]["operatingPoint"]["sensitivity"]
        metrics["sensitivityOn"] = "generator-v1 held-out scans, at the reporting threshold"
    if "heldOutV2" in metrics:
        metrics["cpm"] = metrics["heldOutV2"]["froc"]["cpm"]
    manifest = {
        "name": "lung-nodule-demo",
        "version": "2.0.0",
        "displayName": "Lung nodule demo 2 (realistic synthetic chest CT)",
        "manufacturer": "imaging-ai (this service)",
        "notice": "Demonstration model trained on synthetic data; not for clinical use.",
        "intendedUse": "Demonstrates the service's imaging-AI pipeline on chest CT: segments lung nodules (solid, part-solid, ground-glass, 3-30 mm) and masses inside the lungs, which a lung mask found by image processing delimits, and measures them. Trained and measured on the synthetic chest CT of `deno task synth` (generator v2: anatomy, vessel trees, airways, fissures, scanner variation) only; never validated on images of real patients; must not be used for diagnosis, screening or any clinical decision.",
        "modality": "CT",
        "bodyPart": "CHEST",
        "file": {"path": "model.onnx", "format": "onnx", "opset": 17, "bytes": rec["bytes"], "sha256": rec["sha256"]},
        "architecture": "2.5D U-Net: 4 levels (16, 32, 64, 128 channels), two 3x3 conv + BatchNorm + ReLU per level, 2x2 max-pool down, 2x2 transposed-conv up, 1x1 conv head, sigmoid",
        "input": {
            "name": "input",
            "layout": "NCHW",
            "dtype": "float32",
            "shape": ["batch", CHANNELS, SIZE, SIZE],
            "channels": CHANNELS,
            "height": SIZE,
            "width": SIZE,
            "slicesPerSample": CHANNELS,
            "neighbours": NEIGHBOURS,
            "neighbourSpacingMm": NEIGHBOUR_SPACING_MM,
            "neighbourRule": "Sort the series' slices along the slice normal. The sample for slice i holds the preprocessed planes at i + n * 3 mm / slice spacing for n = -2..2 (channel 2 is slice i itself), each the linear interpolation of the two slices around it, positions clamped to the series. The model was trained with both plane orders.",
            "batch": 8,
        },
        "output": {
            "name": "probability",
            "kind": "probability",
            "activation": "sigmoid",
            "shape": ["batch", 1, SIZE, SIZE],
            "meaning": "per pixel of the centre plane, the probability that it lies inside a nodule or mass",
            "activationApplied": "inside the ONNX graph",
        },
        "preprocessing": {
            "hu": "HU = stored value x RescaleSlope + RescaleIntercept",
            "window": {"center": WINDOW_CENTER, "width": WINDOW_WIDTH},
            "rescale": [0, 1],
            "resize": {"height": SIZE, "width": SIZE, "interpolation": "bilinear", "alignCorners": False},
        },
        "postprocessing": {
            "threshold": 0.5,
            "comparison": "probability >= threshold",
            "connectivity": 26,
            "minVolumeMm3": 10,
            "minComponentVoxels": 1,
            "lung": lung,
            **({"calibration": post_old["calibration"]} if "calibration" in post_old else {}),
            "lungStage": "A lung mask from the CT itself (sidecar/anatomy/lung_mask.ts); each component is kept when its centre lies in the lungs or at least half of its surroundings are lung, dropped when shaped like a tube, a plate or a branch or running through more slices than its axial size allows, measured (axial long and short axis, mean diameter, attenuation) and called a nodule (3-30 mm long axis) or a mass (over 30 mm); its probability is calibrated (Platt scaling fitted on validation studies) and findings under minProbability are not reported.",
        },
        "profiles": {
            "fast": {"sliceStride": 2, "batch": 16, "flipTta": False, "description": "Every second slice (and the last); skipped slices interpolated."},
            "standard": {"sliceStride": 1, "batch": 8, "flipTta": False, "description": "Every slice, once. The default profile."},
            "research": {"sliceStride": 1, "batch": 8, "flipTta": True, "description": "Every slice plus horizontal-flip test-time augmentation."},
        },
        "labels": [
            {
                "index": 1,
                "outputChannel": 0,
                "name": "lung nodule",
                "code": {
                    "coding": [
                        {"system": "http://snomed.info/sct", "code": "786838002", "display": "Nodule of lung"},
                        {"system": "http://radlex.org", "code": "RID3875", "display": "nodule"},
                    ],
                    "text": "Pulmonary nodule",
                },
            }
        ],
        "defaultThreshold": 0.5,
        "metrics": metrics,
        "training": training_of(a.training, rec),
    }
    if "candidates" in post_old:
        # The candidate stage (install_candidates.py) stays, with its version and training.
        manifest["version"] = old["version"]
        manifest["displayName"] = old.get("displayName", manifest["displayName"])
        manifest["architecture"] = old.get("architecture", manifest["architecture"])
        manifest["postprocessing"]["candidates"] = post_old["candidates"]
        if "candidates" in old.get("training", {}):
            manifest["training"] = {**manifest["training"], "candidates": old["training"]["candidates"]}
    with open(path, "w") as f:
        json.dump(manifest, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
