/**
 * @module Where the v2 nodules and masses go: free in the parenchyma (clear of the pleura by a
 * distance transform of the coarse lung volume), juxta-vascular (beside a vessel of the tree), or
 * juxta-pleural (found by marching to the pleura with exact point tests, the part beyond it is
 * cut off: a flattened side). Also the lesions' clipped analytic volume, integrated on a fine
 * local grid rendered with the same painter as the images.
 */

import type { Rng } from "../rng.ts";
import { lobeAt } from "./lungs.ts";
import {
  type Attachment,
  designNodule,
  noduleDistance,
  type NoduleSpec,
  type NoduleType,
} from "./nodules.ts";
import { createCanvas } from "./raster.ts";
import { paintAnatomy, regionAt, type Scene } from "./scene.ts";
import type { LabelVolume } from "./trees.ts";
import { CAP } from "./tubes.ts";

/** What to place. */
export interface LesionRequest {
  count: number;
  /** Equivalent diameter range of nodules, mm. */
  diameter: [number, number];
  types: NoduleType[];
  /** Diameter of the mass, mm (0: none). */
  mass: number;
}

/** Euclidean-ish distance (mm) of each lung voxel to the nearest non-lung voxel (3-4-5 chamfer). */
export function lungDistance(vol: LabelVolume): Float32Array {
  const { nx, ny, nz, step, data } = vol, d = new Float32Array(data.length);
  for (let i = 0; i < d.length; i++) d[i] = data[i] ? 1e9 : 0;
  const w = [step, step * Math.SQRT2, step * Math.sqrt(3)];
  const offs: [number, number, number, number][] = [];
  for (let dz = -1; dz <= 0; dz++) {
    for (let dy = -1; dy <= 1; dy++) {
      for (let dx = -1; dx <= 1; dx++) {
        if (dz === 0 && (dy > 0 || (dy === 0 && dx >= 0))) continue;
        offs.push([dx, dy, dz, w[Math.abs(dx) + Math.abs(dy) + Math.abs(dz) - 1]]);
      }
    }
  }
  const pass = (sign: number) => {
    const kk = sign > 0 ? [0, nz, 1] : [nz - 1, -1, -1];
    const jj = sign > 0 ? [0, ny, 1] : [ny - 1, -1, -1];
    const ii = sign > 0 ? [0, nx, 1] : [nx - 1, -1, -1];
    for (let k = kk[0]; k !== kk[1]; k += kk[2]) {
      for (let j = jj[0]; j !== jj[1]; j += jj[2]) {
        for (let i = ii[0]; i !== ii[1]; i += ii[2]) {
          const p = (k * ny + j) * nx + i;
          if (d[p] === 0) continue;
          let best = d[p];
          for (const [dx, dy, dz, c] of offs) {
            const x = i + sign * dx, y = j + sign * dy, z = k + sign * dz;
            if (x < 0 || y < 0 || z < 0 || x >= nx || y >= ny || z >= nz) {
              best = Math.min(best, c);
              continue;
            }
            const v = d[(z * ny + y) * nx + x] + c;
            if (v < best) best = v;
          }
          d[p] = best;
        }
      }
    }
  };
  pass(1);
  pass(-1);
  return d;
}

