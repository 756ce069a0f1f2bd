/**
 * @module The body wall and skeleton of the v2 chest: skin, subcutaneous fat, muscle, breasts,
 * the thoracic cavity, the table (and pad) under the back, vertebrae (bodies, discs, canal,
 * posterior elements), sternum, scapulae, and — as 3D tubes built once per study — ribs with
 * costal cartilages and clavicles.
 */

import type { Rng } from "../rng.ts";
import {
  type Anatomy,
  bodyAt,
  bodyRadius,
  BREAST_ANGLES,
  breastSize,
  cavityAt,
  cavityRadius,
  levelPhase,
  mediastinumAt,
  spineAt,
} from "./anatomy.ts";
import {
  ANY,
  bits,
  type Canvas,
  ellipsePolygon,
  fillPolygon,
  R,
  radialPolygon,
  smooth,
} from "./raster.ts";
import { addPolyline, buildTubeSet, paintTubes, type TubePoint, type TubeSet } from "./tubes.ts";

/** Bones built once per study. */
export interface Skeleton {
  ribs: TubeSet;
  cartilage: TubeSet;
  clavicles: TubeSet;
  /** Scapula tip and top (a). */
  scapula: [number, number];
  /** Axillary lymph nodes: x, y, z (patient), radius — 4 numbers each. */
  nodes: number[];
  /** The table: top-surface y at x = 0, curvature, pad thickness (0: none). */
  table: { y0: number; k: number; pad: number; padHu: number };
}

const DROP = [35, 60, 78, 88, 95, 100, 102, 98, 90, 80, 50, 35];
const END = [150, 160, 164, 166, 167, 168, 168, 152, 146, 136, 112, 88];
const CART = [132, 146, 148, 150, 150, 147, 143, 126, 120, 116, 999, 999];

/** Ribs, cartilages, clavicles and the table of a patient. */
export function buildSkeleton(an: Anatomy, rng: Rng): Skeleton {
  const ribs: number[] = [], cart: number[] = [], clav: number[] = [];
  const aRib1 = Math.max(an.aApexR, an.aApexL) - rng.range(4, 12);
  for (const side of [-1, 1]) {
    for (let i = 0; i < 12; i++) {
      const head = aRib1 - i * an.pitch + side * rng.range(0, 2);
      const drop = DROP[i] * rng.range(0.88, 1.1), end = (END[i] * Math.PI) / 180;
      const cartAt = (CART[i] * Math.PI) / 180;
      const r = i === 0 ? 5 : i === 1 ? 4.4 : i >= 10 ? 3.4 : 3.8;
      const { yv, rv } = spineAt(an, head);
      const zc = an.zCarina;
      const bone: TubePoint[] = [[side * (rv + 9), yv + 0.25 * rv, head + zc, r, r - 1.3]];
      const cartilage: TubePoint[] = [];
      const psi0 = 0.42, steps = Math.ceil((end - psi0) / 0.11);
      for (let s = 0; s <= steps; s++) {
        const psi = psi0 + ((end - psi0) * s) / steps;
        const a = head - drop * Math.pow((psi - psi0) / (Math.PI - psi0), 1.1);
        const t = Math.atan2(Math.cos(psi), side * Math.sin(psi));
        const c = cavityAt(an, a), rc = cavityRadius(an, a, t) + r + 0.8;
        const p: TubePoint = [rc * Math.cos(t), c.cy + rc * Math.sin(t), a + zc, r, r - 1.3];
        if (psi <= cartAt) bone.push(p);
        if (psi >= cartAt) cartilage.push([p[0], p[1], p[2], r * 0.85, 0]);
      }
      if (i < 7 && cartilage.length > 0) {
        const last = cartilage[cartilage.length - 1], la = last[2] - zc, m = mediastinumAt(an, la);
        cartilage.push([side * sternumWidth(an, la), m.yS - 6, last[2] + 4, r * 0.8, 0]);
      }
      // A rib is a flat band: two tubes stacked along z make it ~2r + 5 mm tall, 2r thick.
      for (const dz of [-2.5, 2.5]) {
        addPolyline(ribs, bone.map(([x, y, z, r0, r1]) => [x, y, z + dz, r0, r1] as TubePoint));
      }
      addPolyline(cart, cartilage);
    }
    const m = mediastinumAt(an, an.aNotch), b = bodyAt(an, an.aNotch), n = an.aNotch + an.zCarina;
    addPolyline(
      clav,
      [
        [side * 14, m.yS - 10, n + 3, 7, 5.5],
        [side * 0.42 * b.W, b.cy - 0.8 * b.Dant, n + 10, 6.5, 5],
        [side * 0.72 * b.W, b.cy - 0.55 * b.Dant, n + 18, 6, 4.5],
        [side * 0.88 * b.W, b.cy - 0.2 * b.Dant, n + 22, 7, 5.5],
      ],
    );
  }
  const pad = rng.next() < 0.5 ? rng.range(10, 35) : 0;
  const apex = Math.max(an.aApexR, an.aApexL);
  const nodes: number[] = [];
  for (const side of [-1, 1]) {
    for (let i = rng.int(1, 4); i > 0; i--) {
      const a = apex - rng.range(40, 100), ax = axilla(an, a, side);
      if (!ax) continue;
      const x = ax[0] + rng.range(-0.4, 0.4) * ax[2], y = ax[1] + rng.range(-0.5, 0.5) * ax[3];
      nodes.push(x, y, a + an.zCarina, rng.range(2.5, 5.5));
    }
  }
  return {
    ribs: buildTubeSet(ribs),
    cartilage: buildTubeSet(cart),
    clavicles: buildTubeSet(clav),
    scapula: [apex - rng.range(140, 165), apex + rng.range(4, 14)],
    nodes,
    table: { y0: an.yBack + pad + rng.range(0, 2), k: rng.range(3e-4, 8e-4), pad, padHu: -800 },
  };
}

