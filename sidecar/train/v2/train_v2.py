"""Trains lung-nodule-demo 2.0 on cached generator-v2 studies (prepare_v2.py) and exports
sidecar/models/lung-nodule-demo/model.onnx (+ the manifest's "training" section).

    /usr/bin/python3 sidecar/train/v2/train_v2.py --cache DIR [--minutes 55] [--seed 1234]

2.5D: five planes 3 mm apart along the slice normal (interpolated between slices, so thin and thick
series show the same anatomy), target = the centre plane's nodule-and-mass mask (fraction of each
model pixel inside a lesion). Each step draws `--batch` crops of `--crop` pixels:
- `--positive` of them on a lesion (drawn uniformly over lesions, masses less often, so small
  nodules are seen as often as large ones), on a slice crossing it;
- `--lung` of them centred on a random lung pixel: the hard negatives of real chest CT (vessel
  cross-sections, bifurcations and crossings, fissures, airway walls, the pleura, partial volume);
- the rest anywhere in the body, or outside it.
Augmentation: horizontal and vertical flips (one lung's apex-to-base order kept), reversed plane
order, zoom 0.75-1.33 (other fields of view), contrast and brightness jitter, added noise.
Loss: BCE (positive pixels weighted) + soft Dice. Time-boxed: the one-cycle schedule spans
`--minutes`; the validation Dice on whole planes picks the checkpoint.
"""

import argparse
import hashlib
import json
import os
import platform
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from common import export_onnx
from common_v2 import CHANNELS, NEIGHBOUR_SPACING_MM, NEIGHBOURS, SIZE, channel_planes, make_model

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_DIR = os.path.join(HERE, "..", "..", "models", "lung-nodule-demo")
THRESHOLD = 0.5


def load_cache(root):
    studies = []
    for name in sorted(os.listdir(root)):
        if not name.endswith(".npz"):
            continue
        z = np.load(os.path.join(root, name))
        studies.append(
            {
                "name": name,
                "slices": z["slices"],
                "target": z["target"],
                "lung": z["lung"],
                "slice_mm": float(z["slice_mm"]),
                "lesions": json.loads(str(z["lesions"])),
                "lung_slices": np.nonzero(z["lung"].reshape(z["lung"].shape[0], -1).any(1))[0],
            }
        )
    return studies


def crop_at(st, s, cr, cc, size, rng, zoom):
    """Input planes and target around (cr, cc) on slice s, `size` pixels after a zoom."""
    src = int(round(size * zoom))
    src = min(src, SIZE)
    r0 = int(np.clip(round(cr - src / 2 + rng.uniform(-src / 3, src / 3)), 0, SIZE - src))
    c0 = int(np.clip(round(cc - src / 2 + rng.uniform(-src / 3, src / 3)), 0, SIZE - src))
    x = channel_planes(st["slices"], s, st["slice_mm"], r0, r0 + src, c0, c0 + src)
    y = st["target"][s, r0 : r0 + src, c0 : c0 + src].astype(np.float32)[None]
    if src != size:
        x = F.interpolate(torch.from_numpy(x)[None], size=(size, size), mode="bilinear", align_corners=False)[0].numpy()
        y = F.interpolate(torch.from_numpy(y)[None], size=(size, size), mode="bilinear", align_corners=False)[0].numpy()
    return x, y


