/**
 * @module Tests of `sidecar/postprocess.ts`: connected components on synthetic 3D arrays —
 * counts, volumes with anisotropic spacing, centres, bounding boxes, 26- vs 6-connectivity.
 */
import assert from "node:assert/strict";
import { type Geometry, segment } from "../../sidecar/postprocess.ts";
import { resize2d } from "../../sidecar/preprocess.ts";

function grid(x: number, y: number, z: number, spacing = { x: 1, y: 1, z: 1 }): Geometry {
  return {
    dims: { x, y, z },
    spacing,
    origin: [100, -50, 20],
    rowDirection: [1, 0, 0],
    columnDirection: [0, 1, 0],
    sliceStep: [0, 0, -spacing.z],
  };
}

function volume(g: Geometry, on: [number, number, number, number?][]): Float32Array {
  const { x: nx, y: ny } = g.dims;
  const p = new Float32Array(nx * ny * g.dims.z);
  for (const [x, y, z, v] of on) p[z * nx * ny + y * nx + x] = v ?? 0.9;
  return p;
}

Deno.test("segment() counts components, volumes in mm³ and centres with anisotropic spacing", () => {
  const g = grid(10, 10, 6, { x: 0.5, y: 0.8, z: 2.5 });
  const cube: [number, number, number, number?][] = [];
  for (let z = 1; z <= 2; z++) {
    for (let y = 2; y <= 4; y++) for (let x = 1; x <= 4; x++) cube.push([x, y, z, 0.8]);
  }
  cube.push([2, 3, 1, 0.97]);
  const p = volume(g, [...cube, [8, 8, 5, 0.6], [8, 8, 4, 0.4]]);
  const seg = segment(p, g, { threshold: 0.5, connectivity: 26 });
  assert.equal(seg.components, 2);
  assert.equal(seg.findings.length, 2);
  const [big, small] = seg.findings;
  assert.equal(big.number, 1); // the highest probability first
  assert.equal(big.voxels, 24);
  assert.ok(Math.abs(big.volumeMm3 - 24) < 1e-9);
  assert.deepEqual(big.centreVoxel, [2.5, 3, 1.5]);
  assert.deepEqual(big.centrePatient, [100 + 2.5 * 0.5, -50 + 3 * 0.8, 20 - 1.5 * 2.5]);
  assert.deepEqual(big.boundingBox, { min: [1, 2, 1], max: [4, 4, 2] });
  assert.equal(big.maxProbability, Math.fround(0.97));
  assert.ok(Math.abs(big.meanProbability - (23 * 0.8 + 0.97) / 24) < 1e-6);
  // Edge to edge: corners (1,2,1)–(4,4,2) are 1.5, 1.6, 2.5 mm apart, plus one voxel's chord.
  const centres = Math.hypot(1.5, 1.6, 2.5);
  assert.ok(big.longestDiameterMm > centres && big.longestDiameterMm < centres + 1.2);
  assert.equal(small.voxels, 1);
  assert.equal(seg.mask[5 * 100 + 8 * 10 + 8], 2);
  assert.equal(seg.mask[4 * 100 + 8 * 10 + 8], 0); // below the threshold
  assert.equal(seg.mask[1 * 100 + 2 * 10 + 1], 1);
  assert.equal(seg.maxProbability, Math.fround(0.97));
});

Deno.test("segment() joins diagonal neighbours with 26-connectivity, not with 6 or 18", () => {
  const g = grid(5, 5, 5);
  // A chain touching only at corners: (0,0,0) (1,1,1) (2,2,2).
  const corners = volume(g, [[0, 0, 0], [1, 1, 1], [2, 2, 2]]);
  assert.equal(segment(corners, g, { threshold: 0.5, connectivity: 26 }).findings.length, 1);
  assert.equal(segment(corners, g, { threshold: 0.5, connectivity: 18 }).findings.length, 3);
  assert.equal(segment(corners, g, { threshold: 0.5, connectivity: 6 }).findings.length, 3);
  // Edge neighbours (share an edge, not a face): 18 and 26 join, 6 does not.
  const edges = volume(g, [[0, 0, 0], [1, 1, 0], [1, 2, 1]]);
  assert.equal(segment(edges, g, { threshold: 0.5, connectivity: 18 }).findings.length, 1);
  assert.equal(segment(edges, g, { threshold: 0.5, connectivity: 6 }).findings.length, 3);
});

