/**
 * @module From a probability volume to findings: threshold, 3D connected components (6-, 18- or
 * 26-connectivity; one raster pass with union-find over the whole volume, then a relabelling
 * pass), components below a size dropped, and per component its voxel count, volume in mm³,
 * centre (voxel and patient coordinates), bounding box, longest diameter and probabilities.
 */
import type { Vec3, Volume } from "./volume.ts";
import { voxelToPatient } from "./volume.ts";
import { bilinearTaps } from "./preprocess.ts";
import type { LungFinding } from "./nodules/assess.ts";

export type Geometry = Pick<
  Volume,
  "dims" | "spacing" | "origin" | "rowDirection" | "columnDirection" | "sliceStep"
>;

export interface Finding {
  /** 1-based, in order of falling maximum probability; the value of its voxels in the mask. */
  number: number;
  voxels: number;
  volumeMm3: number;
  /** Mean voxel index: i column, j row, k slice (fractional). */
  centreVoxel: Vec3;
  /** The centre in patient coordinates (LPS, mm). */
  centrePatient: Vec3;
  /** Inclusive voxel bounds `[i, j, k]`. */
  boundingBox: { min: Vec3; max: Vec3 };
  /**
   * Longest distance across the component, edge to edge (mm): the largest distance between the
   * centres of two surface voxels plus one voxel's extent along that line. Exact up to
   * `EXACT_SURFACE_LIMIT` surface voxels; above, the largest extent along 13 directions (axes,
   * face and body diagonals), a slight underestimate.
   */
  longestDiameterMm: number;
  maxProbability: number;
  meanProbability: number;
  /** What the lung stage made of it (models with `postprocessing.lung`). */
  lung?: LungFinding;
  /**
   * The probability that the finding is real, calibrated on held-out data from `maxProbability`
   * (models with `postprocessing.calibration`).
   */
  probability?: number;
  /**
   * What found it: the segmentation network's components, or the candidate stage (classical blob
   * detection and the candidate classifier; `nodules/candidate_stage.ts`). Absent: the network.
   */
  source?: "segmentation" | "candidates";
}

export interface Segmentation {
  findings: Finding[];
  /**
   * Finding number per voxel (0: none; 255 for the 255th and later) of slice z, `[y][x]`; null
   * where the slice has no finding. Made when asked for, so a volume is never held whole.
   */
  maskSlice(z: number): Uint8Array | null;
  /** The same for the whole volume, `[z][y][x]` (made on each access). */
  readonly mask: Uint8Array;
  /** The highest probability anywhere in the volume. */
  maxProbability: number;
  /** Components found before the size filter. */
  components: number;
}

export interface SegmentOptions {
  threshold: number;
  connectivity: 6 | 18 | 26;
  minComponentVoxels?: number;
  minVolumeMm3?: number;
}

export const EXACT_SURFACE_LIMIT = 2000;

/** The backward neighbours (already visited in raster order) for a connectivity. */
function backwardOffsets(connectivity: 6 | 18 | 26): Vec3[] {
  const out: Vec3[] = [];
  for (let dz = -1; dz <= 0; dz++) {
    for (let dy = -1; dy <= 1; dy++) {
      for (let dx = -1; dx <= 1; dx++) {
        if (dz === 0 && (dy > 0 || (dy === 0 && dx >= 0))) continue;
        const n = Math.abs(dx) + Math.abs(dy) + Math.abs(dz);
        if (connectivity === 6 && n > 1) continue;
        if (connectivity === 18 && n > 2) continue;
        out.push([dx, dy, dz]);
      }
    }
  }
  return out;
}

/** The model's probabilities on its own output grid: `depth` planes of `height × width`. */
export interface ProbabilityGrid {
  data: Float32Array;
  height: number;
  width: number;
  depth: number;
}

/** An inclusive box of one slice's voxels: columns x0..x1, rows y0..y1. */
interface Box {
  x0: number;
  x1: number;
  y0: number;
  y1: number;
}

