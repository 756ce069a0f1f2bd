/**
 * @module Binary image operations on `[z][y][x]` uint8 masks with anisotropic voxels: exact
 * Euclidean distance transforms in mm (Felzenszwalb–Huttenlocher's lower envelope of parabolas,
 * one pass per axis), disk/ball dilation, erosion and closing by thresholding them, 2D flood fill
 * from the image border, 2D hole filling with a size limit, and connected components in 2D
 * (4-connected) and 3D (6-connected).
 */

/** A grid of `width × height × depth` voxels of `sx × sy × sz` mm. */
export interface Grid {
  width: number;
  height: number;
  depth: number;
  sx: number;
  sy: number;
  sz: number;
}

const INF = 1e20;

/**
 * 1D squared distance transform of `f` (0 at features, INF elsewhere) with sample spacing `s`,
 * read with `stride` from `offset`, written back in place (the lower envelope of the parabolas
 * rooted at each sample). `v`, `z`, `g` are scratch buffers.
 */
function edt1d(
  f: Float32Array,
  offset: number,
  stride: number,
  n: number,
  s: number,
  v: Int32Array,
  z: Float64Array,
  g: Float64Array,
): void {
  for (let i = 0; i < n; i++) g[i] = f[offset + i * stride];
  const s2 = s * s;
  let k = 0;
  v[0] = 0;
  z[0] = -Infinity;
  z[1] = Infinity;
  for (let q = 1; q < n; q++) {
    let x: number;
    for (;;) {
      const p = v[k];
      x = ((g[q] + s2 * q * q) - (g[p] + s2 * p * p)) / (2 * s2 * (q - p));
      if (x > z[k] || k === 0) break;
      k--;
    }
    if (x <= z[k]) {
      v[0] = q; // k === 0: q's parabola is lower everywhere
      z[1] = Infinity;
      continue;
    }
    k++;
    v[k] = q;
    z[k] = x;
    z[k + 1] = Infinity;
  }
  k = 0;
  for (let q = 0; q < n; q++) {
    while (z[k + 1] < q) k++;
    const d = (q - v[k]) * s;
    f[offset + q * stride] = Math.min(INF, d * d + g[v[k]]);
  }
}

/**
 * Squared distance (mm²) from each pixel of one plane to the nearest pixel where `mask` equals
 * `feature`; INF where the plane has none.
 */
export function planeDistance2(
  mask: Uint8Array,
  offset: number,
  width: number,
  height: number,
  sx: number,
  sy: number,
  feature: 0 | 1,
  out = new Float32Array(width * height),
): Float32Array {
  for (let i = 0; i < width * height; i++) {
    out[i] = (mask[offset + i] ? 1 : 0) === feature ? 0 : INF;
  }
  const n = Math.max(width, height);
  const v = new Int32Array(n), z = new Float64Array(n + 1), g = new Float64Array(n);
  for (let x = 0; x < width; x++) edt1d(out, x, width, height, sy, v, z, g);
  for (let y = 0; y < height; y++) edt1d(out, y * width, 1, width, sx, v, z, g);
  return out;
}

/** Squared distance (mm²) in 3D from each voxel to the nearest voxel where `mask` is `feature`. */
export function volumeDistance2(mask: Uint8Array, grid: Grid, feature: 0 | 1): Float32Array {
  const { width: w, height: h, depth: d } = grid;
  const plane = w * h;
  const out = new Float32Array(plane * d);
  const scratch = new Float32Array(plane);
  for (let k = 0; k < d; k++) {
    planeDistance2(mask, k * plane, w, h, grid.sx, grid.sy, feature, scratch);
    out.set(scratch, k * plane);
  }
  const v = new Int32Array(d), z = new Float64Array(d + 1), g = new Float64Array(d);
  for (let i = 0; i < plane; i++) edt1d(out, i, plane, d, grid.sz, v, z, g);
  return out;
}

/** 2D dilation of every plane by a disk of `radiusMm` (a pixel within the radius of the mask). */
export function dilatePlanes(mask: Uint8Array, grid: Grid, radiusMm: number): Uint8Array {
  return thresholdPlanes(mask, grid, 1, (d2) => d2 <= radiusMm * radiusMm);
}

/** 2D erosion of every plane by a disk of `radiusMm` (farther than the radius from background). */
export function erodePlanes(mask: Uint8Array, grid: Grid, radiusMm: number): Uint8Array {
  return thresholdPlanes(mask, grid, 0, (d2) => d2 > radiusMm * radiusMm);
}

/** 2D closing (dilation, then erosion) of every plane by a disk of `radiusMm`. */
export function closePlanes(mask: Uint8Array, grid: Grid, radiusMm: number): Uint8Array {
  return erodePlanes(dilatePlanes(mask, grid, radiusMm), grid, radiusMm);
}

function thresholdPlanes(
  mask: Uint8Array,
  grid: Grid,
  feature: 0 | 1,
  keep: (d2: number) => boolean,
): Uint8Array {
  const { width: w, height: h, depth: d } = grid;
  const plane = w * h;
  const out = new Uint8Array(plane * d);
  const dist = new Float32Array(plane);
  for (let k = 0; k < d; k++) {
    planeDistance2(mask, k * plane, w, h, grid.sx, grid.sy, feature, dist);
    for (let i = 0; i < plane; i++) out[k * plane + i] = keep(dist[i]) ? 1 : 0;
  }
  return out;
}