/** How much of the breast bulge lies over angle t (0..1). */
function breastWeight(t: number): number {
  let w = 0;
  for (const c of BREAST_ANGLES) {
    const d = Math.atan2(Math.sin(t - c), Math.cos(t - c)) / 0.34;
    w += Math.exp(-0.5 * d * d);
  }
  return w;
}

/** Sternum half-width at height a (0 outside the sternum). */
export function sternumWidth(an: Anatomy, a: number): number {
  const xiphoid = an.aCentral + 5;
  if (a > an.aNotch || a < xiphoid - 20) return 0;
  if (a > an.aNotch - 45) return 22;
  return a > xiphoid ? 13 : 6;
}

/** The axillary fat pad at height a: centre x, y and semi-axes (null above or below it). */
function axilla(an: Anatomy, a: number, side: number): number[] | null {
  const apex = Math.max(an.aApexR, an.aApexL), u = (apex + 15 - a) / 130;
  if (u <= 0 || u >= 1) return null;
  const w = Math.sin(Math.PI * u), c = cavityAt(an, a);
  return [side * (c.A + 16 + 10 * w), c.cy + 0.2 * c.Bp, 8 + 16 * w, 16 + 22 * w];
}

/** Skin, fat, muscle (with fat planes, axillae and their nodes) and the cavity at height a. */
export function paintBodyWall(cv: Canvas, an: Anatomy, sk: Skeleton, a: number, z: number): void {
  const b = bodyAt(an, a), c = cavityAt(an, a);
  const outer = (t: number) => bodyRadius(an, a, t);
  const fatAt = (t: number) => {
    const s = Math.sin(t);
    return an.fat * (1 - 0.5 * Math.max(0, s) + 0.2 * Math.max(0, -s));
  };
  const skin = radialPolygon(0, b.cy, 180, outer);
  fillPolygon(cv, skin, 30, R.skin);
  fillPolygon(cv, radialPolygon(0, b.cy, 180, (t) => outer(t) - 2.2), -100, R.fat, ANY);
  paintBreasts(cv, an, a);
  const muscle = (t: number) => outer(t) - 2.2 - fatAt(t) - breastSize(an, a) * breastWeight(t);
  fillPolygon(cv, radialPolygon(0, b.cy, 180, muscle), 45, R.muscle);
  paintFatPlanes(cv, an, a);
  for (let k = 0; k < sk.nodes.length; k += 4) {
    const dz = z - sk.nodes[k + 2], q = sk.nodes[k + 3] ** 2 - dz * dz;
    if (q <= 0) continue;
    const e = ellipsePolygon(sk.nodes[k], sk.nodes[k + 1], Math.sqrt(q), 0.8 * Math.sqrt(q), 0, 20);
    fillPolygon(cv, e, 32, R.organ, bits(R.fat));
  }
  fillPolygon(cv, radialPolygon(0, c.cy, 160, (t) => cavityRadius(an, a, t)), 30, R.cavity);
}

