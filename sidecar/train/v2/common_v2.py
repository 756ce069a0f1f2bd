"""Shared pieces of lung-nodule-demo 2.0: reading a generator-v2 study (DICOM + truth.json +
lungs.nii.gz + nodules.nii.gz), the preprocessing contract (lung window, 256 x 256 bilinear, five
planes 3 mm apart along the slice normal, interpolated between slices), and the network. The
constants here are the ones written into the model's manifest.json."""

import gzip
import json
import os
import struct
import sys

import numpy as np
import pydicom
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import UNet  # noqa: E402  (the same U-Net as 1.x, more channels)

WINDOW_CENTER = -600.0
WINDOW_WIDTH = 1500.0
SIZE = 256
NEIGHBOURS = [-2, -1, 0, 1, 2]
NEIGHBOUR_SPACING_MM = 3.0
CHANNELS = len(NEIGHBOURS)


def read_nifti(path):
    """A NIfTI-1 single file (gzip or not) -> numpy array (k, j, i), i.e. (slices, rows, cols)."""
    raw = open(path, "rb").read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    dims = struct.unpack("<8h", raw[40:56])
    datatype = struct.unpack("<h", raw[70:72])[0]
    offset = int(struct.unpack("<f", raw[108:112])[0])
    dtype = {2: np.uint8, 4: np.int16, 512: np.uint16, 16: np.float32}[datatype]
    nx, ny, nz = dims[1], dims[2], dims[3]
    return np.frombuffer(raw, dtype, nx * ny * nz, offset).reshape(nz, ny, nx)


def load_study(study_dir):
    """HU (S, R, C) float32 in instance order, spacing (row mm, col mm, slice mm), truth, lung
    labels and nodule labels on the same grid (None when absent)."""
    files = sorted(f for f in os.listdir(study_dir) if f.endswith(".dcm"))
    ds = [pydicom.dcmread(os.path.join(study_dir, f)) for f in files]
    ds.sort(key=lambda d: int(d.InstanceNumber))
    hu = np.stack(
        [d.pixel_array.astype(np.float32) * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in ds]
    )
    pos = np.array([[float(v) for v in d.ImagePositionPatient] for d in ds])
    slice_mm = float(np.linalg.norm(pos[1] - pos[0])) if len(ds) > 1 else float(ds[0].SliceThickness)
    ps = [float(v) for v in ds[0].PixelSpacing]
    truth = json.load(open(os.path.join(study_dir, "truth.json")))
    lungs = nodules = None
    if os.path.exists(os.path.join(study_dir, "lungs.nii.gz")):
        lungs = read_nifti(os.path.join(study_dir, "lungs.nii.gz"))
    if os.path.exists(os.path.join(study_dir, "nodules.nii.gz")):
        nodules = read_nifti(os.path.join(study_dir, "nodules.nii.gz"))
    return hu, (ps[0], ps[1], slice_mm), truth, lungs, nodules


def list_studies(root):
    return sorted(
        os.path.join(root, d) for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))
    )


def preprocess(hu):
    """HU (S, R, C) -> (S, SIZE, SIZE) float32 in [0, 1]: lung window, bilinear half-pixel resize."""
    lo = WINDOW_CENTER - WINDOW_WIDTH / 2
    x = (np.clip(hu, lo, lo + WINDOW_WIDTH) - lo) / WINDOW_WIDTH
    out = np.empty((hu.shape[0], SIZE, SIZE), np.float32)
    for s in range(0, hu.shape[0], 32):
        t = torch.from_numpy(x[s : s + 32].astype(np.float32))[:, None]
        if t.shape[-2:] != (SIZE, SIZE):
            t = F.interpolate(t, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
        out[s : s + 32] = t[:, 0].numpy()
    return out


def area_resize(mask):
    """(S, R, C) 0/1 -> fraction of each model pixel covered, (S, SIZE, SIZE) float32."""
    out = np.empty((mask.shape[0], SIZE, SIZE), np.float32)
    for s in range(0, mask.shape[0], 32):
        t = torch.from_numpy(mask[s : s + 32].astype(np.float32))[:, None]
        out[s : s + 32] = F.interpolate(t, size=(SIZE, SIZE), mode="area")[:, 0].numpy()
    return out


def channel_planes(slices, z, slice_mm, r0=0, r1=SIZE, c0=0, c1=SIZE, spacing_mm=NEIGHBOUR_SPACING_MM):
    """The model input for slice z: planes at z + n * spacing_mm (mm along the normal), each the
    linear interpolation of the two slices around it, clamped to the series (the sidecar's
    makeBatches with sliceOffsets)."""
    n = slices.shape[0]
    out = np.empty((CHANNELS, r1 - r0, c1 - c0), np.float32)
    for c, k in enumerate(NEIGHBOURS):
        at = min(n - 1, max(0.0, z + k * spacing_mm / slice_mm))
        z0 = int(np.floor(at))
        t = at - z0
        a = slices[z0, r0:r1, c0:c1].astype(np.float32)
        if t < 1e-6 or z0 + 1 >= n:
            out[c] = a
        else:
            b = slices[z0 + 1, r0:r1, c0:c1].astype(np.float32)
            out[c] = a + (b - a) * t
    return out


def make_model():
    return UNet(cin=CHANNELS)
