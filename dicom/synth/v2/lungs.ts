/**
 * @module Lungs and upper abdomen of the v2 chest: the lungs fill the thoracic cavity under two
 * paraboloid apices, minus the mediastinal hull, above three diaphragm domes (right higher than
 * left, a central one under the heart) with the liver, spleen, stomach (air–fluid level) and
 * colonic gas below them. Oblique and horizontal fissures split the lungs into lobes; the
 * parenchyma gets seeded density, a dependent gradient, texture and the thin fissure sheets.
 */

import type { Rng } from "../rng.ts";
import { type Anatomy, cavityAt, mediastinumAt } from "./anatomy.ts";
import {
  bits,
  type Canvas,
  clamp,
  ellipsePolygon,
  fillPolygon,
  R,
  radialPolygon,
} from "./raster.ts";
import { type Texture, textureRow } from "./texture.ts";

export type Lobe = "RUL" | "RML" | "RLL" | "LUL" | "LLL";

/**
 * A fissure sheet a = a0 + ky·(y − yA) + bow·sin(π·u) + twist (u: 0 front, 1 back of the cavity);
 * the twist turns the sheet like a propeller about the hilum level (lateral part more anterior
 * above the hilum, more posterior below it).
 */
interface Sheet {
  a0: number;
  ky: number;
  bow: number;
  tw: number;
  /** Curvature across the lung (mm at the lateral wall). */
  cup: number;
}

const A_HILUM = -25;

/** Lung and abdomen details drawn once per study. */
export interface LungModel {
  /** Oblique fissures (right, left) and the right horizontal fissure. */
  oblique: [Sheet, Sheet];
  horizontal: Sheet;
  yA: number;
  yP: number;
  /** Colonic gas pockets: centre x, y, a, radius, half-height, harmonic phase. */
  gas: number[][];
}

export function buildLungModel(an: Anatomy, rng: Rng): LungModel {
  const c = cavityAt(an, 0), yA = c.yAnt, yP = c.yPost;
  const sheet = (aPost: number, aAnt: number): Sheet => ({
    a0: aAnt,
    ky: (aPost - aAnt) / (yP - yA),
    bow: rng.range(-8, 8),
    tw: rng.range(0.6, 1.2),
    cup: rng.range(-12, 12),
  });
  const oblique: [Sheet, Sheet] = [
    sheet(rng.range(0, 25), an.aDomeR + rng.range(0, 15)),
    sheet(rng.range(8, 32), an.aDomeL + rng.range(0, 15)),
  ];
  const horizontal = {
    a0: rng.range(-50, -30),
    ky: rng.range(0, 0.12),
    bow: rng.range(-4, 4),
    tw: 0,
    cup: rng.range(-6, 6),
  };
  const gas: number[][] = [];
  const low = Math.min(an.aDomeL, an.aDomeR) - 30;
  for (let i = rng.int(2, 5); i > 0; i--) {
    const cb = cavityAt(an, low);
    gas.push([
      cb.A * rng.range(0.2, 0.75),
      cb.yAnt + (cb.yPost - cb.yAnt) * rng.range(0.08, 0.4),
      rng.range(an.aBottom - 10, low),
      rng.range(8, 20),
      rng.range(8, 18),
      rng.range(0, 6),
    ]);
  }
  return { oblique, horizontal, yA, yP, gas };
}

function sheetA(s: Sheet, m: LungModel, x: number, y: number, a: number): number {
  const u = clamp((y - m.yA) / (m.yP - m.yA), 0, 1);
  const w = (Math.abs(x) - 60) / 60;
  const twist = s.tw * 25 * w * clamp((a - A_HILUM) / 50, -1.5, 1.5);
  return s.a0 + s.ky * (y - m.yA) + s.bow * Math.sin(Math.PI * u) + twist + s.cup * w * w;
}

