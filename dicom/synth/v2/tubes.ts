/**
 * @module Tubes of the v2 chest generator: chains of tapered capsules (vessels, airways, ribs,
 * the aorta…) bucketed along z, rasterised per plane by visiting only the capsules near the plane
 * and only the pixels of their bounding boxes. Each set keeps the minimum signed distance to its
 * outer (and optional inner) surface per pixel, so overlapping capsules join seamlessly and edges
 * get partial-volume values from the distance to the centreline.
 */

import { type Canvas, clamp } from "./raster.ts";

/** Capsule record: x0 y0 z0 x1 y1 z1 r0 r1 ri0 ri1 (ri ≤ 0: no inner surface). */
export const CAP = 10;
const BUCKET_MM = 4;

/** A set of capsules indexed by z bucket. */
export interface TubeSet {
  caps: Float64Array;
  count: number;
  zMin: number;
  start: Int32Array;
  items: Int32Array;
}

/** A point of a polyline: x, y, z, outer radius, inner radius (0: none). */
export type TubePoint = [number, number, number, number, number];

/** Appends the capsules joining consecutive points of a polyline. */
export function addPolyline(out: number[], pts: readonly TubePoint[]): void {
  for (let i = 0; i + 1 < pts.length; i++) {
    const a = pts[i], b = pts[i + 1];
    out.push(a[0], a[1], a[2], b[0], b[1], b[2], a[3], b[3], a[4], b[4]);
  }
}

/** Chaikin-smoothed, resampled polyline through control points (radii interpolated). */
export function smoothPath(ctrl: readonly TubePoint[], iterations = 3): TubePoint[] {
  let pts = ctrl.map((p) => [...p] as TubePoint);
  for (let it = 0; it < iterations; it++) {
    const next: TubePoint[] = [pts[0]];
    for (let i = 0; i + 1 < pts.length; i++) {
      const a = pts[i], b = pts[i + 1];
      next.push(a.map((v, k) => 0.75 * v + 0.25 * b[k]) as TubePoint);
      next.push(a.map((v, k) => 0.25 * v + 0.75 * b[k]) as TubePoint);
    }
    next.push(pts[pts.length - 1]);
    pts = next;
  }
  return pts;
}

/** Builds the z index of a flat capsule list. */
export function buildTubeSet(list: readonly number[]): TubeSet {
  const caps = Float64Array.from(list), count = caps.length / CAP;
  let zMin = Infinity, zMax = -Infinity;
  const lo = new Float64Array(count), hi = new Float64Array(count);
  for (let k = 0; k < count; k++) {
    const o = k * CAP, r = Math.max(caps[o + 6], caps[o + 7]);
    lo[k] = Math.min(caps[o + 2], caps[o + 5]) - r;
    hi[k] = Math.max(caps[o + 2], caps[o + 5]) + r;
    zMin = Math.min(zMin, lo[k]);
    zMax = Math.max(zMax, hi[k]);
  }
  if (count === 0) zMin = zMax = 0;
  const nb = Math.floor((zMax - zMin) / BUCKET_MM) + 1;
  const counts = new Int32Array(nb + 1);
  const range = (k: number) =>
    [Math.floor((lo[k] - zMin) / BUCKET_MM), Math.floor((hi[k] - zMin) / BUCKET_MM)] as const;
  for (let k = 0; k < count; k++) {
    const [b0, b1] = range(k);
    for (let b = b0; b <= b1; b++) counts[b + 1]++;
  }
  for (let b = 0; b < nb; b++) counts[b + 1] += counts[b];
  const items = new Int32Array(counts[nb]), fill = counts.slice(0, nb);
  for (let k = 0; k < count; k++) {
    const [b0, b1] = range(k);
    for (let b = b0; b <= b1; b++) items[fill[b]++] = k;
  }
  return { caps, count, zMin, start: counts, items };
}

/** Indices [from, to) into `set.items` of the capsules that may reach plane z. */
function bucketOf(set: TubeSet, z: number): [number, number] {
  const b = Math.floor((z - set.zMin) / BUCKET_MM);
  if (b < 0 || b >= set.start.length - 1) return [0, 0];
  return [set.start[b], set.start[b + 1]];
}

/** A pixel box [c0, c1] × [r0, r1] (inclusive); c0 > c1 when empty. */
export type Box = [number, number, number, number];

/**
 * Writes the minimum signed distance (mm) of each pixel of plane z to the set's outer surface
 * into `cv.sdfA` (inner surface: `cv.sdfB`); returns the box of touched pixels.
 */
