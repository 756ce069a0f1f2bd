/**
 * @module Seeded placement of spherical, nodule-like lesions, each fully inside one lung (with a
 * margin of lung around it) and apart from the others; and their cross-section on a slice.
 */

import { type Anatomy, type Ellipse, insideEllipse, sliceAnatomy } from "./anatomy.ts";
import { columnX, type Geometry, rowY, sliceZ, zToT } from "./geometry.ts";
import type { Rng } from "./rng.ts";

/** One planned lesion; its centre sits exactly on a voxel centre. */
export interface LesionSpec {
  /** 1-based. */
  id: number;
  lung: "right" | "left";
  column: number;
  row: number;
  slice: number;
  /** Centre in patient coordinates, mm. */
  x: number;
  y: number;
  z: number;
  radiusMm: number;
  /** The lesion's intended (noise-free) Hounsfield value. */
  hu: number;
}

export const MIN_RADIUS_MM = 3;
export const MAX_RADIUS_MM = 15;
const ATTEMPTS = 4000;

/** Places `count` lesions; throws when the lungs of this grid are too small to hold them. */
export function placeLesions(rng: Rng, a: Anatomy, g: Geometry, count: number): LesionSpec[] {
  const lesions: LesionSpec[] = [];
  // Lung all around: every voxel touching a lesion voxel (26-neighbourhood) lies inside the lung.
  const margin = Math.max(1, Math.hypot(g.pixelSpacing, g.pixelSpacing, g.sliceSpacing));
  let maxRadius = MAX_RADIUS_MM;
  for (let attempt = 0; lesions.length < count; attempt++) {
    if (attempt >= ATTEMPTS) {
      throw new RangeError(
        `cannot fit ${count} lesions of ≥ ${MIN_RADIUS_MM} mm in the lungs of a ` +
          `${g.rows}×${g.cols}×${g.slices} series: use more slices or fewer lesions`,
      );
    }
    if (attempt > 0 && attempt % 100 === 0) maxRadius = Math.max(MIN_RADIUS_MM, maxRadius * 0.85);
    const radiusMm = round2(MIN_RADIUS_MM + (maxRadius - MIN_RADIUS_MM) * rng.next() ** 2);
    const lung = rng.next() < 0.5 ? "right" : "left";
    const slice = rng.int(0, g.slices - 1);
    const ellipse = lungAt(a, g, sliceZ(g, slice), lung);
    if (!ellipse) continue;
    const angle = rng.range(0, 2 * Math.PI), rho = Math.sqrt(rng.next());
    const column = Math.round(
      (ellipse.cx + rho * ellipse.rx * Math.cos(angle) - g.origin[0]) / g.pixelSpacing,
    );
    const row = Math.round(
      (ellipse.cy + rho * ellipse.ry * Math.sin(angle) - g.origin[1]) / g.pixelSpacing,
    );
    const x = columnX(g, column), y = rowY(g, row), z = sliceZ(g, slice);
    if (!sphereFits(a, g, lung, x, y, z, radiusMm + margin)) continue;
    const apart = lesions.every((o) =>
      Math.hypot(o.x - x, o.y - y, o.z - z) > o.radiusMm + radiusMm + 3
    );
    if (!apart) continue;
    const hu = rng.int(30, 60);
    lesions.push({ id: lesions.length + 1, lung, column, row, slice, x, y, z, radiusMm, hu });
  }
  return lesions;
}

/** The lesion's cross-section at patient z, or null when the slice misses it. */
export function lesionCrossSection(l: LesionSpec, z: number): Ellipse | null {
  const dz = z - l.z;
  const r2 = l.radiusMm * l.radiusMm - dz * dz;
  if (r2 < 0) return null;
  const r = Math.sqrt(r2);
  return { cx: l.x, cy: l.y, rx: r, ry: r, hu: l.hu };
}

function lungAt(a: Anatomy, g: Geometry, z: number, lung: "right" | "left"): Ellipse | null {
  const s = sliceAnatomy(a, zToT(g, z));
  return lung === "right" ? s.rightLung : s.leftLung;
}

/** True when a sphere of `radius` fits in the lung at every z it spans (slices and in between). */
function sphereFits(
  a: Anatomy,
  g: Geometry,
  lung: "right" | "left",
  x: number,
  y: number,
  z: number,
  radius: number,
): boolean {
  const steps = Math.max(8, Math.ceil((2 * radius) / Math.min(0.5, g.sliceSpacing / 2)));
  for (let i = 0; i <= steps; i++) {
    const dz = -radius + (2 * radius * i) / steps;
    const e = lungAt(a, g, z + dz, lung);
    if (!e) return false;
    const rho = Math.sqrt(Math.max(0, radius * radius - dz * dz));
    for (let k = 0; k < 24; k++) {
      const phi = (k * Math.PI) / 12;
      if (!insideEllipse(e, x + rho * Math.cos(phi), y + rho * Math.sin(phi))) return false;
    }
  }
  return true;
}

const round2 = (v: number): number => Math.round(v * 100) / 100;
