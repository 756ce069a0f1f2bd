/**
 * @module uint8 label volumes of a synthetic series as gzipped single-file NIfTI-1 (`.nii.gz`):
 * 348-byte header, 4-byte extension flag, voxels with x (column) fastest, then y (row), then z
 * (slice, instance number − 1) — the DICOM grid itself. sform and qform map voxel (i, j, k) to
 * RAS millimetres: the DICOM geometry (LPS) with x and y negated, as `sidecar/nifti_writer.ts`
 * does for the masks it writes.
 */

import { gzipSync } from "node:zlib";
import type { Geometry } from "../geometry.ts";

const HEADER_BYTES = 348;
const VOX_OFFSET = 352;

/** The voxel → RAS (mm) affine of an axial synth grid (orientation 1\0\0\0\1\0, z stepping down). */
export function rasAffine(g: Geometry): number[][] {
  const [ox, oy, oz] = g.origin, p = g.pixelSpacing;
  return [
    [-p, 0, 0, -ox + 0],
    [0, -p, 0, -oy + 0],
    [0, 0, -g.sliceSpacing, oz],
  ];
}

/** Encodes `labels` (cols × rows × slices, x fastest) as a gzipped NIfTI-1 file. */
export function niftiLabels(labels: Uint8Array, g: Geometry, description: string): Uint8Array {
  const n = g.cols * g.rows * g.slices;
  if (labels.length !== n) throw new RangeError(`labels has ${labels.length} voxels, not ${n}`);
  const head = new Uint8Array(VOX_OFFSET);
  const view = new DataView(head.buffer);
  const i16 = (o: number, v: number) => view.setInt16(o, v, true);
  const f32 = (o: number, v: number) => view.setFloat32(o, v, true);
  view.setInt32(0, HEADER_BYTES, true);
  head[38] = "r".charCodeAt(0); // regular
  [3, g.cols, g.rows, g.slices, 1, 1, 1, 1].forEach((v, i) => i16(40 + 2 * i, v));
  i16(68, 0);
  i16(70, 2); // DT_UINT8
  i16(72, 8);
  // pixdim[0] = qfac = −1: the slice axis points to −z (feet), a left-handed voxel frame in RAS.
  [-1, g.pixelSpacing, g.pixelSpacing, g.sliceSpacing, 1, 1, 1, 1].forEach((v, i) =>
    f32(76 + 4 * i, v)
  );
  f32(108, VOX_OFFSET);
  f32(112, 1); // scl_slope
  f32(116, 0); // scl_inter
  head[123] = 2; // xyzt_units: mm
  let max = 0;
  for (let i = 0; i < n; i++) if (labels[i] > max) max = labels[i];
  f32(124, max); // cal_max
  f32(128, 0); // cal_min
  ascii(head, 148, 80, description);
  i16(252, 1); // qform_code: scanner anatomical
  i16(254, 1); // sform_code: scanner anatomical
  // Rotation diag(−1, −1, 1) (with qfac −1 for the −z slice axis): quaternion (0, 0, 0, 1).
  f32(256, 0);
  f32(260, 0);
  f32(264, 1);
  const affine = rasAffine(g);
  affine.forEach((row, r) => {
    f32(268 + 4 * r, row[3]); // qoffset_x/y/z
    row.forEach((v, c) => f32(280 + 16 * r + 4 * c, v)); // srow_x, srow_y, srow_z
  });
  ascii(head, 328, 16, "labels");
  ascii(head, 344, 4, "n+1");
  const file = new Uint8Array(VOX_OFFSET + n);
  file.set(head);
  file.set(labels, VOX_OFFSET);
  return new Uint8Array(gzipSync(file, { level: 6 }));
}

function ascii(file: Uint8Array, offset: number, size: number, text: string): void {
  const bytes = new TextEncoder().encode(text.replace(/[^\x20-\x7e]/g, "?")).subarray(0, size - 1);
  file.set(bytes, offset);
}