/** Probabilities on the series' voxel grid, read a box at a time. */
interface Field {
  /** The voxels of slice z that may reach the threshold lie in this box; null: none can. */
  box(z: number): Box | null;
  /** Row y of slice z, columns x0..x1, into `out`. */
  row(z: number, y: number, x0: number, x1: number, out: Float32Array): void;
  /** The highest probability seen (complete once every slice's box was asked for). */
  readonly max: number;
}

/** A full `[z][y][x]` probability volume on the series' grid. */
function denseField(p: Float32Array, nx: number, ny: number, threshold: number): Field {
  const plane = nx * ny;
  let max = 0;
  return {
    get max() {
      return max;
    },
    box(z) {
      let x0 = nx, x1 = -1, y0 = ny, y1 = -1;
      for (let y = 0, i = z * plane; y < ny; y++) {
        for (let x = 0; x < nx; x++, i++) {
          const v = p[i];
          if (v > max) max = v;
          if (!(v >= threshold)) continue;
          if (x < x0) x0 = x;
          if (x > x1) x1 = x;
          if (y < y0) y0 = y;
          y1 = y;
        }
      }
      return x1 < 0 ? null : { x0, x1, y0, y1 };
    },
    row(z, y, x0, x1, out) {
      const base = z * plane + y * nx;
      out.set(p.subarray(base + x0, base + x1 + 1));
    },
  };
}

/**
 * The model's grid seen on the series' grid through bilinear interpolation (half-pixel centres,
 * as `resize2d`), computed only inside boxes: an interpolated value is a weighted mean of four
 * grid values, so it can reach the threshold only next to a grid value that does. Slices whose
 * grid plane stays below the threshold cost one scan of the (smaller) grid plane.
 */
function gridField(g: ProbabilityGrid, nx: number, ny: number, threshold: number): Field {
  const { height: h, width: w } = g;
  const cols = bilinearTaps(w, nx), rows = bilinearTaps(h, ny);
  // resize2d weighs rows in float64 (columns in float32); so does this, for the same values.
  const fy = Float64Array.from({ length: ny }, (_, y) => {
    const p = Math.max(0, (y + 0.5) * (h / ny) - 0.5);
    return p - Math.floor(p);
  });
  let max = 0;
  const span = (taps: typeof cols, n: number, lo: number, hi: number) => {
    let first = -1, last = -1;
    for (let i = 0; i < n; i++) {
      if (taps.x0[i] <= hi && taps.x1[i] >= lo) {
        if (first < 0) first = i;
        last = i;
      }
    }
    return [first, last];
  };
  return {
    get max() {
      return max;
    },
    box(z) {
      let c0 = w, c1 = -1, r0 = h, r1 = -1;
      for (let r = 0, i = z * h * w; r < h; r++) {
        for (let c = 0; c < w; c++, i++) {
          const v = g.data[i];
          if (v > max) max = v;
          if (!(v >= threshold)) continue;
          if (c < c0) c0 = c;
          if (c > c1) c1 = c;
          if (r < r0) r0 = r;
          r1 = r;
        }
      }
      if (c1 < 0) return null;
      const [x0, x1] = span(cols, nx, c0, c1);
      const [y0, y1] = span(rows, ny, r0, r1);
      return { x0, x1, y0, y1 };
    },
    row(z, y, x0, x1, out) {
      const base = z * h * w;
      const a = base + rows.x0[y] * w, b = base + rows.x1[y] * w, f = fy[y];
      const d = g.data;
      for (let x = x0; x <= x1; x++) {
        const top = d[a + cols.x0[x]] + (d[a + cols.x1[x]] - d[a + cols.x0[x]]) * cols.fx[x];
        const bottom = d[b + cols.x0[x]] + (d[b + cols.x1[x]] - d[b + cols.x0[x]]) * cols.fx[x];
        out[x - x0] = top + (bottom - top) * f;
      }
    },
  };
}

