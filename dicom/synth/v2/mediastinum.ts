/**
 * @module The mediastinum of the v2 chest: the great vessels (ascending aorta, arch and its
 * branches, descending aorta, pulmonary trunk and arteries, SVC, IVC, brachiocephalic veins,
 * azygos), trachea and main bronchi, oesophagus, the heart (an ellipsoid resting on the
 * diaphragm), thyroid, and the mediastinal fat hull around all of them that the lungs wrap.
 */

import type { Rng } from "../rng.ts";
import { type Anatomy, mediastinumAt, spineAt } from "./anatomy.ts";
import { ANY, bits, type Canvas, ellipsePolygon, fillPolygon, R, rayEllipseFar } from "./raster.ts";
import {
  addPolyline,
  buildTubeSet,
  paintTubes,
  smoothPath,
  tubeDiscs,
  type TubePoint,
  type TubeSet,
} from "./tubes.ts";

/** The heart ellipsoid: centre (x, y, a), in-plane semi-axes, vertical semi-axis, rotation. */
export interface Heart {
  x: number;
  y: number;
  a: number;
  L: number;
  S: number;
  H: number;
  rot: number;
  phase: number;
}

/** Everything mediastinal, built once per study (z is patient z inside the tube sets). */
export interface Mediastinum {
  vessels: TubeSet;
  airways: TubeSet;
  esophagus: TubeSet;
  heart: Heart;
  /** Hilar points (patient coordinates) where the lung trees start. */
  hilum: { right: number[]; left: number[] };
  /** Where the main bronchi end at the hila (the bronchial trees continue from there). */
  bronchusEnds: { right: number[]; left: number[] };
  /** Pulmonary vein roots at the left atrium: right upper, right lower, left upper, left lower. */
  veinRoots: number[][];
  /** Mediastinal lymph nodes: x, y, z (patient), radius — 4 numbers each. */
  nodes: number[];
}

