"""Measures the lung-nodule demo model on held-out synthetic studies, post-processing like the
sidecar, and checks that the exported ONNX graph computes what the PyTorch model computes.

    /usr/bin/python3 sidecar/train/evaluate.py [--split test] [--profiles standard,fast,research]

Per study (DICOM read with pydicom, preprocessed as the manifest says): probabilities for every
slice under a profile -> bilinear upsampling to the original grid -> threshold (0.55) -> 3D connected
components, 26-connectivity -> components under 30 mm3 dropped. A component detects a lesion when
its centroid lies within the lesion's radius of the lesion's centre, or when its IoU with the
lesion's voxels exceeds 0.1; a component that detects no lesion is a false positive. Reported:
per-lesion sensitivity, false positives per study, Dice of the study's mask (mean over studies) and
of each lesion's mask (matched components vs that lesion), by lesion radius. Writes the figures
into the model's manifest.json ("metrics").

ONNX Runtime has no Debian package for Python, so the parity check runs the exported graph under
onnxruntime-node (the sidecar's own runtime) through verify_onnx.ts on a few real test slices.
"""

import argparse
import json
import os
import subprocess
import time

import numpy as np
import torch

from common import (
    CHANNELS,
    MANIFEST,
    MIN_VOLUME_MM3,
    SIZE,
    SIZE_BINS,
    THRESHOLD,
    UNet,
    components,
    lesion_masks,
    list_studies,
    load_study,
    predict_slices,
    preprocess,
    size_bin,
    stack_inputs,
    upsample_probs,
)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
DATA = os.environ.get("DATA", os.path.join(HERE, ".data"))
SPLIT_SEEDS = {
    "test": "9001-9020 (seeded 1-3 lesions)",
    "test5": "9101-9110 (5 lesions each)",
    "test0": "9201-9210 (no lesion)",
}


def dice(a, b):
    s = int(a.sum()) + int(b.sum())
    return 1.0 if s == 0 else 2.0 * int((a & b).sum()) / s


def score_study(probs, hu_shape, spacing, truth, masks, threshold, min_volume):
    pred_mask = upsample_probs(probs, hu_shape) >= threshold
    labels, comps = components(pred_mask, spacing, min_volume)
    pred = labels > 0
    gt = np.zeros(hu_shape, bool)
    for m in masks:
        gt |= m
    matched = {c["label"]: [] for c in comps}
    lesions = []
    for l, m in zip(truth["lesions"], masks):
        cv = l["centerVoxel"]
        overlap = np.bincount(labels[m], minlength=labels.max() + 1)
        hits = []
        for c in comps:
            s, r, col = c["centroidVoxel"]
            dist = np.sqrt(
                ((s - cv["slice"]) * spacing[2]) ** 2
                + ((r - cv["row"]) * spacing[0]) ** 2
                + ((col - cv["column"]) * spacing[1]) ** 2
            )
            inter = int(overlap[c["label"]])
            iou = inter / (c["voxels"] + int(m.sum()) - inter)
            if dist <= l["radiusMm"] or iou > 0.1:
                hits.append(c["label"])
                matched[c["label"]].append(l["id"])
        own = np.isin(labels, hits) if hits else np.zeros(hu_shape, bool)
        vol = sum(c["volumeMm3"] for c in comps if c["label"] in hits)
        lesions.append(
            {
                "id": l["id"],
                "radiusMm": l["radiusMm"],
                "detected": bool(hits),
                "dice": dice(own, m),
                "volumeMm3": l["voxelVolumeMm3"],
                "predictedVolumeMm3": vol,
            }
        )
    fps = [c for c in comps if not matched[c["label"]]]
    return {
        "dice": dice(pred, gt),
        "lesions": lesions,
        "falsePositives": len(fps),
        "falsePositiveVolumesMm3": [round(c["volumeMm3"], 1) for c in fps],
    }


def summarise(results):
    lesions = [l for r in results for l in r["lesions"]]
    with_lesions = [r for r in results if r["lesions"]]
    mean = lambda v: round(float(np.mean(v)), 4) if len(v) else None
    out = {
        "heldOutStudies": len(results),
        "lesions": len(lesions),
        "sensitivity": mean([l["detected"] for l in lesions]),
        "falsePositivesPerStudy": round(float(np.mean([r["falsePositives"] for r in results])), 3),
        "studiesWithFalsePositives": sum(1 for r in results if r["falsePositives"]),
        "dice": mean([r["dice"] for r in with_lesions]),
        "diceMin": round(float(np.min([r["dice"] for r in with_lesions])), 4) if with_lesions else None,
        "lesionDice": mean([l["dice"] for l in lesions]),
        "bySize": {},
    }
    det = [l for l in lesions if l["detected"]]
    if det:
        err = [abs(l["predictedVolumeMm3"] - l["volumeMm3"]) / l["volumeMm3"] for l in det]
        out["volumeErrorMedianPercent"] = round(100 * float(np.median(err)), 1)
    for name, _, _ in SIZE_BINS:
        group = [l for l in lesions if size_bin(l["radiusMm"]) == name]
        if group:
            out["bySize"][name] = {
                "lesions": len(group),
                "sensitivity": mean([l["detected"] for l in group]),
                "lesionDice": mean([l["dice"] for l in group]),
            }
    return out


