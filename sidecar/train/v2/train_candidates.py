"""Trains the candidate classifier of lung-nodule-demo 2.1: a small 3D CNN that tells a nodule
from what else the classical detector finds in the lungs (vessel branchings and crossings,
airway walls, the pleura, fissures), on the patches candidates_dump.ts wrote.

    /usr/bin/python3 train_candidates.py --train ../.data/v2/cand/train --val ../.data/v2/cand/val \
        --minutes 25 --out ../.data/v2/cand/model

Sampling: a third of each batch nodules (detector candidates and jittered true centres), the rest
candidates that are not. Augmentation: flips on the three axes, x/y swapped, shifts of up to two
voxels, contrast and brightness jitter, noise. The checkpoint with the best validation average
precision is kept; Platt scaling of its logit is fitted on the validation candidates (never the
test studies) and written with the ONNX model (sigmoid inside the graph: the output is the
uncalibrated probability) to OUT/candidates.onnx and OUT/training.json."""

import argparse
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class PatchNet(nn.Module):
    """1 x S^3 patch -> one logit. Four 3x3x3 convolutions (16, 32, 64, 64 channels), max-pool between,
    global average and max pooling, two linear layers."""

    def __init__(self):
        super().__init__()

        def block(i, o):
            return nn.Sequential(nn.Conv3d(i, o, 3, padding=1, bias=False), nn.BatchNorm3d(o), nn.ReLU(inplace=True))

        self.b1 = block(1, 16)
        self.b2 = block(16, 32)
        self.b3 = nn.Sequential(block(32, 64), block(64, 64))
        self.head = nn.Sequential(nn.Linear(128, 64), nn.ReLU(inplace=True), nn.Dropout(0.3), nn.Linear(64, 1))

    def forward(self, x):
        x = F.max_pool3d(self.b1(x), 2)
        x = F.max_pool3d(self.b2(x), 2)
        x = self.b3(x)
        x = torch.cat([x.mean(dim=(2, 3, 4)), x.amax(dim=(2, 3, 4))], 1)
        return self.head(x)


class WithSigmoid(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return torch.sigmoid(self.net(x))


def load(prefix):
    meta = json.load(open(prefix + ".json"))
    size = meta["size"]
    data = np.fromfile(prefix + ".u8", dtype=np.uint8).reshape(-1, size, size, size)
    labels = np.array([e["label"] for e in meta["entries"]], dtype=np.float32)
    assert len(labels) == len(data), (len(labels), len(data))
    return data, labels, meta


def augment(x, rng):
    """x: (B, S, S, S) float32 0..1 -> augmented copy."""
    out = np.empty_like(x)
    for i in range(len(x)):
        p = x[i]
        if rng.random() < 0.5:
            p = p[:, :, ::-1]
        if rng.random() < 0.5:
            p = p[:, ::-1, :]
        if rng.random() < 0.5:
            p = p[::-1, :, :]
        if rng.random() < 0.5:
            p = p.transpose(0, 2, 1)
        s = rng.integers(-2, 3, size=3)
        p = np.roll(p, tuple(int(v) for v in s), axis=(0, 1, 2))
        out[i] = p
    scale = rng.uniform(0.9, 1.1, size=(len(x), 1, 1, 1)).astype(np.float32)
    shift = rng.uniform(-0.03, 0.03, size=(len(x), 1, 1, 1)).astype(np.float32)
    noise = rng.normal(0, 1, size=out.shape).astype(np.float32) * rng.uniform(0, 0.02, size=(len(x), 1, 1, 1)).astype(np.float32)
    return np.clip(out * scale + shift + noise, 0, 1.2)


def predict(net, data, batch=256):
    net.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(data), batch):
            x = torch.from_numpy(data[i : i + batch].astype(np.float32) / 255.0).unsqueeze(1)
            out.append(net(x).squeeze(1).numpy())
    net.train()
    return np.concatenate(out)


def average_precision(scores, labels):
    order = np.argsort(-scores)
    y = labels[order]
    tp = np.cumsum(y)
    precision = tp / np.arange(1, len(y) + 1)
    return float((precision * y).sum() / max(1, y.sum()))