def sample_batch(train, lesions, rng, a):
    x = np.empty((a.batch, CHANNELS, a.crop, a.crop), np.float32)
    y = np.empty((a.batch, 1, a.crop, a.crop), np.float32)
    n_pos = int(round(a.batch * a.positive))
    n_lung = int(round(a.batch * a.lung))
    for b in range(a.batch):
        zoom = float(np.exp(rng.uniform(np.log(0.75), np.log(1.33))))
        if b < n_pos:
            si, l = lesions[rng.integers(len(lesions))]
            st = train[si]
            s = int(rng.integers(l["slices"][0], l["slices"][1] + 1))
            cr, cc = l["center"]
        elif b < n_pos + n_lung:
            st = train[rng.integers(len(train))]
            if not len(st["lung_slices"]):
                continue
            s = int(rng.choice(st["lung_slices"]))
            rr, ccs = np.nonzero(st["lung"][s])
            k = rng.integers(len(rr))
            cr, cc = float(rr[k]), float(ccs[k])
        else:
            st = train[rng.integers(len(train))]
            s = int(rng.integers(st["slices"].shape[0]))
            cr, cc = rng.uniform(0, SIZE, 2)
        xi, yi = crop_at(st, s, cr, cc, a.crop, rng, zoom)
        if rng.random() < 0.5:
            xi, yi = xi[:, :, ::-1], yi[:, :, ::-1]
        if rng.random() < 0.2:
            xi, yi = xi[:, ::-1], yi[:, ::-1]
        if rng.random() < 0.5:
            xi = xi[::-1]
        xi = xi * rng.uniform(0.93, 1.07) + rng.uniform(-0.03, 0.03)
        if rng.random() < 0.5:
            xi = xi + rng.normal(0, rng.uniform(0.005, 0.03), xi.shape)
        x[b], y[b] = np.clip(xi, -0.1, 1.1), yi
    return torch.from_numpy(x), torch.from_numpy(y)


def loss_fn(logits, target, pos_weight):
    p = torch.sigmoid(logits)
    dice = (2 * (p * target).sum() + 1) / (p.sum() + target.sum() + 1)
    w = 1 + (pos_weight - 1) * target
    return F.binary_cross_entropy_with_logits(logits, target, weight=w) + (1 - dice)