/** Builds the mediastinal structures of a patient. */
export function buildMediastinum(an: Anatomy, rng: Rng): Mediastinum {
  const zc = an.zCarina, j = () => rng.range(-2, 2);
  // (x, f, a, r, ri): f is the fraction of the way from the sternum (0) to the spine (1).
  const P = (x: number, f: number, a: number, r: number, ri = 0): TubePoint => {
    const m = mediastinumAt(an, a);
    return [x + m.x, m.yS + f * m.M, a + zc, r, ri];
  };
  const top = an.aTop + 10, bottom = an.aBottom - 10, arch = an.aArch;
  const aoR = rng.range(13, 16), dR = rng.range(10.5, 12.5);
  const vessels: number[] = [], airways: number[] = [], eso: number[] = [];
  const tube = (out: number[], pts: TubePoint[]) => addPolyline(out, smoothPath(pts));
  tube(vessels, [
    P(8, 0.45, -62, aoR),
    P(2 + j(), 0.34, -30, aoR + 0.5),
    P(-2, 0.3, 0, aoR),
    P(2, 0.33, arch - 12, aoR - 0.5),
    P(12, 0.4, arch - 2, aoR - 1),
    P(24, 0.56, arch, dR + 1.5),
    P(28, 0.8, arch - 6, dR + 1),
    P(25, 1.0, arch - 22, dR + 0.5),
    P(24, 1.06, -20, dR),
    P(21, 1.08, -70, dR),
    P(14, 1.04, an.aDomeL - 10, dR - 0.5),
    P(6, 0.98, bottom, dR - 1),
  ]);
  tube(vessels, [
    P(16, 0.08, -50, 13),
    P(26, 0.2, -34, 13),
    P(22, 0.42, -20, 12.5),
    P(20, 0.52, -14, 12),
  ]);
  const bif = P(20, 0.52, -14, 11);
  tube(vessels, [bif, P(32, 0.62, -10, 10), P(44, 0.72, -15, 9.5), P(54, 0.74, -24, 9)]);
  tube(vessels, [
    bif,
    P(8, 0.6, -20, 10.5),
    P(-10, 0.62, -24, 10),
    P(-26, 0.55, -28, 9.5),
    P(-40, 0.5, -31, 9),
  ]);
  // Superior vena cava, brachiocephalic veins, arch branches, azygos, inferior vena cava.
  tube(vessels, [P(-27, 0.3, an.aNotch - 8, 9.5), P(-27, 0.36, 0, 10), P(-22, 0.42, -40, 10.5)]);
  tube(vessels, [
    P(50, 0.1, an.aNotch + 6, 6.5),
    P(20, 0.1, an.aNotch - 4, 6.5),
    P(-22, 0.24, an.aNotch - 8, 7.5),
  ]);
  tube(vessels, [P(-46, 0.22, top, 7), P(-30, 0.28, an.aNotch - 4, 8)]);
  tube(vessels, [P(6, 0.42, arch, 6.5), P(-6, 0.4, arch + 22, 6.5), P(-16, 0.38, top, 6)]);
  tube(vessels, [P(14, 0.5, arch + 2, 4.5), P(17, 0.48, arch + 25, 4.5), P(18, 0.46, top, 4.5)]);
  tube(vessels, [P(23, 0.66, arch, 5.5), P(30, 0.74, arch + 25, 5.5), P(44, 0.68, top, 5.5)]);
  tube(vessels, [
    P(-6, 1.02, -100, 4),
    P(-8, 1.0, -10, 4.5),
    P(-16, 0.85, 4, 4.5),
    P(-26, 0.45, 2, 4.5),
  ]);
  tube(vessels, [P(-8, 0.72, bottom, 11), P(-10, 0.62, an.aDomeR - 10, 12), P(-8, 0.5, -75, 12)]);
  // Trachea and main bronchi (wall and lumen), oesophagus.
  const tr = rng.range(10, 12);
  tube(airways, [
    P(0, 0.58, top, tr, tr - 2.3),
    P(-4, 0.6, arch, tr, tr - 2.3),
    P(-2, 0.64, 8, tr, tr - 2.3),
    P(0, 0.65, 0, tr - 1, tr - 3.3),
  ]);
  const rb = P(-30, 0.62, -26, 6, 4.5), lb = P(38, 0.66, -36, 5.5, 4);
  tube(airways, [P(0, 0.65, 0, 7.5, 5.8), P(-17, 0.66, -12, 7, 5.4), rb]);
  tube(airways, [P(0, 0.65, 0, 6.5, 5), P(18, 0.68, -14, 6.3, 4.8), P(30, 0.68, -27, 6, 4.5), lb]);
  tube(eso, [
    P(3, 0.86, top, 7.5),
    P(5, 0.9, 0, 7.5),
    P(10, 0.9, -70, 7.5),
    P(22, 0.8, an.aDomeL + 5, 8),
    P(36, 0.6, an.aDomeL - 20, 9),
  ]);
  const L = rng.range(1, 1.2), rot = -rng.range(0.5, 0.75);
  const heartTop = rng.range(-32, -18), heartBottom = an.aCentral - rng.range(6, 16);
  const H = (heartTop - heartBottom) / 2, a = (heartTop + heartBottom) / 2;
  const m = mediastinumAt(an, a);
  // Size the heart so that its AP extent fills ~95% of the sternum–spine distance.
  const ext = Math.hypot(L * Math.sin(rot), 0.75 * Math.cos(rot));
  const k = (0.47 * m.M) / ext;
  const heart: Heart = {
    x: m.x + rng.range(14, 26),
    y: m.yS + 0.5 * m.M,
    a,
    L: L * k,
    S: 0.75 * k,
    H,
    rot,
    phase: rng.range(0, 2 * Math.PI),
  };
  const pt = (x: number, f: number, a: number) => P(x, f, a, 0).slice(0, 3);
  // Lymph node stations: right/left paratracheal, pretracheal, aortopulmonary window,
  // subcarinal, paraoesophageal, both hila.
  const nodes: number[] = [];
  const stations = [[-14, 0.5, 25], [12, 0.5, 28], [2, 0.42, 12], [22, 0.55, 8], [4, 0.8, -18]];
  stations.push([10, 0.95, -50], [-40, 0.52, -36], [46, 0.6, -40]);
  for (const [x, f, a] of stations) {
    if (rng.next() < 0.35) continue;
    nodes.push(...pt(x + rng.range(-3, 3), f, a + rng.range(-5, 5)), rng.range(2.5, 6));
  }
  return {
    vessels: buildTubeSet(vessels),
    airways: buildTubeSet(airways),
    esophagus: buildTubeSet(eso),
    heart,
    hilum: { right: pt(-34, 0.6, -24), left: pt(44, 0.68, -28) },
    bronchusEnds: { right: rb.slice(0, 3), left: lb.slice(0, 3) },
    veinRoots: [pt(-26, 0.74, -40), pt(-24, 0.84, -62), pt(34, 0.76, -38), pt(32, 0.86, -60)],
    nodes,
  };
}

/** The heart's cross-section at height a (null outside it). */
export function heartSection(h: Heart, a: number) {
  const q = 1 - ((a - h.a) / h.H) ** 2;
  if (q <= 0) return null;
  const s = Math.sqrt(q), down = (h.a - a) / h.H;
  return {
    cx: h.x + 8 * down,
    cy: h.y - 6 * down,
    rx: h.L * Math.pow(s, 0.8),
    ry: h.S * s,
    rot: h.rot,
  };
}

const N_HULL = 120;
const hullR = new Float64Array(N_HULL);
const hullTmp = new Float64Array(N_HULL);
const discs: number[] = [];

/**
 * Paints the mediastinal fat hull (around the heart, the great vessels, airways, oesophagus, the
 * sternum–spine band and the vertebral body) over lung and cavity pixels.
 */
