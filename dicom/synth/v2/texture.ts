/**
 * @module A seeded 3D texture field of the v2 chest: white noise on a coarse grid (~2 mm) blurred
 * by a Gaussian and scaled to unit standard deviation, sampled trilinearly. Being fixed in patient
 * space it is anatomy (the same in every slice that crosses it), not image noise.
 */

import type { Rng } from "../rng.ts";

/** A coarse isotropic volume of `step` mm voxels from (x0, y0, z0); slice k lies at z0 − k·step. */
export interface CoarseVolume<T extends Float32Array | Uint8Array> {
  x0: number;
  y0: number;
  z0: number;
  step: number;
  nx: number;
  ny: number;
  nz: number;
  data: T;
}

/** A 3D field of unit standard deviation. */
export type Texture = CoarseVolume<Float32Array>;

/** A field over the box [x0, x1] × [y0, y1] × [z0, z1] (mm) with the given grid step. */
export function createTexture(
  rng: Rng,
  box: [number, number, number, number, number, number],
  step: number,
): Texture {
  const [x0, x1, y0, y1, z0, z1] = box;
  const nx = Math.ceil((x1 - x0) / step) + 2;
  const ny = Math.ceil((y1 - y0) / step) + 2;
  const nz = Math.ceil((z1 - z0) / step) + 2;
  const n = nx * ny * nz;
  let data = new Float32Array(n);
  // Uniform noise (its blur is Gaussian enough) is much cheaper than Box–Muller here.
  for (let i = 0; i < n; i++) data[i] = rng.next() - 0.5;
  const k = [0.06, 0.24, 0.4, 0.24, 0.06];
  let tmp = new Float32Array(n);
  const strides = [1, nx, nx * ny], sizes = [nx, ny, nz];
  for (let axis = 0; axis < 3; axis++) {
    const s = strides[axis], len = sizes[axis];
    for (let i = 0; i < n; i++) {
      const pos = Math.floor(i / s) % len;
      let v = 0;
      for (let o = -2; o <= 2; o++) {
        const q = Math.min(len - 1, Math.max(0, pos + o));
        v += k[o + 2] * data[i + (q - pos) * s];
      }
      tmp[i] = v;
    }
    [data, tmp] = [tmp, data];
  }
  let sum = 0, sq = 0;
  for (let i = 0; i < n; i++) (sum += data[i]), (sq += data[i] * data[i]);
  const mean = sum / n, sd = Math.sqrt(Math.max(1e-12, sq / n - mean * mean));
  for (let i = 0; i < n; i++) data[i] = (data[i] - mean) / sd;
  return { x0, y0, z0, step, nx, ny, nz, data };
}

/** Samples a row of `n` points (x0 + i·dx, y, z) into `out`. */
export function textureRow(
  t: Texture,
  x0: number,
  dx: number,
  y: number,
  z: number,
  n: number,
  out: Float32Array,
): void {
  const fy = Math.min(t.ny - 1.001, Math.max(0, (y - t.y0) / t.step));
  const fz = Math.min(t.nz - 1.001, Math.max(0, (z - t.z0) / t.step));
  const iy = Math.floor(fy), iz = Math.floor(fz), wy = fy - iy, wz = fz - iz;
  const d = t.data, sx = 1, sy = t.nx, sz = t.nx * t.ny;
  const b00 = iz * sz + iy * sy, b01 = b00 + sy, b10 = b00 + sz, b11 = b10 + sy;
  const w00 = (1 - wy) * (1 - wz), w01 = wy * (1 - wz), w10 = (1 - wy) * wz, w11 = wy * wz;
  for (let i = 0; i < n; i++) {
    const fx = Math.min(t.nx - 1.001, Math.max(0, (x0 + i * dx - t.x0) / t.step));
    const ix = Math.floor(fx), wx = fx - ix;
    const a = w00 * d[b00 + ix] + w01 * d[b01 + ix] + w10 * d[b10 + ix] + w11 * d[b11 + ix];
    const b = w00 * d[b00 + ix + sx] + w01 * d[b01 + ix + sx] + w10 * d[b10 + ix + sx] +
      w11 * d[b11 + ix + sx];
    out[i] = a + wx * (b - a);
  }
}

/** The field at one point. */
export function textureAt(t: Texture, x: number, y: number, z: number): number {
  const out = new Float32Array(1);
  textureRow(t, x, 0, y, z, 1, out);
  return out[0];
}
