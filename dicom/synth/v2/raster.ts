/**
 * @module Raster primitives of the v2 chest generator: a canvas (HU values + tissue regions on an
 * axial pixel grid in patient millimetres), polygon scanline fill restricted to allowed regions,
 * radial (star-shaped) contours, and ray/ellipse distances used to build hulls.
 *
 * Pixel (c, r) has its centre at (x0 + c·dx, y0 + r·dx); a pixel is inside a polygon when its
 * centre is (even-odd rule, half-open edges), so a 1×1 canvas is an exact point test.
 */

/** An axial pixel grid: square pixels, centre of pixel (0, 0) at (x0, y0), mm (LPS). */
export interface Grid2 {
  cols: number;
  rows: number;
  x0: number;
  y0: number;
  dx: number;
}

/** Tissue regions (a pixel's label while a plane is painted). */
export const R = {
  air: 0,
  lungR: 1,
  lungL: 2,
  table: 3,
  skin: 4,
  fat: 5,
  muscle: 6,
  cavity: 7,
  mediastinum: 8,
  bone: 9,
  liver: 10,
  abdomen: 11,
  organ: 12,
  heart: 13,
} as const;

/** Bit set of regions. */
export const bits = (...regions: number[]): number => regions.reduce((m, r) => m | (1 << r), 0);
export const ANY = 0x7fffffff;
export const LUNGS = bits(R.lungR, R.lungL);

/**
 * A plane being painted. `sdfA`/`sdfB` are +Infinity scratch planes for tubes; `tex` holds the
 * anatomical texture of the lung pixels once they are shaded.
 */
export interface Canvas {
  grid: Grid2;
  value: Float32Array;
  region: Uint8Array;
  sdfA: Float32Array;
  sdfB: Float32Array;
  tex: Float32Array;
}

export function createCanvas(grid: Grid2): Canvas {
  const n = grid.cols * grid.rows;
  const sdfA = new Float32Array(n).fill(Infinity), sdfB = new Float32Array(n).fill(Infinity);
  const value = new Float32Array(n), tex = new Float32Array(n);
  return { grid, value, region: new Uint8Array(n), sdfA, sdfB, tex };
}

/** Resets a canvas to air. */
export function clearCanvas(cv: Canvas): void {
  cv.value.fill(-1000);
  cv.region.fill(R.air);
}

const xs = new Float64Array(4096);

/**
 * Fills the polygon (x, y pairs) with `hu` and region `to` on pixels whose region is in `allow`;
 * `rowLimit` optionally keeps only pixel centres with y < rowLimit (a half-plane).
 */
export function fillPolygon(
  cv: Canvas,
  poly: Float64Array,
  hu: number,
  to: number,
  allow = ANY,
  yBelow = Infinity,
): void {
  const g = cv.grid, n = poly.length >> 1;
  if (n < 3) return;
  let minY = Infinity, maxY = -Infinity;
  for (let i = 1; i < poly.length; i += 2) {
    if (poly[i] < minY) minY = poly[i];
    if (poly[i] > maxY) maxY = poly[i];
  }
  const r0 = Math.max(0, Math.ceil((minY - g.y0) / g.dx));
  const r1 = Math.min(g.rows - 1, Math.floor((Math.min(maxY, yBelow) - g.y0) / g.dx));
  const { value, region } = cv;
  for (let r = r0; r <= r1; r++) {
    const y = g.y0 + r * g.dx;
    if (y >= yBelow) break;
    let k = 0;
    for (let i = 0, j = n - 1; i < n; j = i++) {
      const yi = poly[2 * i + 1], yj = poly[2 * j + 1];
      if ((yi <= y && y < yj) || (yj <= y && y < yi)) {
        const xi = poly[2 * i], xj = poly[2 * j];
        xs[k++] = xi + ((y - yi) * (xj - xi)) / (yj - yi);
      }
    }
    for (let i = 1; i < k; i++) {
      const v = xs[i];
      let j = i - 1;
      while (j >= 0 && xs[j] > v) (xs[j + 1] = xs[j]), j--;
      xs[j + 1] = v;
    }
    const base = r * g.cols;
    for (let i = 0; i + 1 < k; i += 2) {
      const c0 = Math.max(0, Math.ceil((xs[i] - g.x0) / g.dx - 1e-9));
      const c1 = Math.min(g.cols - 1, Math.ceil((xs[i + 1] - g.x0) / g.dx - 1e-9) - 1);
      if (c0 > c1) continue;
      if (allow === ANY) {
        value.fill(hu, base + c0, base + c1 + 1);
        region.fill(to, base + c0, base + c1 + 1);
      } else {
        for (let p = base + c0; p <= base + c1; p++) {
          if ((allow >>> region[p]) & 1) (value[p] = hu), (region[p] = to);
        }
      }
    }
  }
}

