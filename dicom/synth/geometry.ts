/**
 * @module The voxel grid of a synthetic axial CT series and its mapping to patient coordinates
 * (LPS, mm): columns run along +x (patient left), rows along +y (posterior), and slices step down
 * along -z (head-first supine, scanned from the lung apices towards the abdomen).
 */

import type { Ellipse } from "./anatomy.ts";

/** The voxel grid of a series. */
export interface Geometry {
  rows: number;
  cols: number;
  slices: number;
  /** In-plane spacing, mm (square pixels). */
  pixelSpacing: number;
  /** Distance between slice centres, mm (also the slice thickness). */
  sliceSpacing: number;
  /** ImagePositionPatient of slice 0: the centre of its top-left voxel. */
  origin: readonly [number, number, number];
}

/** A grid centred on the isocentre in-plane whose first (top, superior) slice sits at `topZ`. */
export function createGeometry(
  rows: number,
  cols: number,
  slices: number,
  pixelSpacing: number,
  sliceSpacing: number,
  topZ: number,
): Geometry {
  const origin = [
    -((cols - 1) / 2) * pixelSpacing,
    -((rows - 1) / 2) * pixelSpacing,
    topZ,
  ] as const;
  return { rows, cols, slices, pixelSpacing, sliceSpacing, origin };
}

/** Patient x (mm) of a column centre. */
export const columnX = (g: Geometry, column: number): number =>
  g.origin[0] + column * g.pixelSpacing;
/** Patient y (mm) of a row centre. */
export const rowY = (g: Geometry, row: number): number => g.origin[1] + row * g.pixelSpacing;
/** Patient z (mm) of a slice centre. */
export const sliceZ = (g: Geometry, slice: number): number => g.origin[2] - slice * g.sliceSpacing;
/** ImagePositionPatient of a slice. */
export const slicePosition = (g: Geometry, slice: number): [number, number, number] => [
  g.origin[0],
  g.origin[1],
  sliceZ(g, slice),
];

/** Position along the scan in [0, 1] (0 = top slice) of a patient z, continuous. */
export function zToT(g: Geometry, z: number): number {
  return g.slices <= 1 ? 0.5 : (g.origin[2] - z) / ((g.slices - 1) * g.sliceSpacing);
}

/**
 * The columns [first, last] of `row` whose centres lie inside `e` (boundary included), clipped to
 * the image; `null` when none. Rendering and lesion measurement share it, so they agree exactly.
 */
export function ellipseRowSpan(g: Geometry, e: Ellipse, row: number): [number, number] | null {
  const dy = (rowY(g, row) - e.cy) / e.ry;
  const q = 1 - dy * dy;
  if (q < 0) return null;
  const half = e.rx * Math.sqrt(q);
  const first = Math.max(0, Math.ceil((e.cx - half - g.origin[0]) / g.pixelSpacing - 1e-9));
  const last = Math.min(
    g.cols - 1,
    Math.floor((e.cx + half - g.origin[0]) / g.pixelSpacing + 1e-9),
  );
  return first <= last ? [first, last] : null;
}

/** The rows [first, last] an ellipse can touch, clipped to the image; `null` when none. */
export function ellipseRows(g: Geometry, e: Ellipse): [number, number] | null {
  const first = Math.max(0, Math.ceil((e.cy - e.ry - g.origin[1]) / g.pixelSpacing - 1e-9));
  const last = Math.min(
    g.rows - 1,
    Math.floor((e.cy + e.ry - g.origin[1]) / g.pixelSpacing + 1e-9),
  );
  return first <= last ? [first, last] : null;
}
