/**
 * @module The ground truth of a v2 study (`truth.json`, version 2): identities, grid, scanner,
 * landmarks, and per nodule (and, separately, per mass) its type, shape, attachment, centre,
 * equivalent diameter, axial long and short axes (measured on the slice of largest extent),
 * analytic and voxel-counted volumes, lung, lobe, zone and mean HU — accumulated from the label
 * masks and the written pixels slice by slice.
 */

import type { Geometry } from "../geometry.ts";
import type { SynthPatient, SynthStudyInfo } from "../identity.ts";
import type { Lobe } from "./lungs.ts";
import type { NoduleShape, NoduleSpec, NoduleType } from "./nodules.ts";
import type { Scanner } from "./params.ts";
import type { VoxelIndex } from "../truth.ts";

export type { VoxelIndex };

/** The truth about one nodule or mass. */
export interface LesionTruthV2 {
  id: number;
  /** Its value in `nodules.nii.gz` (id; 100 + id for a mass). */
  label: number;
  type: NoduleType;
  shape: NoduleShape;
  attachment: "none" | "juxta-vascular" | "juxta-pleural";
  centerMm: { x: number; y: number; z: number };
  centerVoxel: VoxelIndex;
  centerSopInstanceUid: string;
  /** Equivalent diameter of the analytic volume, mm. */
  diameterMm: number;
  requestedDiameterMm: number;
  /** Longest axial diameter and the longest one perpendicular to it, on `axialSlice`. */
  longAxisMm: number;
  shortAxisMm: number;
  axialSlice: number;
  /** Inside the lungs, integrated on a fine grid. */
  volumeMm3: number;
  voxelCount: number;
  voxelVolumeMm3: number;
  lung: "right" | "left";
  lobe: Lobe;
  zone: "upper" | "middle" | "lower";
  /** Mean HU of the lesion's voxels in the written pixels (noise included). */
  meanHu: number;
  designHu: { solid?: number; groundGlass?: number };
  boundingBox: { min: VoxelIndex; max: VoxelIndex };
}

/** Everything known about a v2 study. */
export interface GroundTruthV2 {
  generator: "dicom/synth";
  version: 2;
  seed: number;
  patient: SynthPatient;
  study: SynthStudyInfo;
  geometry: {
    rows: number;
    cols: number;
    slices: number;
    pixelSpacingMm: number;
    sliceSpacingMm: number;
    sliceThicknessMm: number;
    imageOrientationPatient: number[];
    firstImagePositionPatient: number[];
    zStepMm: number;
    fieldOfViewMm: number;
    rescaleIntercept: number;
    rescaleSlope: number;
  };
  scanner: Scanner;
  landmarks: Record<string, number>;
  masks: {
    lungs: string;
    nodules: string;
    lungLabels: Record<string, string>;
    noduleLabels: string;
  };
  sopInstanceUids: string[];
  nodules: LesionTruthV2[];
  masses: LesionTruthV2[];
}

/** What is known of a lesion before the pixels exist. */
export interface LesionFacts {
  spec: NoduleSpec;
  lung: "right" | "left";
  lobe: Lobe;
  zone: "upper" | "middle" | "lower";
  volumeMm3: number;
}

export interface TruthInputV2 {
  seed: number;
  patient: SynthPatient;
  study: SynthStudyInfo;
  geometry: Geometry;
  scanner: Scanner;
  landmarks: Record<string, number>;
  sopInstanceUids: readonly string[];
  rescaleIntercept: number;
  lesions: readonly LesionFacts[];
}

const r3 = (v: number): number => Math.round(v * 1000) / 1000;