/** A closed contour of `n` vertices at radius `radius(theta)` around (cx, cy). */
export function radialPolygon(
  cx: number,
  cy: number,
  n: number,
  radius: (theta: number) => number,
): Float64Array {
  const out = new Float64Array(2 * n);
  for (let i = 0; i < n; i++) {
    const t = (2 * Math.PI * i) / n, r = radius(t);
    out[2 * i] = cx + r * Math.cos(t);
    out[2 * i + 1] = cy + r * Math.sin(t);
  }
  return out;
}

/** A rotated ellipse as a polygon (semi-axes rx along angle `rot`, ry across it). */
export function ellipsePolygon(
  cx: number,
  cy: number,
  rx: number,
  ry: number,
  rot = 0,
  n = 64,
): Float64Array {
  const out = new Float64Array(2 * n), c = Math.cos(rot), s = Math.sin(rot);
  for (let i = 0; i < n; i++) {
    const t = (2 * Math.PI * i) / n, u = rx * Math.cos(t), v = ry * Math.sin(t);
    out[2 * i] = cx + u * c - v * s;
    out[2 * i + 1] = cy + u * s + v * c;
  }
  return out;
}

/** A polygon scaled about (cx, cy) by `k` and grown by `grow` mm along the radius. */
export function scalePolygon(
  poly: Float64Array,
  cx: number,
  cy: number,
  grow: number,
): Float64Array {
  const out = new Float64Array(poly.length);
  for (let i = 0; i < poly.length; i += 2) {
    const dx = poly[i] - cx, dy = poly[i + 1] - cy, d = Math.hypot(dx, dy) || 1;
    const k = Math.max(0, d + grow) / d;
    out[i] = cx + dx * k;
    out[i + 1] = cy + dy * k;
  }
  return out;
}

/**
 * Superellipse radius at angle `t` (x = r cos t, y = r sin t): half-width `a`, half-depth `bNeg`
 * towards -y (anterior) and `bPos` towards +y, exponents `nNeg`/`nPos` per half.
 */
export function superRadius(
  t: number,
  a: number,
  bNeg: number,
  bPos: number,
  nNeg: number,
  nPos: number,
): number {
  const c = Math.abs(Math.cos(t)), s = Math.sin(t);
  const b = s < 0 ? bNeg : bPos, n = s < 0 ? nNeg : nPos;
  const v = Math.pow(c / a, n) + Math.pow(Math.abs(s) / b, n);
  return v > 0 ? Math.pow(v, -1 / n) : Math.max(a, b);
}

/** Far distance along the unit ray (dx, dy) from (px, py) to the rotated ellipse's boundary, or -1. */
export function rayEllipseFar(
  px: number,
  py: number,
  dx: number,
  dy: number,
  cx: number,
  cy: number,
  rx: number,
  ry: number,
  rot: number,
): number {
  const c = Math.cos(rot), s = Math.sin(rot);
  const ox = px - cx, oy = py - cy;
  const u0 = (ox * c + oy * s) / rx, v0 = (-ox * s + oy * c) / ry;
  const du = (dx * c + dy * s) / rx, dv = (-dx * s + dy * c) / ry;
  const A = du * du + dv * dv, B = u0 * du + v0 * dv, C = u0 * u0 + v0 * v0 - 1;
  const disc = B * B - A * C;
  if (disc < 0) return -1;
  const t = (-B + Math.sqrt(disc)) / A;
  return t >= 0 ? t : -1;
}

/** Smooth step 0 → 1 as `v` goes from `e0` to `e1` (either order). */
export function smooth(e0: number, e1: number, v: number): number {
  const t = Math.min(1, Math.max(0, (v - e0) / (e1 - e0)));
  return t * t * (3 - 2 * t);
}

export const clamp = (v: number, lo: number, hi: number): number => v < lo ? lo : v > hi ? hi : v;
