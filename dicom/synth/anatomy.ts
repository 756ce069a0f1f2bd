/**
 * @module A seeded analytic chest phantom: per patient a few body proportions, per slice the list of
 * ellipses (body, fat, ribs, mediastinum, heart, aorta, spine, lungs) in paint order.
 *
 * Coordinates are in-plane patient millimetres (LPS): `x` grows towards the patient's left, `y`
 * towards posterior, so on an axial image with orientation `1\0\0\0\1\0` anterior is at the top and
 * the spine at the bottom. `t` runs from 0 (top slice, superior) to 1 (bottom slice, inferior).
 */

import type { Rng } from "./rng.ts";

/** Hounsfield units of each tissue. */
export const HU = {
  air: -1000,
  fat: -100,
  softTissue: 40,
  mediastinalFat: -90,
  heart: 45,
  aorta: 50,
  bone: 700,
  spinalCanal: 15,
  lung: -850,
} as const;

/** An axis-aligned ellipse (a circle when rx === ry) filled with one HU value. */
export interface Ellipse {
  cx: number;
  cy: number;
  rx: number;
  ry: number;
  hu: number;
}

/** Seeded per-patient proportions of the phantom. */
export interface Anatomy {
  bodyRx: number;
  bodyRy: number;
  bodyCy: number;
  fatMm: number;
  lungWidth: number;
  lungHeight: number;
  heartShift: number;
  ribPhase: number;
}

/** One slice of the phantom: shapes in paint order plus the two lungs (null above/below them). */
export interface SliceAnatomy {
  shapes: Ellipse[];
  rightLung: Ellipse | null;
  leftLung: Ellipse | null;
}

/** Where the lungs start and end along the scan (fractions of t). */
export const LUNG_RANGE = { top: 0.06, bottom: 0.94 } as const;

/** Draws a patient's proportions. Everything fits a 358 mm field of view. */
export function createAnatomy(rng: Rng): Anatomy {
  return {
    bodyRx: rng.range(145, 165),
    bodyRy: rng.range(100, 118),
    bodyCy: rng.range(-6, 6),
    fatMm: rng.range(7, 16),
    lungWidth: rng.range(0.34, 0.38),
    lungHeight: rng.range(0.7, 0.78),
    heartShift: rng.range(8, 22),
    ribPhase: rng.range(0, 1),
  };
}

/** Relative lung size at `t`: 0 outside the lungs, rising from the apex, falling at the diaphragm. */
export function lungProfile(t: number): number {
  const u = (t - LUNG_RANGE.top) / (LUNG_RANGE.bottom - LUNG_RANGE.top);
  if (u <= 0 || u >= 1) return 0;
  return Math.sqrt(Math.sin(Math.PI * Math.pow(u, 1.6)));
}

const circle = (cx: number, cy: number, r: number, hu: number): Ellipse => ({
  cx,
  cy,
  rx: r,
  ry: r,
  hu,
});

/** The phantom's cross-section at `t` (0 = top slice, 1 = bottom slice). */
export function sliceAnatomy(a: Anatomy, t: number): SliceAnatomy {
  const swell = 0.96 + 0.04 * Math.sin(Math.PI * t);
  const rx = a.bodyRx * swell, ry = a.bodyRy * swell, cy = a.bodyCy;
  const irx = rx - a.fatMm, iry = ry - a.fatMm;
  const shapes: Ellipse[] = [
    { cx: 0, cy, rx, ry, hu: HU.fat },
    { cx: 0, cy, rx: irx, ry: iry, hu: HU.softTissue },
  ];
  const s = lungProfile(t);
  const inChest = s > 0.05;
  if (inChest) pushRibs(shapes, a, t, irx, iry, cy);
  if (inChest) {
    shapes.push({
      cx: 0,
      cy: cy - 0.12 * iry,
      rx: 0.3 * irx,
      ry: 0.55 * iry,
      hu: HU.mediastinalFat,
    });
  }
  const heart = Math.sin(Math.PI * Math.min(1, Math.max(0, (t - 0.42) / 0.52)));
  if (inChest && heart > 0.1) {
    const hr = 0.3 * irx * Math.sqrt(heart);
    shapes.push({ cx: a.heartShift, cy: cy - 0.2 * iry, rx: hr, ry: hr * 0.8, hu: HU.heart });
  }
  const spineY = cy + iry - 45;
  if (inChest) shapes.push(circle(18, spineY - 24, 11, HU.aorta));
  shapes.push(circle(0, spineY, 17, HU.bone));
  shapes.push({ cx: 0, cy: spineY + 33, rx: 20, ry: 6, hu: HU.bone });
  shapes.push(circle(0, spineY + 24, 7, HU.spinalCanal));
  let rightLung: Ellipse | null = null, leftLung: Ellipse | null = null;
  if (inChest) {
    const lrx = a.lungWidth * irx * s, lry = a.lungHeight * iry * s;
    const lcy = cy + 0.02 * iry;
    rightLung = { cx: -0.52 * irx, cy: lcy, rx: lrx, ry: lry, hu: HU.lung };
    leftLung = { cx: 0.52 * irx, cy: lcy, rx: lrx * 0.93, ry: lry * 0.97, hu: HU.lung };
    shapes.push(rightLung, leftLung);
  }
  return { shapes, rightLung, leftLung };
}

/** Rib cross-sections on a ring just inside the body wall; each rib shows only at some levels. */
function pushRibs(
  shapes: Ellipse[],
  a: Anatomy,
  t: number,
  irx: number,
  iry: number,
  cy: number,
): void {
  const count = 18;
  for (let i = 0; i < count; i++) {
    // Angles from the +x axis, y posterior: skip the spine (90°) and the sternum (270°).
    const side = i < count / 2 ? 0 : 180;
    const deg = side - 65 + ((i % (count / 2)) * 130) / (count / 2 - 1);
    const visible = Math.sin(2 * Math.PI * (t * 11 + a.ribPhase + i * 0.13)) > 0.1;
    if (!visible) continue;
    const rad = (deg * Math.PI) / 180;
    shapes.push(circle(0.92 * irx * Math.cos(rad), cy + 0.9 * iry * Math.sin(rad), 4.5, HU.bone));
  }
  shapes.push({ cx: 0, cy: cy - 0.9 * iry, rx: 14, ry: 5, hu: HU.bone }); // sternum
}

/** True when the point is inside the ellipse (boundary included). */
export function insideEllipse(e: Ellipse, x: number, y: number): boolean {
  const dx = (x - e.cx) / e.rx, dy = (y - e.cy) / e.ry;
  return dx * dx + dy * dy <= 1;
}