/** Places the requested lesions; the mass (if any) first. */
export function placeLesions(
  s: Scene,
  vol: LabelVolume,
  dist: Float32Array,
  req: LesionRequest,
  rng: Rng,
): NoduleSpec[] {
  const placed: NoduleSpec[] = [];
  const lungVoxels: number[] = [];
  for (let i = 0; i < dist.length; i++) if (dist[i] > 0) lungVoxels.push(i);
  if (lungVoxels.length === 0) return placed;
  const centre = (p: number): [number, number, number] => {
    const i = p % vol.nx,
      j = Math.floor(p / vol.nx) % vol.ny,
      k = Math.floor(p / (vol.nx * vol.ny));
    return [vol.x0 + i * vol.step, vol.y0 + j * vol.step, vol.z0 - k * vol.step];
  };
  const distAt = (x: number, y: number, z: number): number => {
    const i = Math.round((x - vol.x0) / vol.step), j = Math.round((y - vol.y0) / vol.step);
    const k = Math.round((vol.z0 - z) / vol.step);
    if (i < 0 || j < 0 || k < 0 || i >= vol.nx || j >= vol.ny || k >= vol.nz) return 0;
    return dist[(k * vol.ny + j) * vol.nx + i];
  };
  const apart = (c: number[], ext: number) =>
    placed.every((o) =>
      Math.hypot(o.c[0] - c[0], o.c[1] - c[1], o.c[2] - c[2]) > o.extent + ext + 3
    );
  const jobs: { kind: "nodule" | "mass"; type: NoduleType; d: number; att: Attachment }[] = [];
  if (req.mass > 0) jobs.push({ kind: "mass", type: "solid", d: req.mass, att: "none" });
  for (let n = 0; n < req.count; n++) {
    const type = rng.pick(weighted(req.types));
    const [lo, hi] = req.diameter;
    const min = type === "solid" ? lo : Math.min(hi, Math.max(lo, 6));
    const d = min * Math.pow(hi / min, rng.next());
    const u = rng.next();
    const att: Attachment = u < 0.5 ? "none" : u < 0.75 ? "juxta-vascular" : "juxta-pleural";
    jobs.push({ kind: "nodule", type, d, att });
  }
  let massIndex = 0, noduleIndex = 0;
  for (const job of jobs) {
    let d = job.d;
    for (let attempt = 0; attempt < 600; attempt++) {
      if (attempt > 0 && attempt % 150 === 0) d = Math.max(job.kind === "mass" ? 31 : 3, d * 0.85);
      const id = job.kind === "mass" ? massIndex + 1 : noduleIndex + 1;
      const spec = designNodule(rng, id, job.kind, job.type, Math.round(d * 10) / 10);
      const att = job.kind === "mass" && attempt >= 200 ? "juxta-pleural" : job.att;
      const c = att === "juxta-vascular"
        ? besideVessel(s, rng, spec, distAt)
        : att === "juxta-pleural"
        ? onPleura(s, rng, spec, lungVoxels, dist, centre, vol)
        : free(rng, spec, lungVoxels, dist, centre, vol.step);
      if (!c || !apart(c, spec.extent)) continue;
      const side = regionAt(s, c[0], c[1], c[2]);
      if (side !== 1 && side !== 2) continue;
      spec.c = c;
      spec.attachment = att;
      placed.push(spec);
      if (job.kind === "mass") massIndex++;
      else noduleIndex++;
      break;
    }
  }
  return placed;
}

function weighted(types: NoduleType[]): NoduleType[] {
  const w: Record<NoduleType, number> = { solid: 11, "part-solid": 4, "ground-glass": 5 };
  return types.flatMap((t) => Array(w[t]).fill(t));
}

function free(
  rng: Rng,
  spec: NoduleSpec,
  voxels: number[],
  dist: Float32Array,
  centre: (p: number) => [number, number, number],
  step: number,
): [number, number, number] | null {
  const p = rng.pick(voxels);
  if (dist[p] < spec.extent + 3 + step) return null;
  const c = centre(p);
  return [c[0] + rng.range(-1, 1), c[1] + rng.range(-1, 1), c[2] + rng.range(-1, 1)];
}

