/** @module Tests of `sidecar/nifti_writer.ts`: read back with the API's own NIfTI reader. */
import assert from "node:assert/strict";
import { gunzipSync } from "fflate";
import { parseNiftiHeader } from "../../dicom/codec/nifti.ts";
import { rasAffine, writeNiftiMask } from "../../sidecar/nifti_writer.ts";
import type { Geometry } from "../../sidecar/postprocess.ts";

const G: Geometry = {
  dims: { x: 4, y: 3, z: 2 },
  spacing: { x: 0.7, y: 0.8, z: 2.5 },
  origin: [-10, 20, 30],
  rowDirection: [1, 0, 0],
  columnDirection: [0, 1, 0],
  sliceStep: [0, 0, -2.5],
};

Deno.test("writeNiftiMask() writes a gzipped NIfTI-1 uint8 volume in RAS space", async () => {
  const mask = new Uint8Array(24).map((_, i) => (i === 5 ? 2 : i === 20 ? 1 : 0));
  const gz = await writeNiftiMask(mask, G, { description: "test" });
  assert.deepEqual([gz[0], gz[1]], [0x1f, 0x8b]);
  const h = parseNiftiHeader(gz);
  assert.equal(h.version, 1);
  assert.deepEqual(h.dims, [4, 3, 2]);
  assert.equal(h.datatype, "uint8");
  assert.equal(h.spatialUnit, "mm");
  assert.equal(h.sformCode, 1);
  assert.deepEqual(h.pixdim.map((v) => Math.round(v * 1000) / 1000), [0.7, 0.8, 2.5]);
  // LPS → RAS: x and y negated; the slices step towards −z.
  assert.deepEqual(h.srow!.map((r) => r.map((v) => Math.round(v * 1000) / 1000)), [
    [-0.7, 0, 0, 10],
    [0, -0.8, 0, -20],
    [0, 0, -2.5, 30],
  ]);
  const file = gunzipSync(gz);
  assert.equal(h.voxOffset, 352);
  assert.deepEqual(file.subarray(352), mask);
  // The qform agrees: qfac −1 for this left-handed voxel grid, quaternion of diag(−1, −1, 1).
  const view = new DataView(file.buffer);
  assert.equal(view.getFloat32(76, true), -1);
  assert.equal(view.getInt16(252, true), 1);
  assert.deepEqual([256, 260, 264].map((o) => Math.abs(view.getFloat32(o, true))), [0, 0, 1]);
  assert.equal(view.getFloat32(124, true), 2, "cal_max is the highest label");
  // Slice by slice (null: an empty slice) gives the same file.
  const sliced = await writeNiftiMask(
    {
      maskSlice: (z) => z === 1 ? mask.subarray(12, 24) : z === 0 ? mask.subarray(0, 12) : null,
    },
    G,
    { description: "test" },
  );
  assert.deepEqual(gunzipSync(sliced), file);
  const empty = await writeNiftiMask({ maskSlice: () => null }, G, { maxLabel: 0 });
  assert.deepEqual(gunzipSync(empty).subarray(352), new Uint8Array(24));
});

Deno.test("rasAffine() maps voxel centres to RAS millimetres", async () => {
  const a = rasAffine(G);
  const ras = (i: number, j: number, k: number) =>
    a.map((r) => r[0] * i + r[1] * j + r[2] * k + r[3]);
  // Voxel (1, 2, 1) is LPS (−10 + 0.7, 20 + 1.6, 30 − 2.5).
  assert.deepEqual(ras(1, 2, 1).map((v) => Math.round(v * 1000) / 1000), [9.3, -21.6, 27.5]);
  await assert.rejects(() => writeNiftiMask(new Uint8Array(3), G), /expected 24/);
});
