/**
 * @module Seeded patient anatomy of the v2 chest generator: body size, landmarks along z (lung
 * apices, carina, diaphragm domes, vertebral levels), and the smooth z-profiles of the body
 * outline, the thoracic cavity (inner surface of the rib cage) and the spine.
 *
 * Coordinates are patient millimetres, LPS (x → patient left, y → posterior, z → superior). Along
 * z most things are written in `a = z − zCarina`: millimetres above the carina.
 */

import type { Rng } from "../rng.ts";
import { smooth, superRadius } from "./raster.ts";

/** Per-patient anatomy (all lengths mm). */
export interface Anatomy {
  sex: "M" | "F";
  zCarina: number;
  /** Scan range in `a`: top (above the apices) and bottom (below the domes). */
  aTop: number;
  aBottom: number;
  aApexR: number;
  aApexL: number;
  /** Tops of the right, left and central (under the heart) diaphragm domes. */
  aDomeR: number;
  aDomeL: number;
  aCentral: number;
  /** Depth below a dome top at which it reaches the anterior / lateral / posterior wall. */
  hAnt: number;
  hLat: number;
  hPost: number;
  /** Sternal notch and aortic arch top. */
  aNotch: number;
  aArch: number;
  /** Body half-width, anterior and posterior half-depths at mid chest; back at yBack. */
  bodyW: number;
  bodyDant: number;
  bodyDpost: number;
  yBack: number;
  fat: number;
  mPec: number;
  mLat: number;
  /** Vertebral body: depth of its centre from the back skin, radius at mid chest. */
  spineDepth: number;
  rv: number;
  /** Vertebral level pitch and phase (the level boundary nearest the carina, in a). */
  pitch: number;
  levelPhase: number;
  /** Cavity half-width at mid chest. */
  cavA: number;
  /** Harmonic perturbations of the body (index 0..2) and cavity (3..5) outlines. */
  harm: number[];
  harmPhase: number[];
  /** Mediastinum centre shift to the left (mm). */
  mediastinumX: number;
  lungHu: number;
  /** Dependent (posterior) increase of lung density, HU. */
  lungGradient: number;
  /** Amplitude of the parenchymal texture, HU. */
  lungTexture: number;
  liverHu: number;
  /** Breast size (0 for men). */
  breast: number;
}

/** Draws a patient's anatomy. */
export function createAnatomy(rng: Rng, sex: "M" | "F"): Anatomy {
  const m = sex === "M" ? 1 : 0;
  const fat = 4 + 22 * Math.pow(rng.next(), 1.6);
  const aApexR = rng.range(70, 92);
  const aApexL = aApexR + rng.range(-6, 4);
  const aDomeR = rng.range(-130, -105) - 8 * m;
  const aDomeL = aDomeR - rng.range(10, 22);
  const hPost = rng.range(45, 60);
  const top = Math.max(aApexR, aApexL) + rng.range(12, 28);
  let bottom = Math.min(aDomeR, aDomeL) - hPost - rng.range(8, 22);
  if (top - bottom > 330) bottom = top - 330;
  if (top - bottom < 250) bottom = top - 250;
  const bodyW = rng.range(138, 158) + 12 * m + 0.9 * fat;
  const bodyDant = rng.range(92, 108) + 6 * m + 1.1 * fat;
  const bodyDpost = rng.range(88, 100) + 4 * m + 0.2 * fat;
  const mLat = rng.range(6, 11);
  const harm = Array.from({ length: 6 }, (_, i) => rng.range(0.004, i < 3 ? 0.02 : 0.025));
  return {
    sex,
    zCarina: Math.round(rng.range(-90, 30)),
    aTop: top,
    aBottom: bottom,
    aApexR,
    aApexL,
    aDomeR,
    aDomeL,
    aCentral: (aDomeR + aDomeL) / 2 - rng.range(0, 8),
    hAnt: rng.range(20, 28),
    hLat: rng.range(28, 38),
    hPost,
    aNotch: Math.max(aApexR, aApexL) - rng.range(38, 50),
    aArch: rng.range(24, 38),
    bodyW,
    bodyDant,
    bodyDpost,
    yBack: rng.range(-10, 10) + bodyDpost,
    fat,
    mPec: rng.range(6, 14),
    mLat,
    spineDepth: rng.range(48, 56) + 0.3 * fat,
    rv: rng.range(16, 19) + m,
    pitch: rng.range(23, 27),
    levelPhase: rng.range(0, 1),
    cavA: bodyW - 2 - 0.8 * fat - mLat - 10,
    harm,
    harmPhase: Array.from({ length: 6 }, () => rng.range(0, 2 * Math.PI)),
    mediastinumX: rng.range(2, 8),
    lungHu: rng.range(-905, -865),
    lungGradient: rng.range(45, 90),
    lungTexture: rng.range(10, 22),
    liverHu: rng.range(50, 64),
    breast: sex === "F" ? rng.range(0.6, 1.3) : 0,
  };
}

