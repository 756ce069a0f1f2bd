/**
 * @module Scanner effects of the v2 chest on a noise-free slice: reconstruction blur (a Gaussian
 * point spread function in-plane), correlated noise (seeded white noise filtered by a small
 * Gaussian and rescaled to the requested standard deviation), and quantisation to stored values
 * (HU − RescaleIntercept, clamped to 0..4095 like v1).
 */

import { createRng } from "../rng.ts";

/** Stored value = HU − RESCALE_INTERCEPT (slope 1), as in v1. */
export const RESCALE_INTERCEPT = -1024;
const MAX_STORED = 4095;
const TABLE_SIZE = 1 << 16;

/** A normalised 1D Gaussian kernel of standard deviation `sigma` pixels (identity when tiny). */
export function gaussianKernel(sigma: number): Float32Array {
  if (!(sigma > 0.05)) return Float32Array.of(1);
  const r = Math.max(1, Math.ceil(3 * sigma)), k = new Float32Array(2 * r + 1);
  let sum = 0;
  for (let i = -r; i <= r; i++) sum += k[i + r] = Math.exp((-0.5 * i * i) / (sigma * sigma));
  for (let i = 0; i < k.length; i++) k[i] /= sum;
  return k;
}

/** Separable 2D convolution of `img` (cols × rows) in place, edges clamped; `tmp` is scratch. */
export function blur2d(
  img: Float32Array,
  tmp: Float32Array,
  cols: number,
  rows: number,
  k: Float32Array,
): void {
  if (k.length === 1) return;
  const r = (k.length - 1) / 2;
  for (let y = 0; y < rows; y++) {
    const o = y * cols;
    for (let x = 0; x < cols; x++) {
      let v = 0;
      if (x >= r && x < cols - r) {
        for (let i = -r; i <= r; i++) v += k[i + r] * img[o + x + i];
      } else {
        for (let i = -r; i <= r; i++) {
          v += k[i + r] * img[o + Math.min(cols - 1, Math.max(0, x + i))];
        }
      }
      tmp[o + x] = v;
    }
  }
  for (let y = 0; y < rows; y++) {
    const o = y * cols;
    if (y >= r && y < rows - r) {
      for (let x = 0; x < cols; x++) img[o + x] = 0;
      for (let i = -r; i <= r; i++) {
        const w = k[i + r], s = (y + i) * cols;
        for (let x = 0; x < cols; x++) img[o + x] += w * tmp[s + x];
      }
    } else {
      for (let x = 0; x < cols; x++) {
        let v = 0;
        for (let i = -r; i <= r; i++) {
          v += k[i + r] * tmp[Math.min(rows - 1, Math.max(0, y + i)) * cols + x];
        }
        img[o + x] = v;
      }
    }
  }
}

/** 65,536 standard normal deviates of a study, sampled by the per-slice noise generator. */
export function createUnitNoise(seed: number): Float32Array {
  const rng = createRng(`synth:v2:${seed}:noise-table`);
  const table = new Float32Array(TABLE_SIZE);
  for (let i = 0; i < TABLE_SIZE; i++) table[i] = rng.normal();
  return table;
}

/**
 * Fills `out` with correlated noise of standard deviation `sigmaHu`: white noise from `table`
 * (xorshift32 stream seeded by `seed`) filtered by kernel `k`.
 */
export function correlatedNoise(
  out: Float32Array,
  tmp: Float32Array,
  cols: number,
  rows: number,
  table: Float32Array,
  seed: number,
  k: Float32Array,
  sigmaHu: number,
): void {
  let s = seed | 0 || 0x9e3779b9;
  for (let i = 0; i < out.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = table[s >>> 16];
  }
  blur2d(out, tmp, cols, rows, k);
  let k2 = 0;
  for (let i = 0; i < k.length; i++) k2 += k[i] * k[i];
  const scale = sigmaHu / k2; // the 2D kernel's Σw² is (Σk²)², so the std shrinks by Σk²
  for (let i = 0; i < out.length; i++) out[i] *= scale;
}

/** Stored pixels: round(HU + noise) − intercept, clamped to 0..4095. */
export function quantize(hu: Float32Array, noise: Float32Array, out: Int16Array): void {
  const off = -RESCALE_INTERCEPT;
  for (let i = 0; i < out.length; i++) {
    const v = Math.round(hu[i] + noise[i]) + off;
    out[i] = v < 0 ? 0 : v > MAX_STORED ? MAX_STORED : v;
  }
}
