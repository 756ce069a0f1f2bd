/**
 * @module Nodule candidates by classical image processing, for the learned false-positive stage
 * (`candidate_stage.ts`): what every lung CAD system does before it classifies. The lungs' box of
 * the CT is resampled to an isotropic grid (`gridMm`), blurred with Gaussians of several scales,
 * and the scale-normalised Laplacian of Gaussian (−σ²∇²G, in HU) marks bright blobs: its local
 * maxima over space and scale, inside the lungs (or within `pleuraMm` of them: a nodule on the
 * pleura) and bright enough, are the candidates. The Hessian of the chosen scale says how
 * blob-like each is (all three eigenvalues negative and alike: a ball; one near zero: a tube).
 * They are ranked by response × blobness (a faint ground-glass ball before a bright vessel's
 * branching) and the strongest `maxCandidates` kept. `patch` reads a cube of HU around a candidate for the classifier.
 */
import type { LungMask, ValueVolume } from "../anatomy/lung_mask.ts";
import { symmetricEigenvalues } from "./measure.ts";

export interface CandidateOptions {
  /** The isotropic grid (mm). */
  gridMm: number;
  /** Gaussian scales σ (mm); a ball of diameter d answers most at σ = d / (2√3). */
  scalesMm: number[];
  /** Smallest normalised LoG response (HU). */
  minResponseHu: number;
  /** Smallest blurred HU at the centre. */
  minCentreHu: number;
  /** Smallest blobness (|λ3| / |λ1| of the Hessian, 0 for a tube, 1 for a ball). */
  minBlobness: number;
  /** Candidates within this distance of the lungs count (mm). */
  pleuraMm: number;
  /** At most this many, the strongest first. */
  maxCandidates: number;
}

export const DEFAULT_CANDIDATE_OPTIONS: CandidateOptions = {
  gridMm: 1.25,
  scalesMm: [1, 1.5, 2.25, 3.4],
  minResponseHu: 60,
  minCentreHu: -800,
  minBlobness: 0.1,
  pleuraMm: 3,
  maxCandidates: 150,
};

/** The lungs' box on an isotropic grid: HU and lung labels (dilated by `pleuraMm`). */
export interface IsoVolume {
  hu: Float32Array;
  lung: Uint8Array;
  nx: number;
  ny: number;
  nz: number;
  mm: number;
  /** Grid voxel (0, 0, 0) in the value volume's voxel coordinates (fractional). */
  origin: [number, number, number];
  /** One grid step in value-volume voxels, per axis. */
  step: [number, number, number];
}

export interface Candidate {
  /** Position in the value volume's voxel coordinates (i column, j row, k plane; fractional). */
  at: [number, number, number];
  /** Position on the isotropic grid. */
  iso: [number, number, number];
  scaleMm: number;
  responseHu: number;
  centreHu: number;
  blobness: number;
  /** The Hessian's eigenvalues (HU/mm², descending). */
  eigen: [number, number, number];
}