/**
 * Labels the connected components of `probability ≥ threshold` and measures them, on the series'
 * voxel grid. `probability` is either a full volume on that grid, or the model's own grid
 * (`ProbabilityGrid`), interpolated bilinearly only where a component can be: the result is the
 * same as resizing every plane first, at a fraction of the work. Only the voxels of each slice's
 * candidate box are labelled and kept.
 */
export function segment(
  probability: Float32Array | ProbabilityGrid,
  geometry: Geometry,
  options: SegmentOptions,
): Segmentation {
  const { x: nx, y: ny, z: nz } = geometry.dims;
  const plane = nx * ny;
  let field: Field;
  if (probability instanceof Float32Array) {
    if (probability.length !== plane * nz) {
      throw new RangeError(`probability has ${probability.length} values, expected ${plane * nz}`);
    }
    field = denseField(probability, nx, ny, options.threshold);
  } else {
    const g = probability;
    if (g.depth !== nz || g.data.length !== g.depth * g.height * g.width) {
      throw new RangeError(
        `probability grid has ${g.depth} planes of ${g.height}×${g.width} (${g.data.length} ` +
          `values) for a series of ${nz} slices`,
      );
    }
    field = gridField(g, nx, ny, options.threshold);
  }
  const boxes: (Box | null)[] = new Array(nz).fill(null);
  const labels: (Int32Array | null)[] = new Array(nz).fill(null);
  const values: (Float32Array | null)[] = new Array(nz).fill(null);
  const labelAt = (x: number, y: number, z: number): number => {
    const b = boxes[z];
    if (!b || x < b.x0 || x > b.x1 || y < b.y0 || y > b.y1) return 0;
    return labels[z]![(y - b.y0) * (b.x1 - b.x0 + 1) + (x - b.x0)];
  };
  let parent = new Int32Array(1024);
  let next = 1;
  const find = (a: number): number => {
    while (parent[a] !== a) {
      parent[a] = parent[parent[a]];
      a = parent[a];
    }
    return a;
  };
  const offsets = backwardOffsets(options.connectivity);
  for (let z = 0; z < nz; z++) {
    const b = field.box(z);
    if (!b) continue;
    const bw = b.x1 - b.x0 + 1, bh = b.y1 - b.y0 + 1;
    const lab = new Int32Array(bw * bh), val = new Float32Array(bw * bh);
    boxes[z] = b;
    labels[z] = lab;
    values[z] = val;
    for (let y = b.y0; y <= b.y1; y++) {
      const o = (y - b.y0) * bw;
      field.row(z, y, b.x0, b.x1, val.subarray(o, o + bw));
      for (let x = b.x0; x <= b.x1; x++) {
        if (!(val[o + x - b.x0] >= options.threshold)) continue;
        let root = 0;
        for (const [dx, dy, dz] of offsets) {
          const xx = x + dx, yy = y + dy, zz = z + dz;
          if (xx < 0 || xx >= nx || yy < 0 || zz < 0) continue;
          const l = labelAt(xx, yy, zz);
          if (!l) continue;
          const r = find(l);
          if (!root) root = r;
          else if (r !== root) {
            if (r < root) {
              parent[root] = r;
              root = r;
            } else parent[r] = root;
          }
        }
        if (!root) {
          if (next >= parent.length) {
            const grown = new Int32Array(parent.length * 2);
            grown.set(parent);
            parent = grown;
          }
          parent[next] = next;
          root = next++;
        }
        lab[o + x - b.x0] = root;
      }
    }
  }

  // Compact the roots to 1..K and gather the statistics of each component.
  const compact = new Int32Array(next);
  let k = 0;
  for (let l = 1; l < next; l++) if (find(l) === l) compact[l] = ++k;
  const count = new Float64Array(k + 1), sumP = new Float64Array(k + 1);
  const maxP = new Float32Array(k + 1);
  const sum = [new Float64Array(k + 1), new Float64Array(k + 1), new Float64Array(k + 1)];
  const min = [0, 1, 2].map(() => new Int32Array(k + 1).fill(2 ** 31 - 1));
  const max = [0, 1, 2].map(() => new Int32Array(k + 1).fill(-1));
  for (let z = 0; z < nz; z++) {
    const b = boxes[z], lab = labels[z], val = values[z];
    if (!b || !lab || !val) continue;
    for (let y = b.y0, i = 0; y <= b.y1; y++) {
      for (let x = b.x0; x <= b.x1; x++, i++) {
        if (!lab[i]) continue;
        const c = compact[find(lab[i])];
        lab[i] = c;
        const p = val[i];
        count[c]++;
        sumP[c] += p;
        if (p > maxP[c]) maxP[c] = p;
        const v = [x, y, z];
        for (let a = 0; a < 3; a++) {
          sum[a][c] += v[a];
          if (v[a] < min[a][c]) min[a][c] = v[a];
          if (v[a] > max[a][c]) max[a][c] = v[a];
        }
      }
    }
  }

  const { spacing } = geometry;
  const voxelMm3 = spacing.x * spacing.y * spacing.z;
  const kept: number[] = [];
  for (let c = 1; c <= k; c++) {
    if (count[c] < (options.minComponentVoxels ?? 1)) continue;
    if (count[c] * voxelMm3 < (options.minVolumeMm3 ?? 0)) continue;
    kept.push(c);
  }
  kept.sort((a, b) => maxP[b] - maxP[a] || count[b] - count[a] || a - b);
  const numberOf = new Int32Array(k + 1);
  kept.forEach((c, n) => numberOf[c] = n + 1);

  // Finding numbers of one slice's plane (null: no finding there), made when asked for.
  const maskSlice = (z: number): Uint8Array | null => {
    const b = boxes[z], lab = labels[z];
    if (!b || !lab) return null;
    const out = new Uint8Array(plane);
    let any = false;
    for (let y = b.y0, i = 0; y <= b.y1; y++) {
      for (let x = b.x0; x <= b.x1; x++, i++) {
        if (lab[i] && numberOf[lab[i]]) {
          out[y * nx + x] = Math.min(255, numberOf[lab[i]]);
          any = true;
        }
      }
    }
    return any ? out : null;
  };
  const findings = kept.map((c, n): Finding => {
    const centre: Vec3 = [sum[0][c] / count[c], sum[1][c] / count[c], sum[2][c] / count[c]];
    const box = {
      min: [min[0][c], min[1][c], min[2][c]] as Vec3,
      max: [max[0][c], max[1][c], max[2][c]] as Vec3,
    };
    return {
      number: n + 1,
      voxels: count[c],
      volumeMm3: count[c] * voxelMm3,
      centreVoxel: centre,
      centrePatient: voxelToPatient(geometry, centre[0], centre[1], centre[2]),
      boundingBox: box,
      longestDiameterMm: longestDiameter(labelAt, c, box, geometry),
      maxProbability: maxP[c],
      meanProbability: sumP[c] / count[c],
    };
  });
  return {
    findings,
    maskSlice,
    get mask() {
      const mask = new Uint8Array(plane * nz);
      for (let z = 0; z < nz; z++) {
        const m = maskSlice(z);
        if (m) mask.set(m, z * plane);
      }
      return mask;
    },
    maxProbability: field.max,
    components: k,
  };
}