export function paintHull(cv: Canvas, an: Anatomy, md: Mediastinum, a: number, z: number): void {
  const m = mediastinumAt(an, a), { yv, rv } = spineAt(an, a);
  const cx = m.x, cy = m.yS + 0.55 * m.M;
  discs.length = 0;
  tubeDiscs(md.vessels, z, discs);
  tubeDiscs(md.airways, z, discs);
  tubeDiscs(md.esophagus, z, discs);
  const band = a > md.heart.a ? 7 : 10;
  const hs = heartSection(md.heart, a);
  for (let i = 0; i < N_HULL; i++) {
    const t = (2 * Math.PI * i) / N_HULL, dx = Math.cos(t), dy = Math.sin(t);
    let r = rayEllipseFar(cx, cy, dx, dy, cx, (m.yS + m.yV) / 2, band, m.M / 2 + 4, 0);
    r = Math.max(r, rayEllipseFar(cx, cy, dx, dy, 0, yv, rv + 2, rv + 2, 0));
    if (hs) {
      const rx = 1.14 * hs.rx + 3, ry = 1.14 * hs.ry + 3;
      r = Math.max(r, rayEllipseFar(cx, cy, dx, dy, hs.cx, hs.cy, rx, ry, hs.rot));
    }
    for (let k = 0; k < discs.length; k += 3) {
      const rho = discs[k + 2] + 3.5;
      r = Math.max(r, rayEllipseFar(cx, cy, dx, dy, discs[k], discs[k + 1], rho, rho, 0));
    }
    hullR[i] = Math.max(r, 4);
  }
  for (let pass = 0; pass < 3; pass++) {
    for (let i = 0; i < N_HULL; i++) {
      const l = hullR[(i + N_HULL - 1) % N_HULL], n = hullR[(i + 1) % N_HULL];
      hullTmp[i] = Math.max(hullR[i], 0.5 * (l + n));
    }
    hullR.set(hullTmp);
  }
  const poly = new Float64Array(2 * N_HULL);
  for (let i = 0; i < N_HULL; i++) {
    const t = (2 * Math.PI * i) / N_HULL;
    poly[2 * i] = cx + hullR[i] * Math.cos(t);
    poly[2 * i + 1] = cy + hullR[i] * Math.sin(t);
  }
  fillPolygon(cv, poly, -90, R.mediastinum, bits(R.lungR, R.lungL, R.cavity));
}

/** The heart's outline: its ellipse, with a bulging right atrium and a rounded apex. */
function heartPolygon(hs: NonNullable<ReturnType<typeof heartSection>>, h: Heart, a: number) {
  const c = Math.cos(hs.rot), s = Math.sin(hs.rot), n = 72, out = new Float64Array(2 * n);
  const low = Math.min(1, Math.max(0, (h.a - a) / h.H + 0.5));
  for (let i = 0; i < n; i++) {
    const t = (2 * Math.PI * i) / n;
    // In the ellipse frame: +u towards the apex (anterior left), -u towards the right atrium.
    const k = 1 + 0.07 * Math.cos(2 * t + h.phase) + 0.05 * Math.cos(3 * t + 2 * h.phase) +
      0.12 * low * Math.exp(-4 * (1 + Math.cos(t - 0.4)));
    const u = hs.rx * k * Math.cos(t), v = hs.ry * k * Math.sin(t);
    out[2 * i] = hs.cx + u * c - v * s;
    out[2 * i + 1] = hs.cy + u * s + v * c;
  }
  return out;
}

/** Heart, great vessels, thyroid, oesophagus, trachea and main bronchi at height a. */
export function paintMediastinum(
  cv: Canvas,
  an: Anatomy,
  md: Mediastinum,
  a: number,
  z: number,
): void {
  const hs = heartSection(md.heart, a);
  const notAbdomen = bits(R.mediastinum, R.lungR, R.lungL, R.cavity);
  if (hs) {
    fillPolygon(cv, heartPolygon(hs, md.heart, a), 42, R.heart, notAbdomen);
    const pool = ellipsePolygon(hs.cx + 4, hs.cy + 3, hs.rx * 0.62, hs.ry * 0.6, hs.rot);
    fillPolygon(cv, pool, 50, R.heart, bits(R.heart));
  }
  for (let k = 0; k < md.nodes.length; k += 4) {
    const dz = z - md.nodes[k + 2], q = md.nodes[k + 3] ** 2 - dz * dz;
    if (q <= 0) continue;
    const r = Math.sqrt(q), e = ellipsePolygon(md.nodes[k], md.nodes[k + 1], r, 0.75 * r, 0.5, 20);
    fillPolygon(cv, e, 34, R.mediastinum, bits(R.mediastinum));
  }
  paintTubes(cv, md.vessels, z, { hu: 46, allow: ANY, to: R.mediastinum });
  if (a > an.aNotch - 4) {
    const m = mediastinumAt(an, a), ty = m.yS + 0.5 * m.M;
    const s = Math.min(1, (a - an.aNotch + 4) / 20);
    for (const side of [-1, 1]) {
      const e = ellipsePolygon(m.x + side * 17, ty, 8 * s + 1, 12 * s + 1, side * 0.5);
      fillPolygon(cv, e, 95, R.mediastinum, bits(R.mediastinum, R.cavity, R.muscle));
    }
  }
  paintTubes(cv, md.esophagus, z, { hu: 38, allow: ANY, to: R.mediastinum });
  paintTubes(cv, md.airways, z, { hu: 35, innerHu: -1000, allow: ANY, to: R.mediastinum });
}
