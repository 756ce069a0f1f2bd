/**
 * @module From a probability volume to findings: threshold, 3D connected components (6-, 18- or
 * 26-connectivity; one raster pass with union-find over the whole volume, then a relabelling
 * pass), components below a size dropped, and per component its voxel count, volume in mm³,
 * centre (voxel and patient coordinates), bounding box, longest diameter and probabilities.
 */
import type { Vec3, Volume } from "./volume.ts";
import { voxelToPatient } from "./volume.ts";

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
}

export interface Segmentation {
  findings: Finding[];
  /** Finding number per voxel (0: none; 255 for the 255th and later), `[z][y][x]`. */
  mask: Uint8Array;
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

/** Labels the connected components of `probability ≥ threshold` and measures them. */
export function segment(
  probability: Float32Array,
  geometry: Geometry,
  options: SegmentOptions,
): Segmentation {
  const { x: nx, y: ny, z: nz } = geometry.dims;
  const plane = nx * ny;
  if (probability.length !== plane * nz) {
    throw new RangeError(`probability has ${probability.length} values, expected ${plane * nz}`);
  }
  const labels = new Int32Array(probability.length);
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
  let maxProbability = 0;
  for (let z = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++) {
        const i = z * plane + y * nx + x;
        const p = probability[i];
        if (p > maxProbability) maxProbability = p;
        if (!(p >= options.threshold)) continue;
        let root = 0;
        for (const [dx, dy, dz] of offsets) {
          const xx = x + dx, yy = y + dy, zz = z + dz;
          if (xx < 0 || xx >= nx || yy < 0 || zz < 0) continue;
          const l = labels[zz * plane + yy * nx + xx];
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
        labels[i] = root;
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
  for (let z = 0, i = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++, i++) {
        if (!labels[i]) continue;
        const c = compact[find(labels[i])];
        labels[i] = c;
        const p = probability[i];
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

  const mask = new Uint8Array(probability.length);
  for (let i = 0; i < labels.length; i++) {
    if (labels[i]) mask[i] = Math.min(255, numberOf[labels[i]]);
  }
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
      centrePatient: voxelToPatient(geometry as Volume, centre[0], centre[1], centre[2]),
      boundingBox: box,
      longestDiameterMm: longestDiameter(labels, c, box, geometry),
      maxProbability: maxP[c],
      meanProbability: sumP[c] / count[c],
    };
  });
  return { findings, mask, maxProbability, components: k };
}

/** See `Finding.longestDiameterMm`. */
function longestDiameter(
  labels: Int32Array,
  c: number,
  box: { min: Vec3; max: Vec3 },
  g: Geometry,
): number {
  const { x: nx, y: ny, z: nz } = g.dims;
  const plane = nx * ny;
  const at = (x: number, y: number, z: number) =>
    x >= 0 && y >= 0 && z >= 0 && x < nx && y < ny && z < nz &&
    labels[z * plane + y * nx + x] === c;
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
  const mm = (d: Vec3): Vec3 =>
    [0, 1, 2].map((a) => d[0] * axes[0][a] + d[1] * axes[1][a] + d[2] * axes[2][a]) as Vec3;
  let best: Vec3 = [0, 0, 0];
  let bestLen = -1;
  const consider = (a: Vec3, b: Vec3) => {
    const d: Vec3 = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
    const m = mm(d);
    const len = m[0] * m[0] + m[1] * m[1] + m[2] * m[2];
    if (len > bestLen) {
      bestLen = len;
      best = d;
    }
  };
  if (surface.length <= EXACT_SURFACE_LIMIT) {
    for (let i = 0; i < surface.length; i++) {
      for (let j = i; j < surface.length; j++) consider(surface[i], surface[j]);
    }
  } else {
    for (const dir of DIRECTIONS) {
      let lo = surface[0], hi = surface[0];
      let loV = Infinity, hiV = -Infinity;
      for (const s of surface) {
        const p = mm(s);
        const v = p[0] * dir[0] + p[1] * dir[1] + p[2] * dir[2];
        if (v < loV) [loV, lo] = [v, s];
        if (v > hiV) [hiV, hi] = [v, s];
      }
      consider(lo, hi);
    }
  }
  return Math.sqrt(Math.max(0, bestLen)) + oneVoxelAlong(best, g);
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