/** How far below the apex the chest has opened up: 0 at the apex, 1 about 100 mm lower. */
export const opening = (an: Anatomy, a: number): number =>
  smooth(Math.max(an.aApexR, an.aApexL) + 10, Math.max(an.aApexR, an.aApexL) - 100, a);

/** The body outline at height a: centre y, half-width, anterior/posterior half-depths. */
export function bodyAt(an: Anatomy, a: number) {
  const s = opening(an, a), low = smooth(an.aDomeR, an.aDomeR - 80, a);
  const W = an.bodyW * (0.95 + 0.05 * s);
  const Dpost = an.bodyDpost * (0.94 + 0.06 * s);
  const Dant = an.bodyDant * (0.86 + 0.14 * s) + 0.25 * an.fat * low;
  return { cy: an.yBack - Dpost, W, Dant, Dpost };
}

/** Radius of the body outline at angle t about (0, body.cy), breasts included. */
export function bodyRadius(an: Anatomy, a: number, t: number): number {
  const b = bodyAt(an, a);
  let r = superRadius(t, b.W, b.Dant, b.Dpost, 2.05, 2.6) * harmonic(an, 0, a, t);
  const size = breastSize(an, a);
  if (size > 0) {
    for (const c of BREAST_ANGLES) {
      const d = Math.atan2(Math.sin(t - c), Math.cos(t - c)) / 0.34;
      r += size * Math.exp(-0.5 * d * d);
    }
  }
  return r;
}

/** Angles (about the body centre) of the breasts: anterolateral, supine. */
export const BREAST_ANGLES = [-Math.PI / 2 - 0.85, -Math.PI / 2 + 0.85];

/** How far the breasts bulge out at height a, mm. */
export function breastSize(an: Anatomy, a: number): number {
  const top = an.aNotch - 25, bottom = an.aDomeR;
  if (an.breast <= 0 || a > top || a < bottom) return 0;
  return 28 * an.breast * Math.sqrt(Math.sin((Math.PI * (top - a)) / (top - bottom)));
}

/** Vertebral body centre y and radius at height a. */
export function spineAt(an: Anatomy, a: number): { yv: number; rv: number } {
  const k = Math.min(1, Math.max(0, (an.aTop - a) / (an.aTop - an.aBottom)));
  return { yv: an.yBack - an.spineDepth, rv: an.rv * (0.85 + 0.3 * k) };
}

/** The thoracic cavity (inner surface of the rib cage) at height a. */
export function cavityAt(an: Anatomy, a: number) {
  const s = opening(an, a), body = bodyAt(an, a), { yv, rv } = spineAt(an, a);
  const yPost = yv + 1.05 * rv;
  const yAntFull = body.cy - body.Dant + 2 + 1.1 * an.fat + an.mPec + 6;
  const depth = yPost - yAntFull;
  const Bp = 0.5 * depth * (0.8 + 0.2 * s);
  const Ba = 0.5 * depth * (0.5 + 0.5 * s);
  const A = an.cavA * (0.44 + 0.56 * Math.pow(s, 0.8));
  return { cy: yPost - Bp, A, Ba, Bp, yAnt: yPost - Bp - Ba, yPost };
}

/** Radius of the cavity at angle t about (0, cavity.cy). */
export function cavityRadius(an: Anatomy, a: number, t: number): number {
  const c = cavityAt(an, a);
  return superRadius(t, c.A, c.Ba, c.Bp, 2.1, 2.6) * harmonic(an, 3, a, t);
}

function harmonic(an: Anatomy, first: number, a: number, t: number): number {
  let v = 1;
  for (let k = 0; k < 3; k++) {
    v += an.harm[first + k] * Math.cos((k + 2) * t + an.harmPhase[first + k] + 0.004 * a * k);
  }
  return v;
}

/** Mediastinal references at height a: back of the sternum, front of the spine, their span. */
export function mediastinumAt(an: Anatomy, a: number) {
  const c = cavityAt(an, a), { yv, rv } = spineAt(an, a);
  const yS = c.yAnt, yV = yv - rv;
  return { yS, yV, M: yV - yS, x: an.mediastinumX };
}

/** Position of a vertebral level boundary (0..1 within a level, 0 = disc at the top). */
export function levelPhase(an: Anatomy, a: number): number {
  const u = (an.levelPhase * an.pitch - a) / an.pitch;
  return u - Math.floor(u);
}
