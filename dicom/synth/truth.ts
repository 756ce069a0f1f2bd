/**
 * @module The ground truth of a synthetic study (written as `truth.json` beside its instances):
 * identities, grid geometry, and per lesion its centre, size, voxel-counted volume, bounding box
 * and mean HU, accumulated slice by slice while the study is generated.
 */

import type { Geometry } from "./geometry.ts";
import type { SynthPatient, SynthStudyInfo } from "./identity.ts";
import type { LesionSpec } from "./lesions.ts";
import type { LesionSliceStats } from "./render.ts";

/** A voxel index: column (x), row (y), slice (0-based, instance number − 1). */
export interface VoxelIndex {
  column: number;
  row: number;
  slice: number;
}

/** The truth about one lesion. */
export interface LesionTruth {
  id: number;
  lung: "right" | "left";
  /** Centre in patient coordinates (LPS), mm. */
  centerMm: { x: number; y: number; z: number };
  /** Centre voxel (the centre lies exactly on a voxel centre). */
  centerVoxel: VoxelIndex;
  /** SOPInstanceUID of the slice through the centre. */
  centerSopInstanceUid: string;
  centerInstanceNumber: number;
  radiusMm: number;
  /** 4/3·π·r³. */
  volumeMm3: number;
  /** Voxels whose centre lies inside the sphere. */
  voxelCount: number;
  /** voxelCount × voxel volume. */
  voxelVolumeMm3: number;
  /** Inclusive bounding box of the lesion's voxels. */
  boundingBox: { min: VoxelIndex; max: VoxelIndex };
  /** The noise-free HU the lesion was drawn with. */
  designHu: number;
  /** Mean HU of the lesion's voxels in the written pixels (noise included). */
  meanHu: number;
}

/** Everything known about a generated study. */
export interface GroundTruth {
  generator: "dicom/synth";
  version: 1;
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
    /** Patient-z step from one slice to the next (negative: head to feet). */
    zStepMm: number;
    rescaleIntercept: number;
    rescaleSlope: number;
  };
  sopInstanceUids: string[];
  lesions: LesionTruth[];
}

/** What the truth needs of a study plan. */
export interface TruthInput {
  seed: number;
  patient: SynthPatient;
  study: SynthStudyInfo;
  geometry: Geometry;
  lesions: readonly LesionSpec[];
  sopInstanceUids: readonly string[];
  rescaleIntercept: number;
}

const r3 = (v: number): number => Math.round(v * 1000) / 1000;

/** Collects per-slice lesion statistics; `finish()` once every slice was added. */
export function createTruthAccumulator(input: TruthInput) {
  const g = input.geometry;
  const acc = new Map(input.lesions.map((l) => [l.id, {
    voxels: 0,
    huSum: 0,
    min: { column: Infinity, row: Infinity, slice: Infinity },
    max: { column: -Infinity, row: -Infinity, slice: -Infinity },
  }]));
  const seen = new Set<number>();
  return {
    add(slice: number, stats: readonly LesionSliceStats[]): void {
      seen.add(slice);
      for (const s of stats) {
        const a = acc.get(s.id)!;
        a.voxels += s.voxels;
        a.huSum += s.huSum;
        a.min = {
          column: Math.min(a.min.column, s.minColumn),
          row: Math.min(a.min.row, s.minRow),
          slice: Math.min(a.min.slice, slice),
        };
        a.max = {
          column: Math.max(a.max.column, s.maxColumn),
          row: Math.max(a.max.row, s.maxRow),
          slice: Math.max(a.max.slice, slice),
        };
      }
    },
    finish(): GroundTruth {
      if (seen.size !== g.slices) {
        throw new Error(`truth is incomplete: ${seen.size} of ${g.slices} slices generated`);
      }
      const voxelMm3 = g.pixelSpacing * g.pixelSpacing * g.sliceSpacing;
      const lesions = input.lesions.map((l): LesionTruth => {
        const a = acc.get(l.id)!;
        return {
          id: l.id,
          lung: l.lung,
          centerMm: { x: r3(l.x), y: r3(l.y), z: r3(l.z) },
          centerVoxel: { column: l.column, row: l.row, slice: l.slice },
          centerSopInstanceUid: input.sopInstanceUids[l.slice],
          centerInstanceNumber: l.slice + 1,
          radiusMm: l.radiusMm,
          volumeMm3: r3((4 / 3) * Math.PI * l.radiusMm ** 3),
          voxelCount: a.voxels,
          voxelVolumeMm3: r3(a.voxels * voxelMm3),
          boundingBox: { min: a.min, max: a.max },
          designHu: l.hu,
          meanHu: r3(a.voxels ? a.huSum / a.voxels : NaN),
        };
      });
      return {
        generator: "dicom/synth",
        version: 1,
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
          rescaleIntercept: input.rescaleIntercept,
          rescaleSlope: 1,
        },
        sopInstanceUids: [...input.sopInstanceUids],
        lesions,
      };
    },
  };
}
