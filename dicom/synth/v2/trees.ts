/**
 * @module Pulmonary vessel and bronchial trees of the v2 chest, grown per lobe by recursive
 * space-filling subdivision: points sampled in the lobe (from a coarse lung label volume) are
 * split in two by the plane through their centroid across their longest axis; each branch runs
 * part of the way towards its points' centroid, curving, with Murray's-law radii (r ∝ n^⅓) that
 * taper from ~6 mm at the hilum to ~0.5 mm. Arteries start at the hilum, veins at the left
 * atrium; bronchi (air lumen, soft-tissue wall) run beside the larger arteries.
 */

import type { Rng } from "../rng.ts";
import type { Lobe } from "./lungs.ts";
import type { CoarseVolume } from "./texture.ts";
import { addPolyline, buildTubeSet, type TubePoint, type TubeSet } from "./tubes.ts";

/** A coarse lung label volume (1 right, 2 left); slice k lies at z = z0 − k·step. */
export type LabelVolume = CoarseVolume<Uint8Array>;

/** The grown trees. */
export interface Trees {
  vessels: TubeSet;
  bronchi: TubeSet;
  branches: number;
}

/** Roots: artery hilum and bronchus end per side (patient coordinates), vein roots per lobe. */
export interface TreeRoots {
  hilum: [number[], number[]];
  bronchusEnd: [number[], number[]];
  veins: Record<Lobe, number[]>;
}

const LOBES: Lobe[] = ["RUL", "RML", "RLL", "LUL", "LLL"];
const R_LEAF = 0.36;
/** Mean spacing (mm) of the points a tree fills: about one terminal branch per this cube. */
const POINT_SPACING = 6.5;

type V3 = [number, number, number];

/** Grows the artery, vein and bronchial trees of both lungs. */
export function growTrees(
  vol: LabelVolume,
  lobeOf: (side: 1 | 2, x: number, y: number, z: number) => Lobe,
  roots: TreeRoots,
  rng: Rng,
): Trees {
  const vessels: number[] = [], bronchi: number[] = [];
  let branches = 0;
  for (const kind of ["artery", "vein"] as const) {
    const pts: Record<Lobe, number[]> = { RUL: [], RML: [], RLL: [], LUL: [], LLL: [] };
    const p = (vol.step / POINT_SPACING) ** 3;
    for (let k = 0; k < vol.nz; k++) {
      for (let j = 0; j < vol.ny; j++) {
        for (let i = 0; i < vol.nx; i++) {
          const side = vol.data[(k * vol.ny + j) * vol.nx + i];
          if (side === 0 || rng.next() >= p) continue;
          const x = vol.x0 + (i + rng.range(-0.5, 0.5)) * vol.step;
          const y = vol.y0 + (j + rng.range(-0.5, 0.5)) * vol.step;
          const z = vol.z0 - (k + rng.range(-0.5, 0.5)) * vol.step;
          pts[lobeOf(side as 1 | 2, x, y, z)].push(x, y, z);
        }
      }
    }
    for (const lobe of LOBES) {
      const list = pts[lobe];
      if (list.length < 9) continue;
      const n = list.length / 3, c = centroid(list, Int32Array.from({ length: n }, (_, i) => i));
      const side = lobe[0] === "R" ? 0 : 1;
      let root: V3, bronchus: V3 | null = null;
      if (kind === "artery") {
        const h = roots.hilum[side], d = unit(sub(c, h as V3));
        root = add(h as V3, scale(d, 10));
        if (lobe.endsWith("UL")) root[2] += 8;
        bronchus = sub(roots.bronchusEnd[side] as V3, root);
      } else {
        root = [...roots.veins[lobe]] as V3;
      }
      const g = new Grower(list, rng, kind === "artery" ? bronchi : null, vessels);
      g.grow(root, Int32Array.from({ length: n }, (_, i) => i), 0, bronchus);
      branches += g.branches;
    }
  }
  return { vessels: buildTubeSet(vessels), bronchi: buildTubeSet(bronchi), branches };
}

class Grower {
  branches = 0;
  constructor(
    private pts: number[],
    private rng: Rng,
    private bronchi: number[] | null,
    private vessels: number[],
  ) {}