/** The lobe of a lung point (a = z − zCarina). */
export function lobeAt(m: LungModel, side: 1 | 2, x: number, y: number, a: number): Lobe {
  if (side === 1) {
    if (a < sheetA(m.oblique[0], m, x, y, a)) return "RLL";
    return a < sheetA(m.horizontal, m, x, y, a) ? "RML" : "RUL";
  }
  return a < sheetA(m.oblique[1], m, x, y, a) ? "LLL" : "LUL";
}

/** Lungs under their apices, then the three domes and the abdominal organs below them. */
export function paintLungsAndAbdomen(cv: Canvas, an: Anatomy, m: LungModel, a: number): void {
  const c = cavityAt(an, a), xm = mediastinumAt(an, a).x;
  const allow = bits(R.cavity);
  for (const [side, apex] of [[-1, an.aApexR], [1, an.aApexL]] as const) {
    if (a >= apex) continue;
    const ca = cavityAt(an, apex);
    const re = 58 * Math.sqrt((apex - a) / 28);
    const ex = side * 0.52 * ca.A, ey = ca.cy + 0.2 * ca.Bp;
    const poly = re > 400
      ? Float64Array.of(-500, -500, 500, -500, 500, 500, -500, 500)
      : ellipsePolygon(ex, ey, re, 0.88 * re, 0, 72);
    for (let i = 0; i < poly.length; i += 2) {
      poly[i] = side < 0 ? Math.min(poly[i], xm) : Math.max(poly[i], xm);
    }
    fillPolygon(cv, poly, -850, side < 0 ? R.lungR : R.lungL, allow);
  }
  const open = bits(R.lungR, R.lungL, R.cavity);
  const dome = (top: number, xc: number, yc: number, hMed: number, toward: number, cap = 1e9) => {
    const h = top - a;
    if (h <= 0) return null;
    const lat = Math.min(cap, (c.A - Math.abs(xc)) * Math.sqrt(h / an.hLat) * 1.05);
    const med = Math.min(cap, (Math.abs(xc) + 10) * Math.sqrt(h / hMed));
    const ant = (yc - c.yAnt) * Math.sqrt(h / an.hAnt) * 1.05;
    const post = Math.min(0.6 * cap, (c.yPost - yc) * Math.sqrt(h / an.hPost) * 1.05);
    const [rxPos, rxNeg] = toward > 0 ? [lat, med] : [med, lat];
    return radialPolygon(xc, yc, 96, (t) => {
      const ct = Math.cos(t), st = Math.sin(t);
      const rx = ct >= 0 ? rxPos : rxNeg, ry = st >= 0 ? post : ant;
      return 1 / Math.sqrt((ct / rx) ** 2 + (st / ry) ** 2);
    });
  };
  const yc = c.cy - 0.1 * c.Ba;
  const yCentral = c.yAnt + 0.3 * (c.yPost - c.yAnt);
  const central = dome(an.aCentral, xm + 8, yCentral, 30, 1, 0.32 * c.A);
  if (central) fillPolygon(cv, central, an.liverHu, R.liver, open);
  const right = dome(an.aDomeR, -0.45 * c.A, yc, 30, -1);
  if (right) fillPolygon(cv, right, an.liverHu, R.liver, open);
  const left = dome(an.aDomeL, 0.48 * c.A, yc, 30, 1);
  if (left) fillPolygon(cv, left, -85, R.abdomen, open);
  if (a < an.aDomeL - 4) paintLeftUpperQuadrant(cv, an, m, a);
}