@torch.no_grad()
def validate(model, studies, every=3):
    """Pixel Dice (p >= THRESHOLD vs target >= 0.5) and false-positive pixels per plane inside
    the lungs, over every `every`-th plane of the validation studies (whole planes)."""
    model.eval()
    inter = psum = tsum = fp_lung = planes = 0.0
    for st in studies:
        idx = list(range(0, st["slices"].shape[0], every))
        for b in range(0, len(idx), 16):
            chunk = idx[b : b + 16]
            x = torch.from_numpy(np.stack([channel_planes(st["slices"], s, st["slice_mm"]) for s in chunk]))
            p = model(x)[:, 0].numpy() >= THRESHOLD
            t = st["target"][chunk] >= 0.5
            inter += float((p & t).sum())
            psum += float(p.sum())
            tsum += float(t.sum())
            fp_lung += float((p & ~t & st["lung"][chunk]).sum())
            planes += len(chunk)
    model.train()
    return 2 * inter / max(psum + tsum, 1.0), fp_lung / max(planes, 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", required=True, help="folder with train/ and val/ caches")
    ap.add_argument("--minutes", type=float, default=55)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--positive", type=float, default=0.4)
    ap.add_argument("--lung", type=float, default=0.4)
    ap.add_argument("--pos-weight", type=float, default=3.0)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--validate-every", type=int, default=150, help="steps")
    ap.add_argument("--out", default=MODEL_DIR)
    ap.add_argument("--init", help="start from these weights (a model_v2.pt) instead of scratch")
    ap.add_argument("--small-bias", type=float, default=0.0,
                    help="draw a lesion with weight (10 mm / diameter) ** bias: small nodules more often")
    a = ap.parse_args()

    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    rng = np.random.default_rng(a.seed)
    train = load_cache(os.path.join(a.cache, "train"))
    val = load_cache(os.path.join(a.cache, "val"))
    lesions = []
    for i, st in enumerate(train):
        for l in st["lesions"]:
            copies = 1 if l["mass"] else 2  # nodules twice as often as masses
            if a.small_bias and not l["mass"]:
                # Its largest cross-section on the model grid, as a disc's diameter in pixels.
                r, c = (int(round(v)) for v in l["center"])
                z0, z1 = l["slices"]
                box = st["target"][z0 : z1 + 1, max(0, r - 25) : r + 25, max(0, c - 25) : c + 25]
                area = float((box.astype(np.float32) >= 0.5).sum(axis=(1, 2)).max()) if box.size else 0.0
                d_px = 2 * np.sqrt(max(area, 1.0) / np.pi)
                copies = max(1, int(round(2 * min(4.0, (7.0 / max(d_px, 1.5)) ** a.small_bias))))
            lesions += [(i, l)] * copies
    n_nod = sum(1 for st in train for l in st["lesions"] if not l["mass"])
    print(f"train: {len(train)} studies, {n_nod} nodules; val: {len(val)} studies", flush=True)

    model = make_model()
    params = sum(p.numel() for p in model.parameters())
    # Time one step to size the schedule to the time box.
    t0 = time.time()
    for _ in range(3):
        x, y = sample_batch(train, lesions, rng, a)
        model.logits(x).mean().backward()
    step_s = (time.time() - t0) / 3
    total = max(50, int(a.minutes * 60 / (step_s * 1.1)))
    print(f"{step_s:.2f} s per step: {total} steps in {a.minutes} min", flush=True)
    model = make_model()
    if a.init:
        model.load_state_dict(torch.load(a.init))
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=total, pct_start=0.1)
    best, best_state, best_step, history = -1.0, None, 0, []
    started, running = time.time(), 0.0
    for step in range(1, total + 1):
        x, y = sample_batch(train, lesions, rng, a)
        loss = loss_fn(model.logits(x), y, a.pos_weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        running += loss.item()
        if step % a.validate_every == 0 or step == total:
            dice, fp = validate(model, val)
            n = a.validate_every if step % a.validate_every == 0 else step % a.validate_every
            history.append({"step": step, "loss": round(running / n, 4), "valDice": round(dice, 4), "valFpPixelsPerPlane": round(fp, 2)})
            running = 0.0
            if dice > best:
                best, best_step = dice, step
                best_state = {k: v.clone() for k, v in model.state_dict().items()}
            print(f"step {step} {history[-1]} ({time.time() - started:.0f} s)", flush=True)
    seconds = time.time() - started
    model.load_state_dict(best_state)
    os.makedirs(a.out, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(a.cache, "model_v2.pt"))
    onnx_path = os.path.join(a.out, "model.onnx")
    export_onnx(model, onnx_path, channels=CHANNELS, size=SIZE)
    size = os.path.getsize(onnx_path)
    print(f"exported {onnx_path}: {size / 1e6:.2f} MB, {params} parameters, best step {best_step}")
    training = {
        "command": "sidecar/train/v2/make_data_v2.sh && /usr/bin/python3 sidecar/train/v2/train_v2.py "
        + " ".join(sys.argv[1:]),
        "seed": a.seed,
        **({"initialisedFrom": os.path.basename(a.init), "smallBias": a.small_bias} if a.init else {}),
        "steps": total,
        "batchSize": a.batch,
        "cropSize": a.crop,
        "samples": {"lesion": a.positive, "lung (hard negatives)": a.lung, "anywhere": round(1 - a.positive - a.lung, 2)},
        "optimizer": f"AdamW lr {a.lr} one-cycle over {total} steps, weight decay 1e-4",
        "loss": f"BCE (lesion pixels weighted {a.pos_weight}) + soft Dice",
        "augmentation": ["horizontal flip", "vertical flip (20 %)", "reversed plane order", "zoom 0.75-1.33", "contrast/brightness jitter", "added noise"],
        "selectedStep": best_step,
        "validationDice": round(best, 4),
        "history": history,
        "trainStudies": len(train),
        "trainNodules": n_nod,
        "validationStudies": len(val),
        "parameters": params,
        "seconds": round(seconds),
        "hardware": f"{a.threads} CPU threads ({platform.machine()}), torch {torch.__version__}",
        "input": {"channels": CHANNELS, "neighbours": NEIGHBOURS, "neighbourSpacingMm": NEIGHBOUR_SPACING_MM},
    }
    with open(os.path.join(a.cache, "training.json"), "w") as f:
        json.dump({"training": training, "bytes": size, "sha256": hashlib.sha256(open(onnx_path, "rb").read()).hexdigest()}, f, indent=2)


if __name__ == "__main__":
    main()
