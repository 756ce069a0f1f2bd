/**
 * @module What a radiologist measures of a candidate, from its voxels: the longest axial diameter
 * and the short axis perpendicular to it on the axial slice where the long axis is largest, their
 * mean (Lung-RADS' mean diameter), the extent along the patient axis, 3D shape from the principal
 * axes (elongation: tubes; flatness: plates), compactness (volume against the sphere of the longest
 * diameter), attenuation from HU (solid, part-solid, ground-glass), and how much of the
 * candidate's surrounding shell is lung.
 */

/** A candidate's voxels on the series grid (x column, y row, z slice). */
export interface Voxels {
  x: Int32Array;
  y: Int32Array;
  z: Int32Array;
  count: number;
}

export interface Measures {
  longAxisMm: number;
  shortAxisMm: number;
  /** (long + short) / 2, Lung-RADS' mean diameter. */
  meanDiameterMm: number;
  /** The slice the axes were measured on. */
  axialSlice: number;
  /** Slices spanned × slice spacing. */
  zExtentMm: number;
  /** √(λ1/λ2) of the voxel positions' covariance (mm; each voxel's own extent included). */
  elongation: number;
  /** √(λ2/λ3). */
  flatness: number;
  /** Volume / (π/6 · longest 3D extent³): 1 for a ball, small for branches and plates. */
  compactness: number;
  meanHu: number;
  /** Fraction of the voxels above −300 HU. */
  solidFraction: number;
  attenuation: "solid" | "part-solid" | "ground-glass";
}

/**
 * Axial long and short axis of one slice's pixels (mm), edge to edge; `ends`: the long axis's end
 * points in pixel units (column, row) where a pixel's centre is its index (its edges at ± 0.5).
 */