function besideVessel(
  s: Scene,
  rng: Rng,
  spec: NoduleSpec,
  distAt: (x: number, y: number, z: number) => number,
): [number, number, number] | null {
  const set = s.trees?.vessels;
  if (!set || set.count === 0) return null;
  const o = rng.int(0, set.count - 1) * CAP, caps = set.caps;
  const rv = (caps[o + 6] + caps[o + 7]) / 2;
  if (rv < 0.8 || rv > 3.5) return null;
  const m = [0, 1, 2].map((k) => (caps[o + k] + caps[o + 3 + k]) / 2);
  const axis = [0, 1, 2].map((k) => caps[o + 3 + k] - caps[o + k]);
  const l = Math.hypot(axis[0], axis[1], axis[2]) || 1;
  const u = [rng.range(-1, 1), rng.range(-1, 1), rng.range(-1, 1)];
  const along = (u[0] * axis[0] + u[1] * axis[1] + u[2] * axis[2]) / (l * l);
  const perp = u.map((v, k) => v - along * axis[k]), pl = Math.hypot(perp[0], perp[1], perp[2]);
  if (pl < 0.1) return null;
  const off = rv + 0.7 * spec.R;
  const c = m.map((v, k) => v + (perp[k] / pl) * off) as [number, number, number];
  return distAt(c[0], c[1], c[2]) >= spec.extent + 4 ? c : null;
}

function onPleura(
  s: Scene,
  rng: Rng,
  spec: NoduleSpec,
  voxels: number[],
  dist: Float32Array,
  centre: (p: number) => [number, number, number],
  vol: LabelVolume,
): [number, number, number] | null {
  const p = rng.pick(voxels);
  if (dist[p] > vol.step * 2.5) return null;
  const { nx, ny } = vol, at = (q: number) => (q >= 0 && q < dist.length ? dist[q] : 0);
  const g = [at(p + 1) - at(p - 1), at(p + nx) - at(p - nx), -(at(p + nx * ny) - at(p - nx * ny))];
  const gl = Math.hypot(g[0], g[1], g[2]);
  if (gl < 1e-6) return null;
  const n = g.map((v) => v / gl), c0 = centre(p);
  const side = regionAt(s, c0[0], c0[1], c0[2]);
  if (side !== 1 && side !== 2) return null;
  // March outwards (against the inward normal) to the pleura.
  let wall: number[] | null = null;
  for (let t = 0; t < 4 * vol.step + 6; t += 0.5) {
    const q = c0.map((v, k) => v - n[k] * t);
    if (regionAt(s, q[0], q[1], q[2]) !== side) {
      wall = c0.map((v, k) => v - n[k] * (t - 0.25));
      break;
    }
  }
  if (!wall) return null;
  const depth = rng.range(0.45, 0.7) * spec.R;
  const c = wall.map((v, k) => v + n[k] * depth) as [number, number, number];
  // Clear of other walls: the far side of the lesion stays in the lung.
  const far = c.map((v, k) => v + n[k] * (spec.extent + 2));
  return regionAt(s, far[0], far[1], far[2]) === side ? c : null;
}

/** Lung side and lobe of a lesion centre. */
export function lesionSite(s: Scene, spec: NoduleSpec) {
  const [x, y, z] = spec.c, side = regionAt(s, x, y, z) === 1 ? 1 : 2;
  return {
    lung: side === 1 ? "right" as const : "left" as const,
    lobe: lobeAt(s.lm, side, x, y, z - s.an.zCarina),
  };
}

/** Volume (mm³) of the lesion inside the lungs, integrated on a fine local grid. */
export function clippedVolume(s: Scene, spec: NoduleSpec): number {
  const ext = spec.extent, h = Math.min(0.5, Math.max(0.12, ext / 28));
  const n = Math.ceil((2 * ext) / h) + 1;
  const cv = createCanvas({ cols: n, rows: n, x0: spec.c[0] - ext, y0: spec.c[1] - ext, dx: h });
  const d = [0, 0, 0];
  let count = 0;
  for (let k = 0; k < n; k++) {
    const dz = -ext + k * h;
    paintAnatomy(cv, s, spec.c[2] + dz);
    for (let r = 0; r < n; r++) {
      for (let c = 0; c < n; c++) {
        const reg = cv.region[r * n + c];
        if (reg !== 1 && reg !== 2) continue;
        noduleDistance(spec, -ext + c * h, -ext + r * h, dz, d);
        if (d[0] <= 0) count++;
      }
    }
  }
  return count * h * h * h;
}
