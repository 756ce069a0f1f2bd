"""Trains the lung-nodule demo model on the cached synthetic studies (see make_data.sh) and exports
sidecar/models/lung-nodule-demo-v1/model.onnx (model 1.x).

    /usr/bin/python3 sidecar/train/train.py [--epochs 14] [--steps 100] [--seed 1234]

2.5D: input = 3 neighbouring preprocessed slices, target = the middle slice's lesion mask (the
fraction of each model pixel inside a lesion). Each step draws `--batch` random 128x128 crops:
`--positive` of them centred near a lesion on a slice crossing it (lesion drawn uniformly, so small
lesions are seen as often as large ones), the rest anywhere in any slice of any study. Loss: BCE +
soft Dice. Augmentation: horizontal flip, reversed slice order. After every epoch the model is
scored on the validation studies (whole slices); the best epoch is kept, exported to ONNX (opset
17, dynamic batch) and checked with onnx.checker.
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

from common import CHANNELS, MANIFEST, MODEL_DIR, SIZE, THRESHOLD, UNet, export_onnx, stack_inputs

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.environ.get("DATA", os.path.join(HERE, ".data"))


def load_split(split):
    root = os.path.join(DATA, "cache", split)
    studies = []
    for name in sorted(os.listdir(root)):
        z = np.load(os.path.join(root, name))
        studies.append(
            {
                "seed": int(name.split(".")[0]),
                "slices": z["slices"],
                "target": z["target"],
                "scale": SIZE / int(z["rows"]),
                "lesions": json.loads(str(z["lesions"])),
            }
        )
    return studies


def sample_batch(studies, lesions, rng, batch, crop, positive):
    x = np.empty((batch, CHANNELS, crop, crop), np.float32)
    y = np.empty((batch, 1, crop, crop), np.float32)
    for b in range(batch):
        if b < round(batch * positive):
            si, l = lesions[rng.integers(len(lesions))]
            st = studies[si]
            s = int(rng.integers(l["slices"][0], l["slices"][1] + 1))
            cr, cc = (v * st["scale"] for v in l["center"])
            r0 = int(np.clip(cr - rng.uniform(16, crop - 16), 0, SIZE - crop))
            c0 = int(np.clip(cc - rng.uniform(16, crop - 16), 0, SIZE - crop))
        else:
            st = studies[rng.integers(len(studies))]
            s = int(rng.integers(st["slices"].shape[0]))
            r0, c0 = (int(v) for v in rng.integers(0, SIZE - crop + 1, 2))
        inp = stack_inputs(st["slices"], [s])[0, :, r0 : r0 + crop, c0 : c0 + crop]
        tgt = st["target"][s, r0 : r0 + crop, c0 : c0 + crop].astype(np.float32)
        if rng.random() < 0.5:
            inp, tgt = inp[:, :, ::-1], tgt[:, ::-1]
        if rng.random() < 0.5:
            inp = inp[::-1]
        x[b], y[b, 0] = inp, tgt
    return torch.from_numpy(x), torch.from_numpy(y)


def loss_fn(logits, target):
    p = torch.sigmoid(logits)
    dice = (2 * (p * target).sum() + 1) / (p.sum() + target.sum() + 1)
    return F.binary_cross_entropy_with_logits(logits, target) + (1 - dice)


@torch.no_grad()
def validate(model, studies, rng_seed=7, negatives=12):
    """Voxel Dice (threshold 0.55 vs target >= 0.5) on every lesion slice of the validation studies
    plus a fixed random sample of other slices, whole 256x256 slices."""
    model.eval()
    rng = np.random.default_rng(rng_seed)
    inter = psum = tsum = 0.0
    for st in studies:
        pos = np.nonzero(st["target"].reshape(st["target"].shape[0], -1).max(1) > 0)[0]
        others = np.setdiff1d(np.arange(st["slices"].shape[0]), pos)
        idx = list(pos) + list(rng.choice(others, negatives, replace=False))
        for b in range(0, len(idx), 16):
            x = torch.from_numpy(stack_inputs(st["slices"], idx[b : b + 16]))
            p = model(x)[:, 0].numpy() >= THRESHOLD
            t = st["target"][idx[b : b + 16]] >= 0.5
            inter += float((p & t).sum())
            psum += float(p.sum())
            tsum += float(t.sum())
    model.train()
    return 2 * inter / max(psum + tsum, 1.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=14)
    ap.add_argument("--steps", type=int, default=100, help="optimizer steps per epoch")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--positive", type=float, default=0.5)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-export", action="store_true")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    train, val = load_split("train"), load_split("val")
    lesions = [(i, l) for i, st in enumerate(train) for l in st["lesions"]]
    print(f"train: {len(train)} studies, {len(lesions)} lesions; val: {len(val)} studies", flush=True)

    model = UNet()
    params = sum(p.numel() for p in model.parameters())
    total = args.epochs * args.steps
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=total, pct_start=0.1)
    best, best_state, best_epoch, history = -1.0, None, 0, []
    started = time.time()
    for epoch in range(1, args.epochs + 1):
        running = 0.0
        for _ in range(args.steps):
            x, y = sample_batch(train, lesions, rng, args.batch, args.crop, args.positive)
            loss = loss_fn(model.logits(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            running += loss.item()
        dice = validate(model, val)
        history.append({"epoch": epoch, "loss": round(running / args.steps, 4), "valDice": round(dice, 4)})
        if dice > best:
            best, best_epoch = dice, epoch
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        print(
            f"epoch {epoch:2d} loss {running / args.steps:.4f} val dice {dice:.4f} "
            f"({time.time() - started:.0f} s)",
            flush=True,
        )
    seconds = time.time() - started
    model.load_state_dict(best_state)
    os.makedirs(DATA, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(DATA, "model.pt"))
    if args.no_export:
        return
    onnx_path = os.path.join(MODEL_DIR, "model.onnx")
    export_onnx(model, onnx_path)
    size = os.path.getsize(onnx_path)
    print(f"exported {onnx_path}: {size / 1e6:.2f} MB, {params} parameters, best epoch {best_epoch}")

    manifest = json.load(open(MANIFEST))
    manifest["training"] = {
        "command": " ".join(
            ["sidecar/train/make_data.sh && /usr/bin/python3 sidecar/train/train.py", *sys.argv[1:]]
        ),
        "seed": args.seed,
        "epochs": args.epochs,
        "stepsPerEpoch": args.steps,
        "batchSize": args.batch,
        "cropSize": args.crop,
        "positiveFraction": args.positive,
        "optimizer": f"AdamW lr {args.lr} one-cycle, weight decay 1e-4",
        "loss": "BCE + soft Dice",
        "augmentation": ["horizontal flip", "reversed slice order"],
        "selectedEpoch": best_epoch,
        "validationDice": round(best, 4),
        "history": history,
        "data": {
            "generator": "deno task synth (dicom/synth), 100 slices of 512x512, 2.5 mm",
            "trainSeeds": "1-24 (seeded 1-3 lesions) and 101-124 (5 lesions)",
            "trainStudies": len(train),
            "trainLesions": len(lesions),
            "validationSeeds": "501-506",
            "testSeeds": "9001-9020 (1-3 lesions), 9101-9110 (5 lesions), 9201-9210 (none)",
        },
        "parameters": params,
        "seconds": round(seconds),
        "hardware": f"{args.threads} CPU threads ({platform.machine()}), torch {torch.__version__}",
    }
    manifest["file"]["bytes"] = size
    manifest["file"]["sha256"] = hashlib.sha256(open(onnx_path, "rb").read()).hexdigest()
    with open(MANIFEST, "w") as f:
        json.dump(manifest, f, indent=2, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
