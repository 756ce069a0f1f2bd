/**
 * @module Nodules and masses of the v2 chest: seeded type (solid, part-solid, ground-glass),
 * shape (round, ellipsoidal, lobulated by smooth radial bumps, spiculated with thin tapering
 * spikes), the signed distance of a point to them, and their painting into a plane with partial
 * volume at the edges, only on lung pixels (so a juxta-pleural nodule gets a flattened side).
 */

import type { Rng } from "../rng.ts";
import { type Canvas, clamp, LUNGS } from "./raster.ts";

export type NoduleType = "solid" | "part-solid" | "ground-glass";
export type NoduleShape = "round" | "ellipsoidal" | "lobulated" | "spiculated";
export type Attachment = "none" | "juxta-vascular" | "juxta-pleural";

/** One planned nodule (or mass). */
export interface NoduleSpec {
  id: number;
  kind: "nodule" | "mass";
  type: NoduleType;
  shape: NoduleShape;
  attachment: Attachment;
  /** Centre, patient mm (LPS). */
  c: [number, number, number];
  /** Requested equivalent diameter, mm. */
  diameter: number;
  /** Radius scale of the body (before lobulation), mm. */
  R: number;
  /** Rotation (rows: the body axes in patient space) and axis scales (product 1). */
  rot: number[];
  axes: [number, number, number];
  /** Lobulation bumps: unit vector and amplitude, 4 numbers each. */
  bumps: number[];
  /** Spikes: unit vector, length beyond 0.75 R, base radius, 5 numbers each. */
  spikes: number[];
  solidHu: number;
  ggoHu: number;
  /** Solid core radius as a fraction (part-solid). */
  core: number;
  /** Bounding radius, mm. */
  extent: number;
}

const KAPPA = 5;
const BUMP_MEAN = (1 - Math.exp(-2 * KAPPA)) / (2 * KAPPA);

/** Draws a nodule's type-dependent look and shape; `c` and `attachment` are set by placement. */
export function designNodule(
  rng: Rng,
  id: number,
  kind: "nodule" | "mass",
  type: NoduleType,
  diameter: number,
): NoduleSpec {
  const shapes: NoduleShape[] = kind === "mass"
    ? ["lobulated", "spiculated"]
    : type === "ground-glass"
    ? ["round", "ellipsoidal", "lobulated"]
    : ["round", "ellipsoidal", "lobulated", "spiculated"];
  const shape = diameter < 5 ? "round" : rng.pick(shapes);
  const rot = randomRotation(rng);
  let axes: [number, number, number] = [1, 1, 1];
  if (shape === "ellipsoidal" || (kind === "mass" && rng.next() < 0.5)) {
    const e1 = rng.range(1.15, 1.6), e2 = rng.range(0.8, 1.1);
    axes = [e1, e2, 1 / (e1 * e2)];
  }
  const bumps: number[] = [];
  if (shape === "lobulated" || shape === "spiculated") {
    const count = rng.int(4, 8), amp = shape === "lobulated" ? 0.35 : 0.15;
    for (let i = 0; i < count; i++) bumps.push(...randomUnit(rng), amp * rng.range(0.5, 1));
  }
  const spikes: number[] = [];
  if (shape === "spiculated") {
    for (let i = rng.int(7, 16); i > 0; i--) {
      const len = diameter * rng.range(0.35, 0.75);
      spikes.push(
        ...randomUnit(rng),
        len,
        rng.range(0.7, 1.2) * Math.min(1.8, 0.8 + diameter / 25),
      );
    }
  }
  const spec: NoduleSpec = {
    id,
    kind,
    type,
    shape,
    attachment: "none",
    c: [0, 0, 0],
    diameter,
    R: diameter / 2,
    rot,
    axes,
    bumps,
    spikes,
    solidHu: rng.range(-25, 65),
    ggoHu: rng.range(-640, -380),
    core: rng.range(0.35, 0.6),
    extent: 0,
  };
  // Scale R so that the (unclipped) body has the requested equivalent diameter.
  spec.R *= Math.cbrt(((Math.PI / 6) * diameter ** 3) / bodyVolume(spec));
  let ext = 0;
  for (const u of fibonacci(200)) ext = Math.max(ext, radiusAlong(spec, u));
  ext *= Math.max(...axes);
  for (let k = 0; k < spikes.length; k += 5) ext = Math.max(ext, 0.75 * spec.R + spikes[k + 3]);
  spec.extent = ext + 0.5;
  return spec;
}

/** Radius of the body along a unit direction in body (pre-scaling) coordinates. */
function radiusAlong(s: NoduleSpec, u: readonly number[]): number {
  let f = 1;
  const b = s.bumps;
  for (let k = 0; k < b.length; k += 4) {
    const dot = u[0] * b[k] + u[1] * b[k + 1] + u[2] * b[k + 2];
    f += b[k + 3] * (Math.exp(KAPPA * (dot - 1)) - BUMP_MEAN);
  }
  return s.R * f;
}

/** Volume of the body without spikes: ∫ r³/3 dΩ, numerically. */
export function bodyVolume(s: NoduleSpec): number {
  const dirs = fibonacci(2000);
  let v = 0;
  for (const u of dirs) v += radiusAlong(s, u) ** 3;
  return ((4 * Math.PI) / dirs.length) * (v / 3);
}

/**
 * Signed distances (mm, negative inside) of a point offset (dx, dy, dz) from the centre: to the
 * whole lesion (body and spikes), to its body only, and to the solid core of a part-solid one.
 */