  grow(p: V3, idx: Int32Array, gen: number, offset: V3 | null): void {
    const n = idx.length, c = centroid(this.pts, idx);
    const r = R_LEAF * Math.cbrt(n);
    if (n <= 2 || gen >= 16) {
      const end = add(c, scale(sub(c, p), 0.3));
      this.branch(p, end, r, 0.8 * r, gen, offset, offset);
      return;
    }
    const f = gen === 0 ? 0.3 : this.rng.range(0.3, 0.55);
    let q = add(p, scale(sub(c, p), f));
    if (norm(sub(q, p)) < 2) q = add(p, scale(unit(sub(c, p)), 2));
    const dir = unit(sub(q, p));
    const axis = principalAxis(this.pts, idx, c, dir);
    let na = 0;
    for (const i of idx) if (dotAt(this.pts, i, c, axis) < 0) na++;
    if (na === 0 || na === n) {
      this.branch(p, c, r, 0.8 * r, gen, offset, offset);
      return;
    }
    const a = new Int32Array(na), b = new Int32Array(n - na);
    let ia = 0, ib = 0;
    for (const i of idx) dotAt(this.pts, i, c, axis) < 0 ? (a[ia++] = i) : (b[ib++] = i);
    let qOff: V3 | null = null;
    if (offset) {
      const u = unit(cross(dir, [0.3, 0.5, 1]));
      qOff = scale(u, 2.05 * r + 0.6);
    }
    this.branch(p, q, r, 0.96 * r, gen, offset, qOff);
    this.grow(q, a, gen + 1, qOff);
    this.grow(q, b, gen + 1, qOff);
  }

  /** One curving branch from p to q, split into capsules; the bronchus beside it when asked. */
  branch(p: V3, q: V3, r0: number, r1: number, gen: number, o0: V3 | null, o1: V3 | null): void {
    this.branches++;
    const d = sub(q, p), len = norm(d);
    if (len < 1e-6) return;
    const m = Math.max(1, Math.min(4, Math.round(len / 7)));
    const perp = unit(cross(d, [this.rng.range(-1, 1), this.rng.range(-1, 1), 1]));
    const amp = this.rng.range(-0.12, 0.12) * len;
    const pts: TubePoint[] = [], air: TubePoint[] = [];
    for (let k = 0; k <= m; k++) {
      const s = k / m, bend = amp * Math.sin(Math.PI * s), r = r0 + s * (r1 - r0);
      const x = p[0] + s * d[0] + bend * perp[0];
      const y = p[1] + s * d[1] + bend * perp[1];
      const z = p[2] + s * d[2] + bend * perp[2];
      pts.push([x, y, z, r, 0]);
      if (o0 && o1 && this.bronchi && r >= 0.9 && gen <= 7) {
        const rb = 1.05 * r, o = add(scale(o0, 1 - s), scale(o1, s));
        air.push([x + o[0], y + o[1], z + o[2], rb, rb - Math.max(0.45, 0.24 * rb)]);
      }
    }
    addPolyline(this.vessels, pts);
    if (air.length > 1) addPolyline(this.bronchi!, air);
  }
}

function centroid(pts: number[], idx: Int32Array): V3 {
  let x = 0, y = 0, z = 0;
  for (const i of idx) (x += pts[3 * i]), (y += pts[3 * i + 1]), (z += pts[3 * i + 2]);
  return [x / idx.length, y / idx.length, z / idx.length];
}

/** The longest axis of the points' spread across `dir` (the split plane contains `dir`). */
function principalAxis(pts: number[], idx: Int32Array, c: V3, dir: V3): V3 {
  let xx = 0, xy = 0, xz = 0, yy = 0, yz = 0, zz = 0;
  for (const i of idx) {
    let x = pts[3 * i] - c[0], y = pts[3 * i + 1] - c[1], z = pts[3 * i + 2] - c[2];
    const along = x * dir[0] + y * dir[1] + z * dir[2];
    x -= along * dir[0], y -= along * dir[1], z -= along * dir[2];
    xx += x * x, xy += x * y, xz += x * z, yy += y * y, yz += y * z, zz += z * z;
  }
  let v: V3 = xx >= yy && xx >= zz ? [1, 0.1, 0.1] : yy >= zz ? [0.1, 1, 0.1] : [0.1, 0.1, 1];
  for (let it = 0; it < 12; it++) {
    v = unit([
      xx * v[0] + xy * v[1] + xz * v[2],
      xy * v[0] + yy * v[1] + yz * v[2],
      xz * v[0] + yz * v[1] + zz * v[2],
    ]);
  }
  return v;
}

const dotAt = (pts: number[], i: number, c: V3, v: V3): number =>
  (pts[3 * i] - c[0]) * v[0] + (pts[3 * i + 1] - c[1]) * v[1] + (pts[3 * i + 2] - c[2]) * v[2];
const add = (a: V3, b: V3): V3 => [a[0] + b[0], a[1] + b[1], a[2] + b[2]];
const sub = (a: V3, b: V3): V3 => [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
const scale = (a: V3, k: number): V3 => [a[0] * k, a[1] * k, a[2] * k];
const norm = (a: V3): number => Math.hypot(a[0], a[1], a[2]);
const unit = (a: V3): V3 => scale(a, 1 / (norm(a) || 1));
const cross = (a: V3, b: V3): V3 => [
  a[1] * b[2] - a[2] * b[1],
  a[2] * b[0] - a[0] * b[2],
  a[0] * b[1] - a[1] * b[0],
];