Deno.test("segment() merges labels met late (a U shape) into one component", () => {
  const g = grid(7, 4, 1);
  // Two arms that only join at the bottom row, which the raster scan reaches last.
  const on: [number, number, number][] = [];
  for (let y = 0; y < 4; y++) on.push([1, y, 0], [5, y, 0]);
  for (let x = 1; x <= 5; x++) on.push([x, 3, 0]);
  const seg = segment(volume(g, on), g, { threshold: 0.5, connectivity: 6 });
  assert.equal(seg.findings.length, 1);
  assert.equal(seg.findings[0].voxels, 11);
  assert.deepEqual(seg.findings[0].boundingBox, { min: [1, 0, 0], max: [5, 3, 0] });
});

Deno.test("segment() drops components below minComponentVoxels or minVolumeMm3", () => {
  const g = grid(8, 8, 2, { x: 1, y: 1, z: 2 });
  const p = volume(g, [[0, 0, 0], [5, 5, 0], [5, 6, 0], [6, 5, 0]]);
  assert.equal(segment(p, g, { threshold: 0.5, connectivity: 26 }).findings.length, 2);
  assert.equal(
    segment(p, g, { threshold: 0.5, connectivity: 26, minComponentVoxels: 2 }).findings.length,
    1,
  );
  const big = segment(p, g, { threshold: 0.5, connectivity: 26, minVolumeMm3: 6 });
  assert.equal(big.findings.length, 1);
  assert.equal(big.findings[0].volumeMm3, 6);
  assert.equal(big.components, 2);
  assert.equal(big.mask[0], 0); // dropped components are not in the mask
});

Deno.test("segment() measures a large sphere's diameter approximately (many surface voxels)", () => {
  const n = 48, r = 20;
  const g = grid(n, n, n);
  const on: [number, number, number][] = [];
  for (let z = 0; z < n; z++) {
    for (let y = 0; y < n; y++) {
      for (let x = 0; x < n; x++) if (Math.hypot(x - 24, y - 24, z - 24) <= r) on.push([x, y, z]);
    }
  }
  const [f] = segment(volume(g, on), g, { threshold: 0.5, connectivity: 26 }).findings;
  assert.ok(Math.abs(f.longestDiameterMm - 2 * r - 1) < 1.5, String(f.longestDiameterMm));
  assert.ok(Math.abs(f.volumeMm3 - (4 / 3) * Math.PI * r ** 3) / f.volumeMm3 < 0.02);
  assert.deepEqual(f.centreVoxel, [24, 24, 24]);
});

Deno.test("segment() on the model's grid equals segment() on every plane resized to the series", () => {
  // Smooth blobs on a 16×16×6 grid, seen on a 40×36 series grid (uneven factors).
  const gh = 16, gw = 16, nz = 6;
  const data = new Float32Array(gh * gw * nz);
  const blobs = [[4, 5, 2, 2.2], [11, 10, 3, 3], [12, 3, 5, 1.4]];
  for (let z = 0; z < nz; z++) {
    for (let r = 0; r < gh; r++) {
      for (let c = 0; c < gw; c++) {
        let v = 0;
        for (const [bc, br, bz, s] of blobs) {
          v = Math.max(
            v,
            Math.exp(-((c - bc) ** 2 + (r - br) ** 2 + 4 * (z - bz) ** 2) / (2 * s * s)),
          );
        }
        data[z * gh * gw + r * gw + c] = v;
      }
    }
  }
  const g = grid(40, 36, nz, { x: 0.8, y: 0.9, z: 2 });
  const dense = new Float32Array(40 * 36 * nz);
  for (let z = 0; z < nz; z++) {
    resize2d(
      data.subarray(z * gh * gw, (z + 1) * gh * gw),
      gh,
      gw,
      36,
      40,
      "bilinear",
      dense.subarray(z * 40 * 36, (z + 1) * 40 * 36),
    );
  }
  for (const threshold of [0.3, 0.5, 0.9]) {
    const options = { threshold, connectivity: 26 as const };
    const a = segment(dense, g, options);
    const b = segment({ data, height: gh, width: gw, depth: nz }, g, options);
    assert.ok(a.findings.length > 0, `threshold ${threshold}`);
    assert.deepEqual(b.findings, a.findings, `threshold ${threshold}`);
    assert.deepEqual(b.mask, a.mask);
    // The grid's own maximum: an interpolated value never exceeds it.
    assert.ok(b.maxProbability >= a.maxProbability && b.maxProbability <= 1);
  }
  assert.throws(
    () =>
      segment({ data, height: gh, width: gw, depth: nz - 1 }, g, {
        threshold: 0.5,
        connectivity: 6,
      }),
    /5 planes/,
  );
});
