/**
 * @module Rasterises one slice of the phantom into stored pixel values (HU + 1024, clamped to
 * 0..4095) with row spans and `fill` (no per-pixel objects), adds seeded Gaussian noise from a
 * lookup table, and measures the lesions on the finished pixels for the ground truth.
 */

import { type Anatomy, HU, sliceAnatomy } from "./anatomy.ts";
import { ellipseRows, ellipseRowSpan, type Geometry, sliceZ, zToT } from "./geometry.ts";
import { lesionCrossSection, type LesionSpec } from "./lesions.ts";
import { createRng, hash32 } from "./rng.ts";
import type { Ellipse } from "./anatomy.ts";

/** Stored value = HU - RESCALE_INTERCEPT (RescaleSlope 1). */
export const RESCALE_INTERCEPT = -1024;
const MAX_STORED = 4095;
const TABLE_SIZE = 1 << 16;

/** What rendering needs of a study plan. */
export interface RenderInput {
  seed: number;
  geometry: Geometry;
  anatomy: Anatomy;
  lesions: readonly LesionSpec[];
  /** Gaussian noise table (HU) from `createNoiseTable`. */
  noise: Int16Array;
}

/** Per-lesion voxel statistics of one slice. */
export interface LesionSliceStats {
  id: number;
  voxels: number;
  huSum: number;
  minColumn: number;
  maxColumn: number;
  minRow: number;
  maxRow: number;
}

/** 65,536 rounded N(0, sigma²) values, sampled by the per-pixel noise generator. */
export function createNoiseTable(seed: number, sigma: number): Int16Array {
  const rng = createRng(`synth:${seed}:noise-table`);
  const table = new Int16Array(TABLE_SIZE);
  for (let i = 0; i < TABLE_SIZE; i++) table[i] = Math.round(rng.normal() * sigma);
  return table;
}

/**
 * Renders slice `index` into `out` (rows × cols stored values, reused when given) and returns it.
 * Values are HU + 1024, so air (-1000 HU) is stored as ~24.
 */
export function renderSlice(input: RenderInput, index: number, out?: Int16Array): Int16Array {
  const g = input.geometry;
  const pixels = out ?? new Int16Array(g.rows * g.cols);
  pixels.fill(HU.air);
  for (const shape of sliceShapes(input, index)) paint(g, pixels, shape);
  addNoise(pixels, input.noise, hash32(`synth:${input.seed}:noise:${index}`));
  return pixels;
}

/** Shapes of a slice in paint order: the phantom, then the lesions crossing it. */
function sliceShapes(input: RenderInput, index: number): Ellipse[] {
  const z = sliceZ(input.geometry, index);
  const shapes = sliceAnatomy(input.anatomy, zToT(input.geometry, z)).shapes;
  for (const l of input.lesions) {
    const c = lesionCrossSection(l, z);
    if (c) shapes.push(c);
  }
  return shapes;
}

function paint(g: Geometry, pixels: Int16Array, e: Ellipse): void {
  const rows = ellipseRows(g, e);
  if (!rows) return;
  for (let row = rows[0]; row <= rows[1]; row++) {
    const span = ellipseRowSpan(g, e, row);
    if (span) pixels.fill(e.hu, row * g.cols + span[0], row * g.cols + span[1] + 1);
  }
}

/** Adds table noise with an xorshift32 stream and converts HU to stored values in place. */
function addNoise(pixels: Int16Array, table: Int16Array, seed: number): void {
  let s = seed | 0 || 0x9e3779b9;
  const offset = -RESCALE_INTERCEPT;
  for (let i = 0; i < pixels.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    const v = pixels[i] + offset + table[s >>> 16];
    pixels[i] = v < 0 ? 0 : v > MAX_STORED ? MAX_STORED : v;
  }
}

/** Counts each lesion's voxels on a rendered slice and sums their HU. */
export function measureLesions(
  input: RenderInput,
  index: number,
  pixels: Int16Array,
): LesionSliceStats[] {
  const g = input.geometry;
  const z = sliceZ(g, index);
  const stats: LesionSliceStats[] = [];
  for (const l of input.lesions) {
    const c = lesionCrossSection(l, z);
    const rows = c && ellipseRows(g, c);
    if (!c || !rows) continue;
    const s: LesionSliceStats = {
      id: l.id,
      voxels: 0,
      huSum: 0,
      minColumn: Infinity,
      maxColumn: -Infinity,
      minRow: Infinity,
      maxRow: -Infinity,
    };
    for (let row = rows[0]; row <= rows[1]; row++) {
      const span = ellipseRowSpan(g, c, row);
      if (!span) continue;
      for (let i = row * g.cols + span[0]; i <= row * g.cols + span[1]; i++) {
        s.huSum += pixels[i] + RESCALE_INTERCEPT;
      }
      s.voxels += span[1] - span[0] + 1;
      s.minColumn = Math.min(s.minColumn, span[0]);
      s.maxColumn = Math.max(s.maxColumn, span[1]);
      s.minRow = Math.min(s.minRow, row);
      s.maxRow = Math.max(s.maxRow, row);
    }
    if (s.voxels > 0) stats.push(s);
  }
  return stats;
}