/** See `Finding.longestDiameterMm`. */
function longestDiameter(
  labelAt: (x: number, y: number, z: number) => number,
  c: number,
  box: { min: Vec3; max: Vec3 },
  g: Geometry,
): number {
  const { x: nx, y: ny, z: nz } = g.dims;
  const at = (x: number, y: number, z: number) =>
    x >= 0 && y >= 0 && z >= 0 && x < nx && y < ny && z < nz && labelAt(x, y, z) === c;
  const surface: Vec3[] = [];
  for (let z = box.min[2]; z <= box.max[2]; z++) {
    for (let y = box.min[1]; y <= box.max[1]; y++) {
      for (let x = box.min[0]; x <= box.max[0]; x++) {
        if (!at(x, y, z)) continue;
        if (
          !at(x - 1, y, z) || !at(x + 1, y, z) || !at(x, y - 1, z) || !at(x, y + 1, z) ||
          !at(x, y, z - 1) || !at(x, y, z + 1)
        ) surface.push([x, y, z]);
      }
    }
  }
  // Voxel-index offsets → mm (the columns of the voxel-to-patient matrix).
  const axes: Vec3[] = [
    g.rowDirection.map((v) => v * g.spacing.x) as Vec3,
    g.columnDirection.map((v) => v * g.spacing.y) as Vec3,
    g.sliceStep,
  ];
  // Every surface voxel's position in mm, once; the pairs are then plain arithmetic.
  const n = surface.length;
  const px = new Float64Array(n), py = new Float64Array(n), pz = new Float64Array(n);
  surface.forEach(([i, j, k], s) => {
    px[s] = i * axes[0][0] + j * axes[1][0] + k * axes[2][0];
    py[s] = i * axes[0][1] + j * axes[1][1] + k * axes[2][1];
    pz[s] = i * axes[0][2] + j * axes[1][2] + k * axes[2][2];
  });
  let bestA = 0, bestB = 0, bestLen = 0;
  if (n <= EXACT_SURFACE_LIMIT) {
    for (let a = 0; a < n; a++) {
      const ax = px[a], ay = py[a], az = pz[a];
      for (let b = a + 1; b < n; b++) {
        const dx = px[b] - ax, dy = py[b] - ay, dz = pz[b] - az;
        const len = dx * dx + dy * dy + dz * dz;
        if (len > bestLen) {
          bestLen = len;
          bestA = a;
          bestB = b;
        }
      }
    }
  } else {
    for (const dir of DIRECTIONS) {
      let lo = 0, hi = 0, loV = Infinity, hiV = -Infinity;
      for (let s = 0; s < n; s++) {
        const v = px[s] * dir[0] + py[s] * dir[1] + pz[s] * dir[2];
        if (v < loV) [loV, lo] = [v, s];
        if (v > hiV) [hiV, hi] = [v, s];
      }
      const dx = px[hi] - px[lo], dy = py[hi] - py[lo], dz = pz[hi] - pz[lo];
      const len = dx * dx + dy * dy + dz * dz;
      if (len > bestLen) [bestLen, bestA, bestB] = [len, lo, hi];
    }
  }
  const best: Vec3 = n
    ? [0, 1, 2].map((a) => surface[bestB][a] - surface[bestA][a]) as Vec3
    : [0, 0, 0];
  return Math.sqrt(bestLen) + oneVoxelAlong(best, g);
}