export function rasterTubes(cv: Canvas, set: TubeSet, z: number, margin: number): Box {
  const g = cv.grid, caps = set.caps, sdfA = cv.sdfA, sdfB = cv.sdfB;
  const box: Box = [g.cols, -1, g.rows, -1];
  const [from, to] = bucketOf(set, z);
  for (let it = from; it < to; it++) {
    const o = set.items[it] * CAP;
    const x0 = caps[o], y0 = caps[o + 1], z0 = caps[o + 2];
    const ddx = caps[o + 3] - x0, ddy = caps[o + 4] - y0, ddz = caps[o + 5] - z0;
    const ra = caps[o + 6], rb = caps[o + 7], ia = caps[o + 8], ib = caps[o + 9];
    const rmax = Math.max(ra, rb) + margin;
    let ta = 0, tb = 1;
    if (Math.abs(ddz) > 1e-9) {
      const t1 = (z - rmax - z0) / ddz, t2 = (z + rmax - z0) / ddz;
      ta = Math.max(0, Math.min(t1, t2));
      tb = Math.min(1, Math.max(t1, t2));
      if (ta > tb) continue;
    } else if (Math.abs(z - z0) > rmax) continue;
    const xa = x0 + ta * ddx, xb = x0 + tb * ddx, ya = y0 + ta * ddy, yb = y0 + tb * ddy;
    const c0 = Math.max(0, Math.ceil((Math.min(xa, xb) - rmax - g.x0) / g.dx));
    const c1 = Math.min(g.cols - 1, Math.floor((Math.max(xa, xb) + rmax - g.x0) / g.dx));
    const r0 = Math.max(0, Math.ceil((Math.min(ya, yb) - rmax - g.y0) / g.dx));
    const r1 = Math.min(g.rows - 1, Math.floor((Math.max(ya, yb) + rmax - g.y0) / g.dx));
    if (c0 > c1 || r0 > r1) continue;
    if (c0 < box[0]) box[0] = c0;
    if (c1 > box[1]) box[1] = c1;
    if (r0 < box[2]) box[2] = r0;
    if (r1 > box[3]) box[3] = r1;
    const wz = z - z0, l2 = ddx * ddx + ddy * ddy + ddz * ddz || 1e-12;
    const dr = rb - ra, di = ib - ia, inner = ia > 0 || ib > 0;
    for (let r = r0; r <= r1; r++) {
      const wy = g.y0 + r * g.dx - y0;
      const base = r * g.cols;
      const partial = wy * ddy + wz * ddz;
      for (let c = c0; c <= c1; c++) {
        const wx = g.x0 + c * g.dx - x0;
        let t = (wx * ddx + partial) / l2;
        t = t < 0 ? 0 : t > 1 ? 1 : t;
        const ex = wx - t * ddx, ey = wy - t * ddy, ez = wz - t * ddz;
        const d = Math.sqrt(ex * ex + ey * ey + ez * ez);
        const s = d - (ra + t * dr);
        const p = base + c;
        if (s < sdfA[p]) sdfA[p] = s;
        if (inner) {
          const si = d - (ia + t * di);
          if (si < sdfB[p]) sdfB[p] = si;
        }
      }
    }
  }
  return box;
}

/** How a rasterised set is blended into the canvas. */
export interface TubeStyle {
  hu: number;
  /** HU inside the inner surface (lumen, marrow); ignored when the set has none. */
  innerHu?: number;
  /** Regions (bit set) the tube may paint. */
  allow: number;
  /** Region given to pixels whose centre lies inside the tube (undefined: unchanged). */
  to?: number;
  /** GGO-like: never lowers a pixel's value. */
  maxBlend?: boolean;
}

/** Blends the set rasterised by `rasterTubes` into the canvas and resets the scratch planes. */
export function blendTubes(cv: Canvas, box: Box, style: TubeStyle): void {
  const g = cv.grid, { value, region, sdfA, sdfB } = cv;
  const w = g.dx, hasInner = style.innerHu !== undefined;
  const innerHu = style.innerHu ?? 0, to = style.to, allow = style.allow;
  for (let r = box[2]; r <= box[3]; r++) {
    for (let p = r * g.cols + box[0]; p <= r * g.cols + box[1]; p++) {
      const s = sdfA[p];
      if (s === Infinity) continue;
      sdfA[p] = Infinity;
      const si = sdfB[p];
      sdfB[p] = Infinity;
      if (!((allow >>> region[p]) & 1)) continue;
      const occ = clamp(0.5 - s / w, 0, 1);
      if (occ <= 0) continue;
      let v = value[p] + occ * (style.hu - value[p]);
      if (hasInner && si !== Infinity) v += clamp(0.5 - si / w, 0, 1) * (innerHu - v);
      value[p] = style.maxBlend ? Math.max(value[p], v) : v;
      if (to !== undefined && s <= 0) region[p] = to;
    }
  }
}

/** Rasterises and blends a set in one go. */
export function paintTubes(cv: Canvas, set: TubeSet, z: number, style: TubeStyle): void {
  const box = rasterTubes(cv, set, z, cv.grid.dx);
  if (box[0] <= box[1]) blendTubes(cv, box, style);
}

/**
 * Discs (x, y, radius) covering the set's cross-section with plane z, for hulls: sampled along
 * each capsule's centreline every ~2 mm where it is within its radius of the plane.
 */
export function tubeDiscs(set: TubeSet, z: number, out: number[]): void {
  const caps = set.caps;
  const [from, to] = bucketOf(set, z);
  for (let it = from; it < to; it++) {
    const o = set.items[it] * CAP;
    const x0 = caps[o], y0 = caps[o + 1], z0 = caps[o + 2];
    const ddx = caps[o + 3] - x0, ddy = caps[o + 4] - y0, ddz = caps[o + 5] - z0;
    const ra = caps[o + 6], rb = caps[o + 7];
    const len = Math.hypot(ddx, ddy, ddz);
    const n = Math.max(1, Math.ceil(len / 2));
    for (let i = 0; i <= n; i++) {
      const t = i / n, dz = z0 + t * ddz - z, r = ra + t * (rb - ra);
      const q = r * r - dz * dz;
      if (q > 0) out.push(x0 + t * ddx, y0 + t * ddy, Math.sqrt(q));
    }
  }
}