/** Collects per-slice lesion statistics; `finish()` once every slice was added. */
export function createTruthV2(input: TruthInputV2) {
  const g = input.geometry;
  const acc = new Map(input.lesions.map((l) => [labelOf(l.spec), {
    voxels: 0,
    huSum: 0,
    min: { column: Infinity, row: Infinity, slice: Infinity },
    max: { column: -Infinity, row: -Infinity, slice: -Infinity },
    best: { slice: -1, pixels: [] as number[] },
  }]));
  const seen = new Set<number>();
  return {
    /** Adds slice `k`: its lesion labels, stored pixels and per-lesion body pixels. */
    add(k: number, mask: Uint8Array, stored: Int16Array, body: Map<number, number[]>): void {
      seen.add(k);
      for (let p = 0; p < mask.length; p++) {
        const a = mask[p] ? acc.get(mask[p]) : undefined;
        if (!a) continue;
        a.voxels++;
        a.huSum += stored[p] + input.rescaleIntercept;
        const column = p % g.cols, row = (p - column) / g.cols;
        a.min = {
          column: Math.min(a.min.column, column),
          row: Math.min(a.min.row, row),
          slice: Math.min(a.min.slice, k),
        };
        a.max = {
          column: Math.max(a.max.column, column),
          row: Math.max(a.max.row, row),
          slice: Math.max(a.max.slice, k),
        };
      }
      for (const [label, pixels] of body) {
        const a = acc.get(label);
        if (a && pixels.length > a.best.pixels.length) a.best = { slice: k, pixels: [...pixels] };
      }
    },
    finish(): GroundTruthV2 {
      if (seen.size !== g.slices) {
        throw new Error(`truth is incomplete: ${seen.size} of ${g.slices} slices generated`);
      }
      const voxelMm3 = g.pixelSpacing * g.pixelSpacing * g.sliceSpacing;
      const one = (l: LesionFacts): LesionTruthV2 => {
        const s = l.spec, a = acc.get(labelOf(s))!;
        const column = clampIndex((s.c[0] - g.origin[0]) / g.pixelSpacing, g.cols);
        const row = clampIndex((s.c[1] - g.origin[1]) / g.pixelSpacing, g.rows);
        const slice = clampIndex((g.origin[2] - s.c[2]) / g.sliceSpacing, g.slices);
        const [longAxis, shortAxis] = axes(a.best.pixels, g);
        return {
          id: s.id,
          label: labelOf(s),
          type: s.type,
          shape: s.shape,
          attachment: s.attachment,
          centerMm: { x: r3(s.c[0]), y: r3(s.c[1]), z: r3(s.c[2]) },
          centerVoxel: { column, row, slice },
          centerSopInstanceUid: input.sopInstanceUids[slice],
          diameterMm: r3(Math.cbrt((6 * l.volumeMm3) / Math.PI)),
          requestedDiameterMm: s.diameter,
          longAxisMm: r3(longAxis),
          shortAxisMm: r3(shortAxis),
          axialSlice: a.best.slice,
          volumeMm3: r3(l.volumeMm3),
          voxelCount: a.voxels,
          voxelVolumeMm3: r3(a.voxels * voxelMm3),
          lung: l.lung,
          lobe: l.lobe,
          zone: l.zone,
          meanHu: r3(a.voxels ? a.huSum / a.voxels : NaN),
          designHu: {
            ...(s.type !== "ground-glass" ? { solid: r3(s.solidHu) } : {}),
            ...(s.type !== "solid" ? { groundGlass: r3(s.ggoHu) } : {}),
          },
          boundingBox: { min: a.min, max: a.max },
        };
      };
      return {
        generator: "dicom/synth",
        version: 2,
        seed: input.seed,
        patient: input.patient,
        study: input.study,
        geometry: {
          rows: g.rows,
          cols: g.cols,
          slices: g.slices,
          pixelSpacingMm: g.pixelSpacing,
          sliceSpacingMm: g.sliceSpacing,
          sliceThicknessMm: g.sliceSpacing,
          imageOrientationPatient: [1, 0, 0, 0, 1, 0],
          firstImagePositionPatient: [...g.origin],
          zStepMm: -g.sliceSpacing,
          fieldOfViewMm: r3(g.cols * g.pixelSpacing),
          rescaleIntercept: input.rescaleIntercept,
          rescaleSlope: 1,
        },
        scanner: input.scanner,
        landmarks: input.landmarks,
        masks: {
          lungs: "lungs.nii.gz",
          nodules: "nodules.nii.gz",
          lungLabels: { "1": "right lung", "2": "left lung" },
          noduleLabels: "nodule id; 100 + id for a mass",
        },
        sopInstanceUids: [...input.sopInstanceUids],
        nodules: input.lesions.filter((l) => l.spec.kind === "nodule").map(one),
        masses: input.lesions.filter((l) => l.spec.kind === "mass").map(one),
      };
    },
  };
}

/** The label of a lesion in the nodule mask. */
export const labelOf = (s: NoduleSpec): number => (s.kind === "mass" ? 100 + s.id : s.id);

const clampIndex = (v: number, n: number): number => Math.min(n - 1, Math.max(0, Math.round(v)));

/**
 * Long axis (largest distance between pixel centres, plus one pixel for the edges) and short axis
 * (extent perpendicular to it) of a set of pixels of one slice, mm.
 */
function axes(pixels: number[], g: Geometry): [number, number] {
  if (pixels.length === 0) return [0, 0];
  const set = new Set(pixels), p = g.pixelSpacing;
  const edge = pixels.filter((i) => {
    const c = i % g.cols;
    return !(set.has(i - 1) && c > 0 && set.has(i + 1) && set.has(i - g.cols) &&
      set.has(i + g.cols));
  });
  let best = 0, ux = 1, uy = 0;
  for (let a = 0; a < edge.length; a++) {
    const xa = edge[a] % g.cols, ya = Math.floor(edge[a] / g.cols);
    for (let b = a + 1; b < edge.length; b++) {
      const dx = (edge[b] % g.cols) - xa, dy = Math.floor(edge[b] / g.cols) - ya;
      const d = dx * dx + dy * dy;
      if (d > best) (best = d), (ux = dx), (uy = dy);
    }
  }
  const len = Math.sqrt(best) || 1;
  const vx = -uy / len, vy = ux / len;
  let lo = Infinity, hi = -Infinity;
  for (const i of edge) {
    const t = (i % g.cols) * vx + Math.floor(i / g.cols) * vy;
    lo = Math.min(lo, t);
    hi = Math.max(hi, t);
  }
  return [(Math.sqrt(best) + 1) * p, (hi - lo + 1) * p];
}