/** Resamples the lungs' box (padded by `padMm`) of `v` to an isotropic grid (trilinear). */
export function isoVolume(
  v: ValueVolume,
  lung: LungMask,
  o: Pick<CandidateOptions, "gridMm" | "pleuraMm">,
  padMm = 12,
): IsoVolume | null {
  const { width: w, height: h, depth: d } = v;
  const plane = w * h;
  let x0 = w, x1 = -1, y0 = h, y1 = -1, z0 = d, z1 = -1;
  for (let k = 0; k < d; k++) {
    for (let j = 0; j < h; j++) {
      const row = k * plane + j * w;
      for (let i = 0; i < w; i++) {
        if (!lung.labels[row + i]) continue;
        if (i < x0) x0 = i;
        if (i > x1) x1 = i;
        if (j < y0) y0 = j;
        if (j > y1) y1 = j;
        if (k < z0) z0 = k;
        if (k > z1) z1 = k;
      }
    }
  }
  if (x1 < 0) return null;
  const g = o.gridMm;
  const lo = [
    Math.max(0, x0 - padMm / v.sx),
    Math.max(0, y0 - padMm / v.sy),
    Math.max(0, z0 - padMm / v.sz),
  ];
  const hi = [
    Math.min(w - 1, x1 + padMm / v.sx),
    Math.min(h - 1, y1 + padMm / v.sy),
    Math.min(d - 1, z1 + padMm / v.sz),
  ];
  const step: [number, number, number] = [g / v.sx, g / v.sy, g / v.sz];
  const nx = Math.floor((hi[0] - lo[0]) / step[0]) + 1;
  const ny = Math.floor((hi[1] - lo[1]) / step[1]) + 1;
  const nz = Math.floor((hi[2] - lo[2]) / step[2]) + 1;
  const n = nx * ny * nz;
  const hu = new Float32Array(n);
  const lungIso = new Uint8Array(n);
  const { scale, offset } = v.toHu;
  // Per axis: the lower sample and its weight, once.
  const taps = (count: number, start: number, s: number, max: number) => {
    const i0 = new Int32Array(count), t = new Float32Array(count);
    for (let a = 0; a < count; a++) {
      const p = Math.min(max, start + a * s);
      i0[a] = Math.min(max - 1, Math.floor(p));
      t[a] = max === 0 ? 0 : p - i0[a];
      if (max === 0) i0[a] = 0;
    }
    return { i0, t };
  };
  const tx = taps(nx, lo[0], step[0], w - 1);
  const ty = taps(ny, lo[1], step[1], h - 1);
  const tz = taps(nz, lo[2], step[2], d - 1);
  const dx = w > 1 ? 1 : 0, dy = h > 1 ? w : 0, dz = d > 1 ? plane : 0;
  let p = 0;
  for (let c = 0; c < nz; c++) {
    const zb = tz.i0[c] * plane, fz = tz.t[c];
    for (let b = 0; b < ny; b++) {
      const yb = zb + ty.i0[b] * w, fy = ty.t[b];
      for (let a = 0; a < nx; a++, p++) {
        const q = yb + tx.i0[a], fx = tx.t[a];
        const s = v.data;
        const c00 = s[q] + (s[q + dx] - s[q]) * fx;
        const c10 = s[q + dy] + (s[q + dy + dx] - s[q + dy]) * fx;
        const c01 = s[q + dz] + (s[q + dz + dx] - s[q + dz]) * fx;
        const c11 = s[q + dz + dy] + (s[q + dz + dy + dx] - s[q + dz + dy]) * fx;
        const c0 = c00 + (c10 - c00) * fy, c1 = c01 + (c11 - c01) * fy;
        hu[p] = (c0 + (c1 - c0) * fz) * scale + offset;
        // Nearest lung label.
        const ni = Math.round(tx.i0[a] + fx), nj = Math.round(ty.i0[b] + fy);
        const nk = Math.round(tz.i0[c] + fz);
        lungIso[p] = lung.labels[nk * plane + nj * w + ni];
      }
    }
  }
  const iso: IsoVolume = {
    hu,
    lung: dilateIso(lungIso, nx, ny, nz, Math.round(o.pleuraMm / g)),
    nx,
    ny,
    nz,
    mm: g,
    origin: [lo[0], lo[1], lo[2]],
    step,
  };
  return iso;
}

/** Dilation by a ball of `r` voxels (separable max along the axes, then the corners trimmed). */
function dilateIso(m: Uint8Array, nx: number, ny: number, nz: number, r: number): Uint8Array {
  if (r <= 0) return m;
  // Chamfer-like: distance to lung by three 1D passes of squared distances (exact EDT in voxels).
  const INF = 1e9;
  const f = new Float32Array(m.length);
  for (let i = 0; i < m.length; i++) f[i] = m[i] ? 0 : INF;
  const pass = (n: number, stride: number, count: number, base: (c: number) => number) => {
    const g = new Float64Array(n);
    for (let c = 0; c < count; c++) {
      const o = base(c);
      for (let i = 0; i < n; i++) g[i] = f[o + i * stride];
      // Brute-force window (r is small): min over |d| ≤ r of g + d².
      for (let i = 0; i < n; i++) {
        let best = g[i];
        for (let dd = 1; dd <= r; dd++) {
          const d2 = dd * dd;
          if (i - dd >= 0 && g[i - dd] + d2 < best) best = g[i - dd] + d2;
          if (i + dd < n && g[i + dd] + d2 < best) best = g[i + dd] + d2;
        }
        f[o + i * stride] = best;
      }
    }
  };
  const plane = nx * ny;
  pass(nx, 1, ny * nz, (c) => c * nx);
  pass(ny, nx, nx * nz, (c) => Math.floor(c / nx) * plane + (c % nx));
  pass(nz, plane, plane, (c) => c);
  const out = new Uint8Array(m.length);
  const r2 = r * r;
  for (let i = 0; i < m.length; i++) out[i] = m[i] || (f[i] <= r2 ? 255 : 0);
  return out;
}

