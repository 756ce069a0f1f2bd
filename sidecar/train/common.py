"""Shared pieces of the lung-nodule demo model: the preprocessing contract, the ground-truth masks,
the network, inference and the post-processing the sidecar does. Used by prepare.py, train.py and
evaluate.py; the constants here are the ones written into the model's manifest.json."""

import json
import math
import os

import numpy as np
import pydicom
import torch
import torch.nn as nn
import torch.nn.functional as F

# ---- the preprocessing contract (manifest.json "preprocessing" / "input") -----------------------
WINDOW_CENTER = -600.0  # HU: the lung window
WINDOW_WIDTH = 1500.0  # HU: clip to [-1350, 150]
SIZE = 256  # model input height = width
CONTEXT = 1  # slices on each side: channels = [i-1, i, i+1], clamped at the ends of the series
CHANNELS = 2 * CONTEXT + 1
THRESHOLD = 0.55
MIN_VOLUME_MM3 = 30.0

MODEL_DIR = os.path.join(os.path.dirname(__file__), "..", "models", "lung-nodule-demo-v1")
MANIFEST = os.path.join(MODEL_DIR, "manifest.json")
SIZE_BINS = (("<6mm", 0.0, 6.0), ("6-10mm", 6.0, 10.0), (">10mm", 10.0, 1e9))


def size_bin(radius_mm):
    for name, lo, hi in SIZE_BINS:
        if lo <= radius_mm < hi or (name == "6-10mm" and radius_mm == 10.0):
            return name
    raise ValueError(radius_mm)


# ---- reading a study ------------------------------------------------------------------------------
def load_study(study_dir):
    """HU volume (slices, rows, cols) float32 in series order (head to feet: ImagePositionPatient z
    descending), the voxel spacing (row mm, col mm, slice mm) and the truth (or None)."""
    files = sorted(f for f in os.listdir(study_dir) if f.endswith(".dcm"))
    datasets = [pydicom.dcmread(os.path.join(study_dir, f)) for f in files]
    datasets.sort(key=lambda d: -float(d.ImagePositionPatient[2]))
    hu = np.stack(
        [
            d.pixel_array.astype(np.float32) * float(d.RescaleSlope) + float(d.RescaleIntercept)
            for d in datasets
        ]
    )
    zs = [float(d.ImagePositionPatient[2]) for d in datasets]
    slice_mm = abs(zs[0] - zs[1]) if len(zs) > 1 else float(datasets[0].SliceThickness)
    ps = [float(v) for v in datasets[0].PixelSpacing]
    truth_path = os.path.join(study_dir, "truth.json")
    truth = json.load(open(truth_path)) if os.path.exists(truth_path) else None
    return hu, (ps[0], ps[1], slice_mm), truth


def list_studies(root):
    return sorted(
        os.path.join(root, d) for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))
    )