def verify_onnx(model, slices, picks):
    """Saves torch outputs for a few real slices and runs verify_onnx.ts (onnxruntime-node)."""
    out_dir = os.path.join(DATA, "verify")
    os.makedirs(out_dir, exist_ok=True)
    x = stack_inputs(slices, picks)
    with torch.no_grad():
        y = model(torch.from_numpy(x)).numpy()
    x.astype("<f4").tofile(os.path.join(out_dir, "input.f32"))
    y.astype("<f4").tofile(os.path.join(out_dir, "torch.f32"))
    meta = {"n": len(picks), "channels": CHANNELS, "height": SIZE, "width": SIZE}
    json.dump(meta, open(os.path.join(out_dir, "meta.json"), "w"))
    cmd = [
        "deno", "run", "--allow-read", "--allow-ffi", "--allow-env", "--allow-sys",
        os.path.join(HERE, "verify_onnx.ts"), out_dir,
    ]
    try:
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    except FileNotFoundError:
        return {"ok": False, "error": "deno not found"}
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if not lines:
        return {"ok": False, "error": (p.stderr or p.stdout)[-500:]}
    return json.loads(lines[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", default="test")
    ap.add_argument("--profiles", default="standard,fast,research")
    ap.add_argument("--threshold", type=float, default=THRESHOLD)
    ap.add_argument("--min-volume", type=float, default=MIN_VOLUME_MM3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="only the first N studies (smoke test)")
    ap.add_argument("--no-manifest", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    profiles = args.profiles.split(",")

    model = UNet()
    model.load_state_dict(torch.load(os.path.join(DATA, "model.pt")))
    model.eval()

    results = {p: [] for p in profiles}
    seconds = {p: 0.0 for p in profiles}
    parity = None
    studies = list_studies(os.path.join(DATA, "raw", args.split))
    if args.limit:
        studies = studies[: args.limit]
    for study in studies:
        hu, spacing, truth = load_study(study)
        masks = lesion_masks(truth, hu.shape)
        slices = preprocess(hu)
        if parity is None:
            picks = [l["centerVoxel"]["slice"] for l in truth["lesions"]] + [0, hu.shape[0] // 2]
            parity = verify_onnx(model, slices, picks)
            print("onnx parity:", json.dumps(parity), flush=True)
        line = [f"seed {truth['seed']}"]
        for p in profiles:
            t = time.time()
            probs = predict_slices(model, slices, p)
            seconds[p] += time.time() - t
            r = score_study(probs, hu.shape, spacing, truth, masks, args.threshold, args.min_volume)
            results[p].append(r)
            found = sum(l["detected"] for l in r["lesions"])
            line.append(f"{p}: {found}/{len(r['lesions'])} found, {r['falsePositives']} FP, dice {r['dice']:.3f}")
        print(" | ".join(line), flush=True)

    summary = {}
    for p in profiles:
        summary[p] = summarise(results[p])
        summary[p]["secondsPerStudy"] = round(seconds[p] / len(studies), 2)
    for p in profiles:
        s = summary[p]
        print(
            f"\n{p}: sensitivity {s['sensitivity']} ({s['lesions']} lesions), "
            f"FP/study {s['falsePositivesPerStudy']}, dice {s['dice']}, "
            f"lesion dice {s['lesionDice']}, {s['secondsPerStudy']} s/study"
        )
        print("| radius | lesions | sensitivity | lesion Dice |\n|---|---|---|---|")
        for name, b in s["bySize"].items():
            print(f"| {name} | {b['lesions']} | {b['sensitivity']:.3f} | {b['lesionDice']:.3f} |")
    fp_volumes = sorted(v for r in results[profiles[0]] for v in r["falsePositiveVolumesMm3"])
    print(f"\nfalse-positive volumes ({profiles[0]}), mm3: {fp_volumes}")

    if args.no_manifest or args.limit:
        return
    manifest = json.load(open(MANIFEST))
    if args.split != "test":
        extra = manifest.setdefault("metrics", {}).setdefault("otherHeldOutSets", {})
        extra[args.split] = {"seeds": SPLIT_SEEDS.get(args.split, ""), **summary}
        with open(MANIFEST, "w") as f:
            json.dump(manifest, f, indent=2, ensure_ascii=False)
            f.write("\n")
        print(f"metrics of {args.split} written to {MANIFEST}")
        return
    main_profile = "standard" if "standard" in summary else profiles[0]
    metrics = {
        "profile": main_profile,
        **summary[main_profile],
        "threshold": args.threshold,
        "minVolumeMm3": args.min_volume,
        "testSeeds": SPLIT_SEEDS["test"],
        "matching": "a detection is a 3D component (26-connected, >= minVolumeMm3); it detects a "
        "lesion when its centroid lies within the lesion's radius of the lesion centre or its IoU "
        "with the lesion exceeds 0.1; unmatched components are false positives",
        "diceDefinition": "dice: Dice of the post-processed mask vs the union of the lesions, per "
        "study on the original 512x512 grid, mean over studies; lesionDice: per lesion, the "
        "components matched to it vs its voxels (0 when missed), mean over lesions",
        "profiles": {p: summary[p] for p in profiles if p != main_profile},
        "secondsMeasuredOn": "2 CPU threads, PyTorch, inference only (no DICOM I/O)",
        "onnxParity": parity,
        "otherHeldOutSets": manifest.get("metrics", {}).get("otherHeldOutSets", {}),
    }
    manifest["metrics"] = metrics
    with open(MANIFEST, "w") as f:
        json.dump(manifest, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(f"metrics written to {MANIFEST}")


if __name__ == "__main__":
    main()