/** The length of one voxel along direction `d` (voxel-index units), in mm. */
function oneVoxelAlong(d: Vec3, g: Geometry): number {
  const len = Math.hypot(d[0], d[1], d[2]);
  if (len === 0) return Math.min(g.spacing.x, g.spacing.y, g.spacing.z);
  // The voxel is a box of spacing.x × spacing.y × spacing.z; a line through its centre along the
  // unit direction u (in mm, in the voxel's own axes) crosses it over min over axes of s_a / |u_a|.
  const s = [g.spacing.x, g.spacing.y, g.spacing.z];
  const w = [d[0] * s[0], d[1] * s[1], d[2] * s[2]];
  const wl = Math.hypot(w[0], w[1], w[2]);
  let chord = Infinity;
  for (let a = 0; a < 3; a++) {
    const u = Math.abs(w[a]) / wl;
    if (u > 1e-9) chord = Math.min(chord, s[a] / u);
  }
  return chord;
}

const DIRECTIONS: Vec3[] = (() => {
  const out: Vec3[] = [];
  for (let x = -1; x <= 1; x++) {
    for (let y = -1; y <= 1; y++) {
      for (let z = -1; z <= 1; z++) {
        if (x < 0 || (x === 0 && y < 0) || (x === 0 && y === 0 && z <= 0)) continue;
        const n = Math.hypot(x, y, z);
        out.push([x / n, y / n, z / n]);
      }
    }
  }
  return out;
})();