# ---- preprocessing -------------------------------------------------------------------------------
def preprocess(hu):
    """HU (S, R, C) -> model-ready slices (S, SIZE, SIZE) float32 in [0, 1]: clip to the window,
    scale to [0, 1], then resize bilinearly with half-pixel centres (PyTorch
    `interpolate(mode="bilinear", align_corners=False)`, no antialiasing; the sidecar's
    `resize2d`). For 512 -> 256 that is exactly the mean of each 2x2 block."""
    lo = WINDOW_CENTER - WINDOW_WIDTH / 2
    x = (np.clip(hu, lo, lo + WINDOW_WIDTH) - lo) / WINDOW_WIDTH
    t = torch.from_numpy(x.astype(np.float32))[:, None]
    if t.shape[-2:] != (SIZE, SIZE):
        t = F.interpolate(t, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    return t[:, 0].numpy()


def stack_inputs(slices, indices):
    """Model inputs (N, CHANNELS, SIZE, SIZE) for slice indices: neighbours i-1, i, i+1 (clamped)."""
    n = slices.shape[0]
    out = np.empty((len(indices), CHANNELS, SIZE, SIZE), np.float32)
    for k, i in enumerate(indices):
        for c, d in enumerate(range(-CONTEXT, CONTEXT + 1)):
            out[k, c] = slices[min(max(i + d, 0), n - 1)]
    return out


# ---- ground truth --------------------------------------------------------------------------------
def lesion_masks(truth, shape, spacing=None):
    """One boolean mask per lesion on the native grid, rasterised exactly as the generator does
    (`dicom/synth/geometry.ts` ellipseRows/ellipseRowSpan on each slice's cross-section, in
    float64 like JavaScript); checks each voxel count against truth.json."""
    g = truth["geometry"]
    ps, ss = g["pixelSpacingMm"], g["sliceSpacingMm"]
    ox, oy, oz = g["firstImagePositionPatient"]
    masks = []
    for l in truth["lesions"]:
        c = l["centerVoxel"]
        r = l["radiusMm"]
        cx, cy, cz = ox + c["column"] * ps, oy + c["row"] * ps, oz - c["slice"] * ss
        m = np.zeros(shape, bool)
        for s in range(shape[0]):
            dz = (oz - s * ss) - cz
            r2 = r * r - dz * dz
            if r2 < 0:
                continue
            rc = math.sqrt(r2)
            first = max(0, math.ceil((cy - rc - oy) / ps - 1e-9))
            last = min(shape[1] - 1, math.floor((cy + rc - oy) / ps + 1e-9))
            for row in range(first, last + 1):
                if rc == 0:
                    continue
                dy = ((oy + row * ps) - cy) / rc
                q = 1 - dy * dy
                if q < 0:
                    continue
                half = rc * math.sqrt(q)
                c0 = max(0, math.ceil((cx - half - ox) / ps - 1e-9))
                c1 = min(shape[2] - 1, math.floor((cx + half - ox) / ps + 1e-9))
                if c0 <= c1:
                    m[s, row, c0 : c1 + 1] = True
        if int(m.sum()) != l["voxelCount"]:
            raise ValueError(f"lesion {l['id']}: {int(m.sum())} voxels, truth says {l['voxelCount']}")
        masks.append(m)
    return masks


def downsample_mask(mask):
    """Native boolean mask (S, R, C) -> fraction of each model pixel covered (S, SIZE, SIZE)."""
    t = torch.from_numpy(mask.astype(np.float32))[:, None]
    return F.interpolate(t, size=(SIZE, SIZE), mode="area")[:, 0].numpy()


# ---- the network -----------------------------------------------------------------------------------
def conv_block(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """A small 2.5D U-Net: 3 input slices, 4 levels (16-32-64-128 channels), transposed-conv
    upsampling, a sigmoid probability map of the middle slice at the input's size."""

    def __init__(self, cin=CHANNELS, widths=(16, 32, 64, 128)):
        super().__init__()
        self.down = nn.ModuleList()
        c = cin
        for w in widths:
            self.down.append(conv_block(c, w))
            c = w
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.up.append(nn.ConvTranspose2d(c, w, 2, stride=2))
            self.merge.append(conv_block(2 * w, w))
            c = w
        self.head = nn.Conv2d(c, 1, 1)

    def logits(self, x):
        skips = []
        for i, block in enumerate(self.down):
            if i > 0:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        skips.pop()
        for up, merge in zip(self.up, self.merge):
            x = merge(torch.cat([up(x), skips.pop()], 1))
        return self.head(x)

    def forward(self, x):
        return torch.sigmoid(self.logits(x))


# ---- inference and post-processing (what the sidecar does) -----------------------------------------
PROFILES = {
    "fast": {"sliceStride": 2, "tta": []},
    "standard": {"sliceStride": 1, "tta": []},
    "research": {"sliceStride": 1, "tta": ["hflip"]},
}


@torch.no_grad()
def predict_slices(model, slices, profile="standard", batch=8):
    """Probability maps (S, SIZE, SIZE) for every slice of a preprocessed series under a profile:
    `fast` runs the slices 0, 2, 4, ... (and the last one) and fills each skipped slice with the mean
    of its two neighbours; `research` averages with the horizontally flipped input's flipped-back
    output."""
    cfg = PROFILES[profile]
    n = slices.shape[0]
    run = list(range(0, n, cfg["sliceStride"]))
    if run[-1] != n - 1:
        run.append(n - 1)
    probs = np.zeros((n, SIZE, SIZE), np.float32)
    for b in range(0, len(run), batch):
        idx = run[b : b + batch]
        x = torch.from_numpy(stack_inputs(slices, idx))
        p = model(x)
        if "hflip" in cfg["tta"]:
            p = (p + model(x.flip(-1)).flip(-1)) / 2
        probs[idx] = p[:, 0].numpy()
    done = set(run)
    for i in range(n):
        if i not in done:
            probs[i] = (probs[i - 1] + probs[i + 1]) / 2
    return probs


def upsample_probs(probs, shape):
    """(S, SIZE, SIZE) -> (S, R, C) bilinear, half-pixel centres (align_corners=False)."""
    if probs.shape[1:] == tuple(shape[1:]):
        return probs
    out = np.empty(shape, np.float32)
    for s in range(0, shape[0], 16):
        t = torch.from_numpy(probs[s : s + 16])[:, None]
        out[s : s + 16] = F.interpolate(t, size=shape[1:], mode="bilinear", align_corners=False)[
            :, 0
        ].numpy()
    return out


def components(mask, spacing, min_volume_mm3=MIN_VOLUME_MM3):
    """3D connected components (26-connectivity) of a boolean mask, those under the minimum volume
    dropped. Returns (labels, [ {label, voxels, volumeMm3, centroidVoxel} ])."""
    from scipy import ndimage

    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return labels, []
    voxel_mm3 = spacing[0] * spacing[1] * spacing[2]
    counts = np.bincount(labels.ravel(), minlength=n + 1)
    keep = [k for k in range(1, n + 1) if counts[k] * voxel_mm3 >= min_volume_mm3]
    centroids = ndimage.center_of_mass(mask, labels, keep) if keep else []
    drop = np.ones(n + 1, bool)
    drop[keep] = False
    drop[0] = False
    labels[drop[labels]] = 0
    comps = [
        {
            "label": k,
            "voxels": int(counts[k]),
            "volumeMm3": float(counts[k] * voxel_mm3),
            "centroidVoxel": [float(v) for v in c],
        }
        for k, c in zip(keep, centroids)
    ]
    return labels, comps


def export_onnx(model, path, channels=CHANNELS, size=SIZE):
    """ONNX (opset 17, dynamic batch, input "input", output "probability"), checked with
    onnx.checker; the same for every version of the model."""
    import onnx

    model.eval()
    torch.onnx.export(
        model,
        torch.zeros(1, channels, size, size),
        path,
        opset_version=17,
        input_names=["input"],
        output_names=["probability"],
        dynamic_axes={"input": {0: "batch"}, "probability": {0: "batch"}},
        do_constant_folding=True,
    )
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    return m
