/**
 * @module An independent chest phantom for the lung stage's tests, drawn here and not by
 * `dicom/synth`: a body (skin-fat-muscle) with asymmetric lungs whose size changes from apex to
 * base and which touch the chest wall over a long stretch, heart, liver below the right lung,
 * trachea and two main bronchi, vessels inside the lungs (along z, in-plane, and a branch), and
 * spheres: free nodules, a nodule on the pleura, a mass. HU on any grid (pixel spacing, slice
 * spacing, size), slices averaged over their thickness, seeded Gaussian noise.
 */
import type { Geometry } from "../../sidecar/postprocess.ts";

export interface PhantomOptions {
  size?: number;
  pixelMm?: number;
  sliceMm?: number;
  /** z range (mm, superior positive) covered: from `top` down to `bottom`. */
  top?: number;
  bottom?: number;
  noise?: number;
  seed?: number;
  /** Sphere lesions: centre (mm, LPS), radius (mm), HU. */
  spheres?: Sphere[];
  /** Extra tubes (vessels) inside the lungs. */
  vessels?: boolean;
  /** Lungs' widths (mm): right, left. */
  lungRx?: [number, number];
}

export interface Sphere {
  name: string;
  c: [number, number, number];
  r: number;
  hu?: number;
}

export interface Phantom {
  hu: Float32Array;
  width: number;
  height: number;
  depth: number;
  pixelMm: number;
  sliceMm: number;
  /** Patient coordinates of voxel (0, 0, 0); rows along +y, columns along +x, slices along −z. */
  origin: [number, number, number];
  spheres: Sphere[];
  /** Per voxel what was drawn there: 0 anatomy, 1 a vessel in the lungs, 2 + n sphere n. */
  tags: Uint8Array;
  /** Voxel index of a point (fractional). */
  voxelOf(p: [number, number, number]): [number, number, number];
}

export const LUNG_TOP = 120;
export const LUNG_BOTTOM = -100;