function paintLeftUpperQuadrant(cv: Canvas, an: Anatomy, m: LungModel, a: number): void {
  const c = cavityAt(an, a), abd = bits(R.abdomen);
  const f = clamp((an.aDomeL - 4 - a) / 40, 0, 1);
  const spleen = ellipsePolygon(0.68 * c.A, c.cy + 0.45 * c.Bp, 18 + 12 * f, 10 + 38 * f, 1.1);
  fillPolygon(cv, spleen, 48, R.organ, abd);
  const sx = 0.32 * c.A + 10, sy = c.cy - 0.22 * c.Ba, rx = 12 + 36 * f, ry = 10 + 28 * f;
  fillPolygon(cv, ellipsePolygon(sx, sy, rx, ry, 0.4), 40, R.organ, bits(R.abdomen, R.liver));
  if (rx > 8) {
    const inner = ellipsePolygon(sx, sy, rx - 4, ry - 4, 0.4);
    fillPolygon(cv, inner, 14, R.organ, bits(R.organ));
    fillPolygon(cv, inner, -1000, R.organ, bits(R.organ), sy - 0.15 * ry);
  }
  for (const [x, y, ac, r, hz, ph] of m.gas) {
    const q = 1 - ((a - ac) / hz) ** 2;
    if (q <= 0) continue;
    const rr = r * Math.sqrt(q);
    const shape = (t: number) => rr * (1 + 0.18 * Math.cos(3 * t + ph) + 0.1 * Math.sin(5 * t));
    fillPolygon(cv, radialPolygon(x, y, 40, (t) => shape(t) + 2), 35, R.organ, abd);
    fillPolygon(cv, radialPolygon(x, y, 40, shape), -1000, R.organ, bits(R.organ));
  }
}

const rowTex = new Float32Array(4096);

/**
 * Parenchyma of every lung pixel: seeded density, dependent gradient, texture and fissures; and
 * mild texture on the soft tissues (fat, muscle, liver, organs, marrow).
 */
export function shadeTissues(
  cv: Canvas,
  an: Anatomy,
  m: LungModel,
  tex: Texture,
  a: number,
  z: number,
): void {
  const g = cv.grid, c = cavityAt(an, a), { value, region } = cv;
  const w = Math.max(g.dx, 0.5), half = 0.5;
  const amp = new Float32Array(16);
  amp[R.fat] = 10;
  amp[R.mediastinum] = 8;
  amp[R.muscle] = 7;
  amp[R.liver] = 6;
  amp[R.organ] = 6;
  amp[R.heart] = 4;
  amp[R.cavity] = 8;
  amp[R.bone] = 12;
  for (let r = 0; r < g.rows; r++) {
    const y = g.y0 + r * g.dx, base = r * g.cols;
    let c0 = -1, c1 = -1;
    for (let p = base; p < base + g.cols; p++) {
      if (region[p] > R.table || region[p] === R.lungR || region[p] === R.lungL) {
        if (c0 < 0) c0 = p - base;
        c1 = p - base;
      }
    }
    if (c0 < 0) continue;
    textureRow(tex, g.x0 + c0 * g.dx, g.dx, y, z, c1 - c0 + 1, rowTex);
    const dep = clamp((y - c.yAnt) / (c.yPost - c.yAnt), 0, 1);
    const lung = an.lungHu + an.lungGradient * dep * dep;
    for (let col = c0; col <= c1; col++) {
      const p = base + col, reg = region[p], t = rowTex[col - c0];
      if (reg !== R.lungR && reg !== R.lungL) {
        value[p] += amp[reg] * t;
        continue;
      }
      const x = g.x0 + col * g.dx;
      cv.tex[p] = t;
      let v = lung + an.lungTexture * t;
      const sh = m.oblique[reg === R.lungR ? 0 : 1];
      const dA = a - sheetA(sh, m, x, y, a);
      const occ = clamp(0.5 + (half - Math.abs(dA / Math.hypot(1, sh.ky))) / w, 0, 1);
      let occH = 0;
      if (reg === R.lungR && dA > 0) {
        const dH = a - sheetA(m.horizontal, m, x, y, a);
        occH = clamp(0.5 + (half - Math.abs(dH / Math.hypot(1, m.horizontal.ky))) / w, 0, 1);
      }
      // Fissures are thin and not equally visible everywhere: fade them with the texture.
      const f = Math.max(occ, occH) * clamp(0.75 + 0.35 * t, 0.25, 1);
      if (f > 0) v += 0.8 * f * (-640 - v);
      value[p] = v;
    }
  }
}