/**
 * Marks (sets to 1 in the answer) the pixels of one plane whose `mask` value is `value` and that
 * connect to the plane's border through such pixels (4-connected).
 */
export function borderConnected(
  mask: Uint8Array,
  offset: number,
  width: number,
  height: number,
  value: 0 | 1,
): Uint8Array {
  const { labels, sizes } = planeComponents(mask, offset, width, height, value);
  const touches = borderLabels(labels, width, height, sizes.length);
  const out = new Uint8Array(width * height);
  for (let i = 0; i < out.length; i++) if (labels[i] && touches[labels[i]]) out[i] = 1;
  return out;
}

/** Which labels (by index) have a pixel on the plane's border. */
function borderLabels(labels: Int32Array, width: number, height: number, count: number) {
  const touches = new Uint8Array(count);
  for (let x = 0; x < width; x++) {
    touches[labels[x]] = 1;
    touches[labels[(height - 1) * width + x]] = 1;
  }
  for (let y = 0; y < height; y++) {
    touches[labels[y * width]] = 1;
    touches[labels[y * width + width - 1]] = 1;
  }
  return touches;
}

/** 2D components of one plane: labels (4-connected, 1..n) and each label's pixel count. */
export function planeComponents(
  mask: Uint8Array,
  offset: number,
  width: number,
  height: number,
  value: 0 | 1 = 1,
): { labels: Int32Array; sizes: number[] } {
  const labels = new Int32Array(width * height);
  const stack = new Int32Array(width * height);
  const sizes = [0];
  const is = (j: number) => !labels[j] && (mask[offset + j] ? 1 : 0) === value;
  for (let s = 0; s < width * height; s++) {
    if (!is(s)) continue;
    const label = sizes.length;
    let top = 0, size = 0;
    labels[s] = label;
    stack[top++] = s;
    while (top > 0) {
      const i = stack[--top];
      size++;
      const x = i % width, y = (i - x) / width;
      if (x > 0 && is(i - 1)) (labels[i - 1] = label, stack[top++] = i - 1);
      if (x < width - 1 && is(i + 1)) (labels[i + 1] = label, stack[top++] = i + 1);
      if (y > 0 && is(i - width)) (labels[i - width] = label, stack[top++] = i - width);
      if (y < height - 1 && is(i + width)) (labels[i + width] = label, stack[top++] = i + width);
    }
    sizes.push(size);
  }
  return { labels, sizes };
}

/**
 * Fills, in place, the holes of each plane of `mask` (background regions not connected to the
 * plane's border) of at most `maxAreaMm2`; larger enclosed regions stay background.
 */
export function fillHolesPlanes(mask: Uint8Array, grid: Grid, maxAreaMm2 = Infinity): void {
  const { width: w, height: h, depth: d } = grid;
  const plane = w * h;
  const pixelMm2 = grid.sx * grid.sy;
  for (let k = 0; k < d; k++) {
    const o = k * plane;
    const { labels, sizes } = planeComponents(mask, o, w, h, 0);
    if (sizes.length <= 2) continue; // only the outside
    const touches = borderLabels(labels, w, h, sizes.length);
    for (let i = 0; i < plane; i++) {
      const l = labels[i];
      if (l && !touches[l] && sizes[l] * pixelMm2 <= maxAreaMm2) mask[o + i] = 1;
    }
  }
}

/** 3D components (6-connected) of the non-zero voxels: labels 1..n and each one's voxel count. */
export function volumeComponents(
  mask: Uint8Array,
  grid: Grid,
): { labels: Int32Array; sizes: number[] } {
  const { width: w, height: h, depth: d } = grid;
  const plane = w * h, n = plane * d;
  const labels = new Int32Array(n);
  const sizes = [0];
  let stack = new Int32Array(1 << 16);
  for (let s = 0; s < n; s++) {
    if (labels[s] || !mask[s]) continue;
    const label = sizes.length;
    let top = 0, size = 0;
    labels[s] = label;
    stack[top++] = s;
    while (top > 0) {
      const i = stack[--top];
      size++;
      if (top + 6 >= stack.length) {
        const grown = new Int32Array(stack.length * 2);
        grown.set(stack);
        stack = grown;
      }
      const x = i % w, y = ((i - x) / w) % h, z = (i - x - y * w) / plane;
      if (x > 0 && mask[i - 1] && !labels[i - 1]) (labels[i - 1] = label, stack[top++] = i - 1);
      if (x < w - 1 && mask[i + 1] && !labels[i + 1]) (labels[i + 1] = label, stack[top++] = i + 1);
      if (y > 0 && mask[i - w] && !labels[i - w]) (labels[i - w] = label, stack[top++] = i - w);
      if (y < h - 1 && mask[i + w] && !labels[i + w]) {
        labels[i + w] = label;
        stack[top++] = i + w;
      }
      if (z > 0 && mask[i - plane] && !labels[i - plane]) {
        labels[i - plane] = label;
        stack[top++] = i - plane;
      }
      if (z < d - 1 && mask[i + plane] && !labels[i + plane]) {
        labels[i + plane] = label;
        stack[top++] = i + plane;
      }
    }
    sizes.push(size);
  }
  return { labels, sizes };
}