export function chestPhantom(o: PhantomOptions = {}): Phantom {
  const size = o.size ?? 256, px = o.pixelMm ?? 1.4, dz = o.sliceMm ?? 2.5;
  const top = o.top ?? 140, bottom = o.bottom ?? -130;
  const depth = Math.floor((top - bottom) / dz) + 1;
  const origin: [number, number, number] = [-(size - 1) / 2 * px, -(size - 1) / 2 * px, top];
  const [rRx, lRx] = o.lungRx ?? [62, 52];
  const spheres = o.spheres ?? [];
  const hu = new Float32Array(size * size * depth);
  const tags = new Uint8Array(size * size * depth);
  let s = o.seed ?? 1;
  const rand = () => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const gauss = () => Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand());
  const sub = Math.max(1, Math.round(dz / 1.25)); // sub-slices averaged over the thickness
  const ell = (x: number, y: number, cx: number, cy: number, rx: number, ry: number) =>
    ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1;
  let tag = 0;
  const valueAt = (x: number, y: number, z: number): number => {
    tag = 0;
    for (const [n, sp] of spheres.entries()) {
      if ((x - sp.c[0]) ** 2 + (y - sp.c[1]) ** 2 + (z - sp.c[2]) ** 2 <= sp.r ** 2) {
        tag = 2 + n;
        return sp.hu ?? 40;
      }
    }
    if (y > 128 && y < 140 && Math.abs(x) < 170) return 150; // table
    if (!ell(x, y, 0, 0, 165, 120)) return -1000;
    if (!ell(x, y, 0, 0, 162, 117)) return 30; // skin
    if (!ell(x, y, 0, 0, 150, 105)) return -100; // fat
    if (ell(x, y, 0, 95, 20, 18)) return 600; // spine
    // Lungs between LUNG_TOP and LUNG_BOTTOM; bigger towards the base.
    const t = (LUNG_TOP - z) / (LUNG_TOP - LUNG_BOTTOM);
    const inLungs = t >= 0 && t <= 1;
    const grow = inLungs ? Math.sqrt(Math.min(1, t * 3 + 0.15)) : 0;
    // Trachea above the carina (z > 40), bronchi below it to z = 20.
    if (z > 40 && ell(x, y, 0, -15, 9, 9)) return ell(x, y, 0, -15, 7.5, 7.5) ? -1000 : 40;
    for (const side of [-1, 1]) {
      const bx = side * (z > 20 && z <= 40 ? (40 - z) * 1.2 : 0);
      if (z > 20 && z <= 40 && ell(x, y, bx, -15, 6, 6)) {
        return ell(x, y, bx, -15, 4.5, 4.5) ? -1000 : 40;
      }
    }
    if (z < 0 && ell(x, y, 15, -20, 60, 55)) return 45; // heart
    if (inLungs) {
      const right = ell(x, y, -135 + rRx, 5, rRx * grow, 85 * grow);
      const left = ell(x, y, 137 - lRx, 5, lRx * grow, 85 * grow);
      if (right || left) {
        if (o.vessels !== false) {
          const cx = right ? -135 + rRx : 137 - lRx;
          tag = 1;
          // A vessel along z, one in-plane along x, a branch (two tubes from one point).
          if (Math.hypot(x - cx, y + 20) < 3) return 40;
          if (Math.abs(z - 10) < 2.5 && Math.abs(y - 30) < 2.5 && Math.abs(x - cx) < 35) return 40;
          if (z < -20 && z > -60) {
            const u = (-20 - z) / 40;
            if (Math.hypot(x - (cx + 25 + u * 15), y - 40) < 2.5) return 40;
            if (Math.hypot(x - (cx + 25 - u * 15), y - 40) < 2.5) return 40;
          }
          tag = 0;
        }
        return -850;
      }
    }
    if (z < LUNG_BOTTOM + 30 && ell(x, y, -40, 0, 100, 80)) return 55; // liver
    return 45; // muscle and mediastinum
  };
  for (let k = 0; k < depth; k++) {
    const zc = top - k * dz;
    for (let j = 0; j < size; j++) {
      const y = origin[1] + j * px;
      for (let i = 0; i < size; i++) {
        const x = origin[0] + i * px;
        let sum = 0, t = 0;
        for (let q = 0; q < sub; q++) {
          sum += valueAt(x, y, zc - dz / 2 + (q + 0.5) * dz / sub);
          if (q === sub >> 1 || tag > 1) t = Math.max(t, tag);
        }
        hu[(k * size + j) * size + i] = sum / sub + (o.noise ?? 15) * gauss();
        tags[(k * size + j) * size + i] = t;
      }
    }
  }
  return {
    hu,
    width: size,
    height: size,
    depth,
    pixelMm: px,
    sliceMm: dz,
    origin,
    spheres,
    tags,
    voxelOf: (p) => [(p[0] - origin[0]) / px, (p[1] - origin[1]) / px, (top - p[2]) / dz],
  };
}

/** The phantom as the lung stage reads it: HU on its own grid, patient x of a voxel. */
export function phantomValues(p: Phantom) {
  return {
    data: p.hu,
    width: p.width,
    height: p.height,
    depth: p.depth,
    sx: p.pixelMm,
    sy: p.pixelMm,
    sz: p.sliceMm,
    toHu: { scale: 1, offset: 0 },
    patientX: (i: number) => p.origin[0] + i * p.pixelMm,
  };
}

/** The phantom's geometry: rows along +y, columns along +x, slices along −z. */
export function phantomGeometry(p: Phantom): Geometry {
  return {
    dims: { x: p.width, y: p.height, z: p.depth },
    spacing: { x: p.pixelMm, y: p.pixelMm, z: p.sliceMm },
    origin: p.origin,
    rowDirection: [1, 0, 0],
    columnDirection: [0, 1, 0],
    sliceStep: [0, 0, -p.sliceMm],
  };
}