/** Intermuscular fat: the axillae and the plane under the pectoral muscles. */
function paintFatPlanes(cv: Canvas, an: Anatomy, a: number): void {
  const c = cavityAt(an, a), muscle = bits(R.muscle);
  for (const side of [-1, 1]) {
    const ax = axilla(an, a, side);
    if (ax) {
      fillPolygon(cv, ellipsePolygon(ax[0], ax[1], ax[2], ax[3], side * 0.35), -95, R.fat, muscle);
    }
  }
  const apex = Math.max(an.aApexR, an.aApexL);
  if (a > apex + 5 || a < an.aDomeR + 15) return;
  const n = 20, off = 11 + 0.4 * an.mPec;
  for (const side of [-1, 1]) {
    const poly = new Float64Array(4 * (n + 1));
    for (let i = 0; i <= n; i++) {
      const psi = 1.9 + (0.95 * i) / n;
      const t = Math.atan2(Math.cos(psi), side * Math.sin(psi));
      const r = cavityRadius(an, a, t) + off, j = 2 * n + 1 - i;
      const thick = 1.8 * Math.sin((Math.PI * (i + 0.5)) / (n + 1));
      poly[2 * i] = r * Math.cos(t);
      poly[2 * i + 1] = c.cy + r * Math.sin(t);
      poly[2 * j] = (r + thick) * Math.cos(t);
      poly[2 * j + 1] = c.cy + (r + thick) * Math.sin(t);
    }
    fillPolygon(cv, poly, -95, R.fat, muscle);
  }
}

/** Fibroglandular tissue inside the breasts (the body outline carries their bulge). */
function paintBreasts(cv: Canvas, an: Anatomy, a: number): void {
  const size = breastSize(an, a);
  if (size < 3) return;
  const b = bodyAt(an, a);
  for (const t of BREAST_ANGLES) {
    const r = bodyRadius(an, a, t) - 0.5 * size - 6;
    const e = ellipsePolygon(r * Math.cos(t), b.cy + r * Math.sin(t), 0.5 * size, 1.1 * size, t);
    fillPolygon(cv, e, 20, R.organ, bits(R.fat));
  }
}