def platt(logits, labels, steps=2000):
    """Fits sigma(a * logit + b) by Newton-free gradient descent on the log loss."""
    a = torch.tensor(1.0, requires_grad=True)
    b = torch.tensor(0.0, requires_grad=True)
    z = torch.from_numpy(logits.astype(np.float32))
    y = torch.from_numpy(labels.astype(np.float32))
    opt = torch.optim.LBFGS([a, b], lr=0.5, max_iter=steps)

    def closure():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(a * z + b, y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(a.detach()), float(b.detach())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", required=True)
    ap.add_argument("--val", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=25)
    ap.add_argument("--batch", type=int, default=48)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--validate-every", type=int, default=300)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    rng = np.random.default_rng(args.seed)
    os.makedirs(args.out, exist_ok=True)

    xtr, ytr, mtr = load(args.train)
    xva, yva, mva = load(args.val)
    val_candidates = np.array([e["source"] == "candidate" for e in mva["entries"]])
    pos = np.flatnonzero(ytr == 1)
    neg = np.flatnonzero(ytr == 0)
    print(f"train: {len(pos)} nodule patches, {len(neg)} others; val: {int(yva.sum())} / {len(yva)}", flush=True)

    net = PatchNet()
    params = sum(p.numel() for p in net.parameters())
    # Time per step measured on the first steps sizes the one-cycle schedule.
    probe = time.time()
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    n_pos = args.batch // 3

    def batch():
        i = np.concatenate([rng.choice(pos, n_pos), rng.choice(neg, args.batch - n_pos)])
        x = augment(xtr[i].astype(np.float32) / 255.0, rng)
        return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(ytr[i])

    for _ in range(5):
        x, y = batch()
        loss = F.binary_cross_entropy_with_logits(net(x).squeeze(1), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    per_step = (time.time() - probe) / 5
    steps = max(50, int(args.minutes * 60 / per_step * 0.9))
    print(f"{params} parameters, {per_step:.3f} s/step -> {steps} steps", flush=True)
    net = PatchNet()
    torch.manual_seed(args.seed)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.2)
    best = (-1.0, 0)
    history = []
    started = time.time()
    running = 0.0
    for step in range(1, steps + 1):
        x, y = batch()
        loss = F.binary_cross_entropy_with_logits(net(x).squeeze(1), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        running = 0.98 * running + 0.02 * float(loss) if step > 1 else float(loss)
        if step % args.validate_every == 0 or step == steps:
            logits = predict(net, xva[val_candidates])
            ap_val = average_precision(logits, yva[val_candidates])
            history.append({"step": step, "loss": round(running, 4), "valAP": round(ap_val, 4)})
            print(f"step {step}/{steps} loss {running:.4f} val AP {ap_val:.4f} ({time.time() - started:.0f} s)", flush=True)
            if ap_val > best[0]:
                best = (ap_val, step)
                torch.save(net.state_dict(), os.path.join(args.out, "candidates.pt"))
    net.load_state_dict(torch.load(os.path.join(args.out, "candidates.pt")))
    logits = predict(net, xva[val_candidates])
    slope, intercept = platt(logits, yva[val_candidates])
    print(f"best step {best[1]} AP {best[0]:.4f}; Platt slope {slope:.3f} intercept {intercept:.3f}", flush=True)

    import onnx

    net.eval()
    size = mtr["size"]
    path = os.path.join(args.out, "candidates.onnx")
    torch.onnx.export(
        WithSigmoid(net),
        torch.zeros(1, 1, size, size, size),
        path,
        input_names=["patch"],
        output_names=["probability"],
        dynamic_axes={"patch": {0: "batch"}, "probability": {0: "batch"}},
        opset_version=17,
    )
    onnx.checker.check_model(onnx.load(path), full_check=True)
    json.dump(
        {
            "command": "sidecar/train/v2/make_candidates_v2.sh",
            "seed": args.seed,
            "steps": steps,
            "selectedStep": best[1],
            "validationAveragePrecision": round(best[0], 4),
            "batchSize": args.batch,
            "nodulesPerBatch": n_pos,
            "optimizer": f"AdamW lr {args.lr} one-cycle over {steps} steps, weight decay 1e-4",
            "loss": "BCE",
            "augmentation": ["flips on three axes", "x/y swap", "shift up to 2 voxels", "contrast/brightness jitter", "noise"],
            "trainPatches": {"nodule": int(len(pos)), "other": int(len(neg))},
            "trainStudies": len(mtr["scans"]),
            "validationStudies": len(mva["scans"]),
            "validationCandidates": int(val_candidates.sum()),
            "parameters": params,
            "seconds": round(time.time() - started),
            "calibration": {"slope": round(slope, 4), "intercept": round(intercept, 4)},
            "history": history,
            "patch": size,
            "gridMm": mtr["gridMm"],
            "options": mtr["options"],
        },
        open(os.path.join(args.out, "training.json"), "w"),
        indent=2,
    )


if __name__ == "__main__":
    main()