export function noduleDistance(s: NoduleSpec, dx: number, dy: number, dz: number, out: number[]) {
  const r = s.rot, ax = s.axes;
  const u0 = (r[0] * dx + r[1] * dy + r[2] * dz) / ax[0];
  const u1 = (r[3] * dx + r[4] * dy + r[5] * dz) / ax[1];
  const u2 = (r[6] * dx + r[7] * dy + r[8] * dz) / ax[2];
  const rho = Math.sqrt(u0 * u0 + u1 * u1 + u2 * u2) || 1e-9;
  let f = 1;
  const b = s.bumps;
  for (let k = 0; k < b.length; k += 4) {
    const dot = (u0 * b[k] + u1 * b[k + 1] + u2 * b[k + 2]) / rho;
    f += b[k + 3] * (Math.exp(KAPPA * (dot - 1)) - BUMP_MEAN);
  }
  const body = rho - s.R * f;
  let all = body;
  const sp = s.spikes, start = 0.75 * s.R;
  for (let k = 0; k < sp.length; k += 5) {
    const t = dx * sp[k] + dy * sp[k + 1] + dz * sp[k + 2];
    if (t < start || t > start + sp[k + 3]) continue;
    const ex = dx - t * sp[k], ey = dy - t * sp[k + 1], ez = dz - t * sp[k + 2];
    const width = sp[k + 4] * (1 - (0.85 * (t - start)) / sp[k + 3]);
    all = Math.min(all, Math.sqrt(ex * ex + ey * ey + ez * ez) - width);
  }
  out[0] = all;
  out[1] = body;
  out[2] = s.type === "part-solid" ? rho - s.core * s.R * f : Infinity;
}

const d3 = [0, 0, 0];

/**
 * Paints the lesions crossing plane z (on lung pixels only). When `mask` is given, writes each
 * lesion's label (id, or 100 + k for mass k) where the pixel centre is inside it, and reports the
 * body's pixels (spikes left out) through `onBody(lesion, pixel)`.
 */
export function paintNodules(
  cv: Canvas,
  list: readonly NoduleSpec[],
  z: number,
  texture: Float32Array | null,
  mask?: Uint8Array,
  onBody?: (s: NoduleSpec, pixel: number) => void,
): void {
  const g = cv.grid, { value, region } = cv, w = g.dx;
  for (const s of list) {
    const dz = z - s.c[2];
    if (Math.abs(dz) > s.extent) continue;
    const h = Math.sqrt(s.extent * s.extent - dz * dz);
    const c0 = Math.max(0, Math.ceil((s.c[0] - h - g.x0) / g.dx));
    const c1 = Math.min(g.cols - 1, Math.floor((s.c[0] + h - g.x0) / g.dx));
    const r0 = Math.max(0, Math.ceil((s.c[1] - h - g.y0) / g.dx));
    const r1 = Math.min(g.rows - 1, Math.floor((s.c[1] + h - g.y0) / g.dx));
    const label = s.kind === "mass" ? 100 + s.id : s.id;
    for (let r = r0; r <= r1; r++) {
      const dy = g.y0 + r * g.dx - s.c[1];
      for (let c = c0; c <= c1; c++) {
        const p = r * g.cols + c;
        if (!((LUNGS >>> region[p]) & 1)) continue;
        noduleDistance(s, g.x0 + c * g.dx - s.c[0], dy, dz, d3);
        const occ = clamp(0.5 - d3[0] / w, 0, 1);
        if (occ <= 0) continue;
        const t = texture ? texture[p] : 0, v = value[p];
        if (s.type === "solid") {
          value[p] = v + occ * (s.solidHu + 10 * t - v);
        } else {
          const halo = v + occ * (s.ggoHu + 30 * t - v);
          let out = Math.max(v, halo);
          const spike = clamp(0.5 - d3[0] / w, 0, 1) - clamp(0.5 - d3[1] / w, 0, 1);
          if (spike > 0) out += spike * (s.solidHu - out);
          if (d3[2] !== Infinity) out += clamp(0.5 - d3[2] / w, 0, 1) * (s.solidHu + 8 * t - out);
          value[p] = out;
        }
        if (mask && d3[0] <= 0) {
          mask[p] = label;
          if (onBody && d3[1] <= 0) onBody(s, p);
        }
      }
    }
  }
}

function randomUnit(rng: Rng): [number, number, number] {
  const z = rng.range(-1, 1), t = rng.range(0, 2 * Math.PI), q = Math.sqrt(1 - z * z);
  return [q * Math.cos(t), q * Math.sin(t), z];
}

function randomRotation(rng: Rng): number[] {
  const a = randomUnit(rng);
  const h: [number, number, number] = Math.abs(a[2]) < 0.9 ? [0, 0, 1] : [1, 0, 0];
  const b = normalize(cross(a, h)), c = cross(a, b);
  return [...a, ...b, ...c];
}

function fibonacci(n: number): [number, number, number][] {
  const out: [number, number, number][] = [], g = Math.PI * (3 - Math.sqrt(5));
  for (let i = 0; i < n; i++) {
    const z = 1 - (2 * (i + 0.5)) / n, q = Math.sqrt(1 - z * z);
    out.push([q * Math.cos(g * i), q * Math.sin(g * i), z]);
  }
  return out;
}

const cross = (a: number[], b: number[]): [number, number, number] => [
  a[1] * b[2] - a[2] * b[1],
  a[2] * b[0] - a[0] * b[2],
  a[0] * b[1] - a[1] * b[0],
];
function normalize(v: [number, number, number]): [number, number, number] {
  const n = Math.hypot(...v) || 1;
  return [v[0] / n, v[1] / n, v[2] / n];
}