export function axialAxes(
  xs: ArrayLike<number>,
  ys: ArrayLike<number>,
  sx: number,
  sy: number,
): { long: number; short: number; ends: [[number, number], [number, number]] } {
  const n = xs.length;
  if (n === 0) return { long: 0, short: 0, ends: [[0, 0], [0, 0]] };
  // Convex hull of the pixels' corners (monotone chain): the farthest pair lies on it.
  const pts: [number, number][] = [];
  for (let i = 0; i < n; i++) {
    for (const [dx, dy] of CORNERS) pts.push([(xs[i] + dx) * sx, (ys[i] + dy) * sy]);
  }
  const hull = convexHull(pts);
  let best = 0, ax = 1, ay = 0, from = 0, to = 0;
  for (let a = 0; a < hull.length; a++) {
    for (let b = a + 1; b < hull.length; b++) {
      const dx = hull[b][0] - hull[a][0], dy = hull[b][1] - hull[a][1];
      const d = dx * dx + dy * dy;
      if (d > best) [best, ax, ay, from, to] = [d, dx, dy, a, b];
    }
  }
  const end = (i: number): [number, number] => [hull[i][0] / sx, hull[i][1] / sy];
  const long = Math.sqrt(best);
  // Short axis: the extent perpendicular to the long axis.
  const px = -ay / long, py = ax / long;
  let lo = Infinity, hi = -Infinity;
  for (const [x, y] of hull) {
    const v = x * px + y * py;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return { long, short: Math.min(long, hi - lo), ends: [end(from), end(to)] };
}

const CORNERS: [number, number][] = [[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]];

function convexHull(points: [number, number][]): [number, number][] {
  const p = points.slice().sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  if (p.length < 3) return p;
  const cross = (o: number[], a: number[], b: number[]) =>
    (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
  const lower: [number, number][] = [], upper: [number, number][] = [];
  for (const q of p) {
    while (lower.length >= 2 && cross(lower[lower.length - 2], lower[lower.length - 1], q) <= 0) {
      lower.pop();
    }
    lower.push(q);
  }
  for (let i = p.length - 1; i >= 0; i--) {
    const q = p[i];
    while (upper.length >= 2 && cross(upper[upper.length - 2], upper[upper.length - 1], q) <= 0) {
      upper.pop();
    }
    upper.push(q);
  }
  return lower.slice(0, -1).concat(upper.slice(0, -1));
}

/** Eigenvalues (descending) of a symmetric 3×3 matrix (closed form). */
export function symmetricEigenvalues(m: number[][]): [number, number, number] {
  const p1 = m[0][1] ** 2 + m[0][2] ** 2 + m[1][2] ** 2;
  const q = (m[0][0] + m[1][1] + m[2][2]) / 3;
  if (p1 < 1e-12) {
    const e = [m[0][0], m[1][1], m[2][2]].sort((a, b) => b - a);
    return [e[0], e[1], e[2]];
  }
  const p2 = (m[0][0] - q) ** 2 + (m[1][1] - q) ** 2 + (m[2][2] - q) ** 2 + 2 * p1;
  const p = Math.sqrt(p2 / 6);
  const b = m.map((row, i) => row.map((v, j) => (v - (i === j ? q : 0)) / p));
  const det = b[0][0] * (b[1][1] * b[2][2] - b[1][2] * b[2][1]) -
    b[0][1] * (b[1][0] * b[2][2] - b[1][2] * b[2][0]) +
    b[0][2] * (b[1][0] * b[2][1] - b[1][1] * b[2][0]);
  const r = Math.max(-1, Math.min(1, det / 2));
  const phi = Math.acos(r) / 3;
  const e1 = q + 2 * p * Math.cos(phi);
  const e3 = q + 2 * p * Math.cos(phi + (2 * Math.PI) / 3);
  return [e1, 3 * q - e1 - e3, e3];
}

/**
 * Measures a candidate. `huAt(x, y, z)`: HU at a series voxel. `longest3dMm`: the longest 3D
 * extent (the segmentation's longest diameter).
 */
export function measure(
  v: Voxels,
  spacing: { x: number; y: number; z: number },
  longest3dMm: number,
  huAt: (x: number, y: number, z: number) => number,
): Measures {
  const { x: sx, y: sy, z: sz } = spacing;
  // Per slice pixels; the slice with the largest long axis gives the axes.
  const bySlice = new Map<number, number[]>();
  for (let i = 0; i < v.count; i++) {
    let list = bySlice.get(v.z[i]);
    if (!list) bySlice.set(v.z[i], list = []);
    list.push(i);
  }
  let long = 0, short = 0, axialSlice = v.z[0] ?? 0;
  for (const [z, idx] of bySlice) {
    const axes = axialAxes(idx.map((i) => v.x[i]), idx.map((i) => v.y[i]), sx, sy);
    if (axes.long > long || (axes.long === long && axes.short > short)) {
      [long, short, axialSlice] = [axes.long, axes.short, z];
    }
  }
  const zs = [...bySlice.keys()];
  const zExtentMm = (Math.max(...zs) - Math.min(...zs) + 1) * sz;

  // Principal axes in mm, each voxel counted as a uniform box (its variance s²/12 per axis).
  let mx = 0, my = 0, mz = 0;
  for (let i = 0; i < v.count; i++) {
    mx += v.x[i] * sx;
    my += v.y[i] * sy;
    mz += v.z[i] * sz;
  }
  mx /= v.count;
  my /= v.count;
  mz /= v.count;
  const c = [[0, 0, 0], [0, 0, 0], [0, 0, 0]];
  let huSum = 0, solid = 0;
  for (let i = 0; i < v.count; i++) {
    const d = [v.x[i] * sx - mx, v.y[i] * sy - my, v.z[i] * sz - mz];
    for (let a = 0; a < 3; a++) for (let b = 0; b < 3; b++) c[a][b] += d[a] * d[b];
    const hu = huAt(v.x[i], v.y[i], v.z[i]);
    huSum += hu;
    if (hu > -300) solid++;
  }
  for (let a = 0; a < 3; a++) for (let b = 0; b < 3; b++) c[a][b] /= v.count;
  c[0][0] += sx * sx / 12;
  c[1][1] += sy * sy / 12;
  c[2][2] += sz * sz / 12;
  const [l1, l2, l3] = symmetricEigenvalues(c);
  const volume = v.count * sx * sy * sz;
  const d3 = Math.max(longest3dMm, long);
  const solidFraction = solid / v.count;
  return {
    longAxisMm: long,
    shortAxisMm: short,
    meanDiameterMm: (long + short) / 2,
    axialSlice,
    zExtentMm,
    elongation: Math.sqrt(l1 / Math.max(l2, 1e-9)),
    flatness: Math.sqrt(l2 / Math.max(l3, 1e-9)),
    compactness: d3 > 0 ? volume / ((Math.PI / 6) * d3 ** 3) : 0,
    meanHu: huSum / v.count,
    solidFraction,
    attenuation: solidFraction >= 0.5
      ? "solid"
      : solidFraction >= 0.1
      ? "part-solid"
      : "ground-glass",
  };
}