/** Separable Gaussian blur of σ voxels, in place into `out`. */
function gaussian(
  src: Float32Array,
  out: Float32Array,
  nx: number,
  ny: number,
  nz: number,
  sigma: number,
): void {
  const r = Math.max(1, Math.ceil(3 * sigma));
  const k = new Float32Array(2 * r + 1);
  let sum = 0;
  for (let i = -r; i <= r; i++) sum += k[i + r] = Math.exp(-(i * i) / (2 * sigma * sigma));
  for (let i = 0; i < k.length; i++) k[i] /= sum;
  const plane = nx * ny;
  const tmp = new Float32Array(src.length);
  const line = new Float32Array(Math.max(nx, ny, nz));
  const run = (
    from: Float32Array,
    to: Float32Array,
    n: number,
    stride: number,
    starts: (emit: (o: number) => void) => void,
  ) => {
    const lo = Math.min(r, n), hi = Math.max(lo, n - r);
    starts((o) => {
      for (let i = 0; i < n; i++) line[i] = from[o + i * stride];
      for (let i = 0; i < n; i++) {
        let acc = 0;
        if (i >= lo && i < hi) {
          for (let t = 0, j = i - r; t < k.length; t++, j++) acc += k[t] * line[j];
        } else {
          for (let t = -r; t <= r; t++) {
            const j = i + t < 0 ? 0 : i + t >= n ? n - 1 : i + t; // edges replicated
            acc += k[t + r] * line[j];
          }
        }
        to[o + i * stride] = acc;
      }
    });
  };
  run(src, out, nx, 1, (emit) => {
    for (let c = 0; c < nz; c++) for (let b = 0; b < ny; b++) emit(c * plane + b * nx);
  });
  run(out, tmp, ny, nx, (emit) => {
    for (let c = 0; c < nz; c++) for (let a = 0; a < nx; a++) emit(c * plane + a);
  });
  run(tmp, out, nz, plane, (emit) => {
    for (let p = 0; p < plane; p++) emit(p);
  });
}