/** Vertebra, sternum, ribs, cartilages, clavicles and scapulae at height a (patient z). */
export function paintSkeleton(cv: Canvas, an: Anatomy, sk: Skeleton, a: number, z: number): void {
  const { yv, rv } = spineAt(an, a), u = levelPhase(an, a);
  const canalY = yv + rv + 8, rc = 7.5;
  const bone = (poly: Float64Array, hu: number) => fillPolygon(cv, poly, hu, R.bone, ANY);
  bone(ellipsePolygon(0, canalY, rc + 5, rc + 4.5), 520);
  const spEnd = Math.min(canalY + rc + 30, an.yBack - 14);
  if (u > 0.25 && u < 0.9) bone(rect(0, canalY + rc + 2, 0, spEnd, 3.5), 480);
  if (u > 0.15 && u < 0.6) {
    for (const s of [-1, 1]) bone(rect(s * 8, canalY - 2, s * (rv + 24), canalY + 4, 4.5), 480);
  }
  if (u < 0.2) {
    fillPolygon(cv, ellipsePolygon(0, yv, rv, rv * 0.92), 85, R.bone, ANY);
  } else {
    bone(ellipsePolygon(0, yv, rv, rv * 0.92), 650);
    bone(ellipsePolygon(0, yv, rv - 1.6, rv * 0.92 - 1.6), 210);
  }
  fillPolygon(cv, ellipsePolygon(0, canalY, rc, rc * 0.85), 15, R.bone, ANY);
  const sw = sternumWidth(an, a);
  if (sw > 0) {
    const ys = mediastinumAt(an, a).yS - 6;
    bone(ellipsePolygon(0, ys, sw, 6), sw > 6 ? 600 : 160);
    if (sw > 6) bone(ellipsePolygon(0, ys, sw - 1.6, 4.4), 190);
  }
  paintTubes(cv, sk.ribs, z, { hu: 780, innerHu: 230, allow: ANY, to: R.bone });
  paintTubes(cv, sk.cartilage, z, { hu: 120, allow: ANY, to: R.bone });
  paintTubes(cv, sk.clavicles, z, { hu: 750, innerHu: 260, allow: ANY, to: R.bone });
  paintScapulae(cv, an, sk, a);
}

function paintScapulae(cv: Canvas, an: Anatomy, sk: Skeleton, a: number): void {
  const [bottom, top] = sk.scapula;
  if (a < bottom || a > top) return;
  const f = Math.sqrt((a - bottom) / (top - bottom)), c = cavityAt(an, a);
  const psiA = 0.9 - 0.35 * f, psiB = 1.0 + 0.85 * f, n = 24;
  for (const side of [-1, 1]) {
    const poly = new Float64Array(4 * (n + 1));
    for (let i = 0; i <= n; i++) {
      const psi = psiA + ((psiB - psiA) * i) / n;
      const t = Math.atan2(Math.cos(psi), side * Math.sin(psi));
      const rIn = cavityRadius(an, a, t) + 12, thick = 3 + 4 * smooth(0.8, 1, i / n);
      poly[2 * i] = rIn * Math.cos(t);
      poly[2 * i + 1] = c.cy + rIn * Math.sin(t);
      const j = 2 * n + 1 - i;
      poly[2 * j] = (rIn + thick) * Math.cos(t);
      poly[2 * j + 1] = c.cy + (rIn + thick) * Math.sin(t);
    }
    fillPolygon(cv, poly, 520, R.bone, bits(R.muscle, R.fat));
  }
}

/** A bar of half-width h from (x0, y0) to (x1, y1). */
function rect(x0: number, y0: number, x1: number, y1: number, h: number): Float64Array {
  const l = Math.hypot(x1 - x0, y1 - y0) || 1, nx = (-(y1 - y0) / l) * h, ny = ((x1 - x0) / l) * h;
  return Float64Array.of(x0 + nx, y0 + ny, x1 + nx, y1 + ny, x1 - nx, y1 - ny, x0 - nx, y0 - ny);
}

/** The table top (a curved carbon plate with a foam core) and the optional pad under the back. */
export function paintTable(cv: Canvas, an: Anatomy, sk: Skeleton): void {
  const g = cv.grid, { y0, k, pad, padHu } = sk.table, { value, region } = cv;
  for (let col = 0; col < g.cols; col++) {
    const x = g.x0 + col * g.dx;
    if (Math.abs(x) > 240) continue;
    const top = y0 - k * x * x;
    const padTop = pad > 0 && Math.abs(x) < 0.75 * an.bodyW ? top - pad : top;
    const r0 = Math.max(0, Math.ceil((padTop - g.y0) / g.dx));
    const r1 = Math.min(g.rows - 1, Math.floor((top + 42 - g.y0) / g.dx));
    for (let r = r0; r <= r1; r++) {
      const p = r * g.cols + col;
      if (region[p] !== R.air) continue;
      const d = g.y0 + r * g.dx - top;
      value[p] = d < 0 ? padHu : d < 2.5 || d > 39 ? 260 : -920;
      region[p] = R.table;
    }
  }
}
