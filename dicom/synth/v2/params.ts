/**
 * @module Options of a v2 study, their validation, and the seeded scanner parameters (slice
 * thickness, matrix, pixel spacing, noise, blur) and the grid they give: axial slices from above
 * the lung apices to below the diaphragm, the body centred in a field of view it fits.
 */

import type { Geometry } from "../geometry.ts";
import { createRng } from "../rng.ts";
import { type Anatomy, bodyAt } from "./anatomy.ts";
import type { NoduleType } from "./nodules.ts";

/** Options of one v2 study; everything left out is seeded from `seed`. */
export interface SynthV2Options {
  /** Any integer; it decides the patient, the scanner, the lesions and every pixel. */
  seed: number;
  /** Slice thickness = spacing, mm (seeded 0.625–5). */
  thicknessMm?: number;
  /** In-plane pixel spacing, mm (seeded: field of view / matrix, about 0.6–1.5). */
  pixelSpacingMm?: number;
  /** Rows = columns (seeded 256, 384 or 512). */
  matrix?: number;
  /** Standard deviation of the image noise, HU (seeded 10–60, higher for thin slices). */
  noiseHu?: number;
  /** Reconstruction blur (Gaussian PSF σ), mm (seeded 0.4–1.0). */
  blurMm?: number;
  /** Number of nodules, 0–8 (seeded; some scans have none). */
  nodules?: number;
  /** A mass: true for a seeded 35–60 mm one, or its diameter in mm (> 30). */
  mass?: boolean | number;
  /** Equivalent diameter range of the nodules, mm (within 3–30; default [3, 30]). */
  noduleDiameterMm?: [number, number];
  /** Nodule types to draw from (default all three). */
  noduleTypes?: NoduleType[];
}

/** The resolved scanner settings. */
export interface Scanner {
  thicknessMm: number;
  pixelSpacingMm: number;
  matrix: number;
  noiseHu: number;
  /** σ of the noise correlation filter, mm. */
  noiseCorrelationMm: number;
  blurMm: number;
  /** Fine planes averaged per slice (partial volume along z). */
  subSamples: number;
  kernel: "LUNG" | "STANDARD";
}

/** Resolved lesion options. */
export interface LesionOptions {
  nodules: number;
  mass: number;
  diameter: [number, number];
  types: NoduleType[];
}

const TYPES: NoduleType[] = ["solid", "part-solid", "ground-glass"];
const THICKNESS = [0.625, 1, 1.25, 1.25, 1.5, 2, 2.5, 2.5, 2.5, 3, 5, 5];
const MATRIX = [256, 384, 512, 512, 512];
const COUNTS = [0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 4, 4, 5, 6, 7, 8];

function check(name: string, v: number | undefined, lo: number, hi: number, int = false): void {
  if (v === undefined) return;
  if (!Number.isFinite(v) || v < lo || v > hi || (int && !Number.isInteger(v))) {
    throw new RangeError(
      `${name} must be ${int ? "an integer" : "a number"} in ${lo}..${hi}: ${v}`,
    );
  }
}

/** Validates the options and fixes the lesion settings. */
export function resolveLesions(o: SynthV2Options): LesionOptions {
  if (!Number.isSafeInteger(o.seed)) throw new RangeError(`seed must be an integer: ${o.seed}`);
  check("thicknessMm", o.thicknessMm, 0.5, 10);
  check("pixelSpacingMm", o.pixelSpacingMm, 0.2, 5);
  check("matrix", o.matrix, 32, 1024, true);
  check("noiseHu", o.noiseHu, 0, 300);
  check("blurMm", o.blurMm, 0, 5);
  check("nodules", o.nodules, 0, 8, true);
  const rng = createRng(`synth:v2:${o.seed}:lesions`);
  const nodules = o.nodules ?? rng.pick(COUNTS);
  const [lo, hi] = o.noduleDiameterMm ?? [3, 30];
  if (!(lo >= 3 && hi <= 30 && lo <= hi)) {
    throw new RangeError(`noduleDiameterMm must be [min, max] within 3..30: ${lo}, ${hi}`);
  }
  const types = o.noduleTypes ?? TYPES;
  if (types.length === 0 || types.some((t) => !TYPES.includes(t))) {
    throw new RangeError(`noduleTypes must be some of ${TYPES.join(", ")}: ${types.join(", ")}`);
  }
  let mass = 0;
  if (typeof o.mass === "number") {
    check("mass", o.mass, 30.5, 80);
    mass = o.mass;
  } else if (o.mass) mass = Math.round(rng.range(35, 60) * 10) / 10;
  return { nodules, mass, diameter: [lo, hi], types: [...types] };
}

/** The scanner settings of a study of patient `an`. */
export function resolveScanner(o: SynthV2Options, an: Anatomy): Scanner {
  const rng = createRng(`synth:v2:${o.seed}:scanner`);
  const thicknessMm = o.thicknessMm ?? rng.pick(THICKNESS);
  const seededMatrix = rng.pick(MATRIX);
  let width = 0;
  for (let a = an.aBottom; a <= an.aTop; a += 10) width = Math.max(width, bodyAt(an, a).W);
  const fov = Math.min(500, 2 * width * 1.05 + rng.range(20, 60));
  // A seeded 256 matrix that would need pixels over 1.5 mm to hold the body becomes 384.
  let matrix = o.matrix ?? (seededMatrix === 256 && fov / 256 > 1.5 ? 384 : seededMatrix);
  let pixelSpacingMm = o.pixelSpacingMm ?? Math.round((fov / matrix) * 1000) / 1000;
  if (o.pixelSpacingMm !== undefined && o.matrix === undefined) {
    matrix = Math.min(512, Math.max(256, Math.ceil(fov / o.pixelSpacingMm / 32) * 32));
    pixelSpacingMm = o.pixelSpacingMm;
  }
  const baseNoise = rng.range(9, 26) * Math.sqrt(2.5 / thicknessMm);
  const noiseHu = o.noiseHu ?? Math.round(Math.min(60, Math.max(10, baseNoise)) * 10) / 10;
  const blurMm = o.blurMm ?? Math.round(rng.range(0.4, 1.0) * 100) / 100;
  const subSamples = 2 * Math.ceil((thicknessMm / 1.25 - 1 - 1e-9) / 2) + 1;
  return {
    thicknessMm,
    pixelSpacingMm,
    matrix,
    noiseHu,
    noiseCorrelationMm: Math.round(rng.range(0.45, 0.8) * 100) / 100,
    blurMm,
    subSamples: Math.max(1, subSamples),
    kernel: blurMm < 0.6 ? "LUNG" : "STANDARD",
  };
}

/** The grid: centred on the body in-plane, from above the apices to below the domes. */
export function studyGeometry(an: Anatomy, sc: Scanner): Geometry {
  const n = sc.matrix, p = sc.pixelSpacingMm, b = bodyAt(an, 0);
  const cy = (an.yBack + (b.cy - b.Dant)) / 2;
  const slices = Math.floor((an.aTop - an.aBottom) / sc.thicknessMm) + 1;
  const r4 = (v: number) => Math.round(v * 1e4) / 1e4;
  return {
    rows: n,
    cols: n,
    slices,
    pixelSpacing: p,
    sliceSpacing: sc.thicknessMm,
    origin: [r4(-((n - 1) / 2) * p), r4(cy - ((n - 1) / 2) * p), r4(an.zCarina + an.aTop)],
  };
}