/** The candidates of one volume, strongest first. */
export function findCandidates(
  iso: IsoVolume,
  options: Partial<CandidateOptions> = {},
): Candidate[] {
  const o = { ...DEFAULT_CANDIDATE_OPTIONS, ...options };
  const { nx, ny, nz, mm } = iso;
  const plane = nx * ny, n = plane * nz;
  const best = new Float32Array(n).fill(-Infinity);
  const bestScale = new Uint8Array(n);
  const blurred: Float32Array[] = [];
  // Bone and contrast clamped to 200 HU: a rib's edge is no stronger than soft tissue's.
  const clamped = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    clamped[i] = Math.max(-1000, Math.min(200, iso.hu[i]));
  }
  for (const [s, sigmaMm] of o.scalesMm.entries()) {
    const g = new Float32Array(n);
    gaussian(clamped, g, nx, ny, nz, sigmaMm / mm);
    blurred.push(g);
    const norm = -(sigmaMm * sigmaMm) / (mm * mm);
    for (let c = 1; c < nz - 1; c++) {
      for (let b = 1; b < ny - 1; b++) {
        let p = c * plane + b * nx + 1;
        for (let a = 1; a < nx - 1; a++, p++) {
          if (!iso.lung[p]) continue;
          const lap = g[p + 1] + g[p - 1] + g[p + nx] + g[p - nx] + g[p + plane] + g[p - plane] -
            6 * g[p];
          const r = norm * lap;
          if (r > best[p]) {
            best[p] = r;
            bestScale[p] = s;
          }
        }
      }
    }
  }
  const found: Candidate[] = [];
  for (let c = 1; c < nz - 1; c++) {
    for (let b = 1; b < ny - 1; b++) {
      let p = c * plane + b * nx + 1;
      for (let a = 1; a < nx - 1; a++, p++) {
        const r = best[p];
        if (!(r >= o.minResponseHu) || !iso.lung[p]) continue;
        let isMax = true;
        for (let dz = -1; dz <= 1 && isMax; dz++) {
          for (let dy = -1; dy <= 1 && isMax; dy++) {
            for (let dx = -1; dx <= 1; dx++) {
              if ((dx || dy || dz) && best[p + dz * plane + dy * nx + dx] > r) {
                isMax = false;
                break;
              }
            }
          }
        }
        if (!isMax) continue;
        const s = bestScale[p], g = blurred[s];
        if (g[p] < o.minCentreHu) continue;
        const h2 = mm * mm;
        const xx = (g[p + 1] + g[p - 1] - 2 * g[p]) / h2;
        const yy = (g[p + nx] + g[p - nx] - 2 * g[p]) / h2;
        const zz = (g[p + plane] + g[p - plane] - 2 * g[p]) / h2;
        const xy = (g[p + nx + 1] - g[p + nx - 1] - g[p - nx + 1] + g[p - nx - 1]) / (4 * h2);
        const xz = (g[p + plane + 1] - g[p + plane - 1] - g[p - plane + 1] + g[p - plane - 1]) /
          (4 * h2);
        const yz = (g[p + plane + nx] - g[p + plane - nx] - g[p - plane + nx] + g[p - plane - nx]) /
          (4 * h2);
        const e = symmetricEigenvalues([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]]);
        // A bright blob: all three negative; blobness = smallest magnitude / largest.
        const blobness = e[0] < 0 ? e[0] / e[2] : 0;
        if (blobness < o.minBlobness) continue;
        found.push({
          at: [
            iso.origin[0] + a * iso.step[0],
            iso.origin[1] + b * iso.step[1],
            iso.origin[2] + c * iso.step[2],
          ],
          iso: [a, b, c],
          scaleMm: o.scalesMm[s],
          responseHu: r,
          centreHu: g[p],
          blobness,
          eigen: e,
        });
      }
    }
  }
  // Strongest first by response × blobness: a faint ground-glass ball before a bright vessel.
  const strength = (c: Candidate) => c.responseHu * c.blobness;
  found.sort((x, y) => strength(y) - strength(x));
  // One candidate per blob: a weaker one within the stronger one's radius is the same blob.
  const kept: Candidate[] = [];
  for (const c of found) {
    const near = kept.some((k) => {
      const d = Math.hypot(c.iso[0] - k.iso[0], c.iso[1] - k.iso[1], c.iso[2] - k.iso[2]) * mm;
      return d < Math.max(2 * mm, Math.sqrt(3) * k.scaleMm);
    });
    if (near) continue;
    kept.push(c);
    if (kept.length >= o.maxCandidates) break;
  }
  return kept;
}

/**
 * A cube of `size`³ HU around iso voxel `at` (nearest, out of bounds −1000), scaled to 0…1 over
 * −1000…400 HU: the classifier's input, `[z][y][x]`. The voxel `at` itself is at index
 * size/2 − 1 on each axis (for an even size; as the classifier was trained).
 */
export function patch(
  iso: IsoVolume,
  at: readonly [number, number, number],
  size: number,
  out = new Float32Array(size ** 3),
): Float32Array {
  const half = size / 2;
  const { nx, ny, nz } = iso;
  const plane = nx * ny;
  let p = 0;
  for (let c = 0; c < size; c++) {
    const z = Math.round(at[2] - half + 0.5 + c);
    for (let b = 0; b < size; b++) {
      const y = Math.round(at[1] - half + 0.5 + b);
      for (let a = 0; a < size; a++, p++) {
        const x = Math.round(at[0] - half + 0.5 + a);
        const inside = x >= 0 && y >= 0 && z >= 0 && x < nx && y < ny && z < nz;
        const hu = inside ? iso.hu[z * plane + y * nx + x] : -1000;
        out[p] = (Math.max(-1000, Math.min(400, hu)) + 1000) / 1400;
      }
    }
  }
  return out;
}
