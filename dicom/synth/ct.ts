/**
 * @module Deterministic, seeded synthetic chest CT studies of synthetic patients: the public API of
 * `dicom/synth`. `planStudy` fixes everything but the pixels (cheap); `streamStudy` yields the
 * DICOM Part 10 instances one at a time (one slice in memory) and then gives the ground truth;
 * `generateStudy` collects a whole study in memory. Same options → identical bytes.
 */

import { type Anatomy, createAnatomy } from "./anatomy.ts";
import { encodeSlice, seriesAttributes } from "./encode.ts";
import { createGeometry, type Geometry } from "./geometry.ts";
import {
  createPatient,
  createStudyInfo,
  sopInstanceUid,
  type SynthPatient,
  type SynthStudyInfo,
} from "./identity.ts";
import { type LesionSpec, placeLesions } from "./lesions.ts";
import { createNoiseTable, measureLesions, renderSlice, RESCALE_INTERCEPT } from "./render.ts";
import { createRng } from "./rng.ts";
import { createTruthAccumulator, type GroundTruth } from "./truth.ts";

export type { GroundTruth, LesionTruth } from "./truth.ts";
export type { SynthPatient, SynthStudyInfo } from "./identity.ts";

/** Options of one synthetic study. */
export interface SynthOptions {
  /** Any integer; it decides the patient, the study and every pixel. */
  seed: number;
  /** Number of axial slices (default 100). */
  slices?: number;
  /** Image rows (default 512). */
  rows?: number;
  /** Image columns (default 512). */
  cols?: number;
  /** Number of lesions, 0–5 (default: seeded 1–3). */
  lesions?: number;
  /** Slice spacing and thickness, mm (default 2.5). */
  sliceSpacing?: number;
  /** In-plane pixel spacing, mm (default 0.7 × 512 / max(rows, cols): a ~358 mm field of view). */
  pixelSpacing?: number;
  /** Standard deviation of the image noise, HU (default 15). */
  noiseSigma?: number;
}

/** Everything about a study except its pixels. */
export interface StudyPlan {
  seed: number;
  geometry: Geometry;
  anatomy: Anatomy;
  patient: SynthPatient;
  study: SynthStudyInfo;
  lesions: LesionSpec[];
  /** Index i holds the SOPInstanceUID of slice i (InstanceNumber i + 1). */
  sopInstanceUids: string[];
  rescaleIntercept: number;
  noise: Int16Array;
}

/** One generated instance. */
export interface SynthInstance {
  /** 0-based slice index. */
  index: number;
  instanceNumber: number;
  sopInstanceUid: string;
  /** The DICOM Part 10 file. */
  bytes: Uint8Array;
}

/** A study being generated: iterate `instances` once, then read `truth()`. */
export interface StudyStream {
  plan: StudyPlan;
  instances: Generator<SynthInstance, void, undefined>;
  /** The ground truth; throws until every instance has been generated. */
  truth(): GroundTruth;
}

/** A whole study in memory. */
export interface SynthStudy {
  plan: StudyPlan;
  patient: SynthPatient;
  study: SynthStudyInfo;
  instances: Uint8Array[];
  truth: GroundTruth;
}

/** Fixes identities, geometry and lesion positions for `opts`; validates the options. */
export function planStudy(opts: SynthOptions): StudyPlan {
  const seed = opts.seed;
  const slices = opts.slices ?? 100, rows = opts.rows ?? 512, cols = opts.cols ?? 512;
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be an integer: ${seed}`);
  checkInteger("slices", slices, 5000);
  checkInteger("rows", rows, 4096);
  checkInteger("cols", cols, 4096);
  const rng = createRng(`synth:${seed}:plan`);
  const lesionCount = opts.lesions ?? rng.int(1, 3);
  if (!Number.isInteger(lesionCount) || lesionCount < 0 || lesionCount > 5) {
    throw new RangeError(`lesions must be an integer in 0..5: ${lesionCount}`);
  }
  const sliceSpacing = opts.sliceSpacing ?? 2.5;
  const pixelSpacing = opts.pixelSpacing ??
    Math.round((0.7 * 512 * 1e4) / Math.max(rows, cols)) / 1e4;
  const noiseSigma = opts.noiseSigma ?? 15;
  if (!(sliceSpacing > 0 && pixelSpacing > 0 && noiseSigma >= 0)) {
    throw new RangeError("sliceSpacing and pixelSpacing must be > 0, noiseSigma >= 0");
  }
  const topZ = Math.round(rng.range(-40, 40) * 2) / 2 + ((slices - 1) * sliceSpacing) / 2;
  const geometry = createGeometry(rows, cols, slices, pixelSpacing, sliceSpacing, topZ);
  const anatomy = createAnatomy(rng);
  const shape =
    `${rows}x${cols}x${slices}:${sliceSpacing}:${pixelSpacing}:${lesionCount}:${noiseSigma}`;
  const study = createStudyInfo(seed, shape, sliceSpacing);
  return {
    seed,
    geometry,
    anatomy,
    patient: createPatient(seed, study.studyDate),
    study,
    lesions: placeLesions(rng, anatomy, geometry, lesionCount),
    sopInstanceUids: Array.from({ length: slices }, (_, i) => sopInstanceUid(seed, shape, i)),
    rescaleIntercept: RESCALE_INTERCEPT,
    noise: createNoiseTable(seed, noiseSigma),
  };
}

function checkInteger(name: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new RangeError(`${name} must be an integer in 1..${max}: ${value}`);
  }
}

/** Streams a study slice by slice (only one slice's pixels in memory at a time). */
export function streamStudy(opts: SynthOptions | StudyPlan): StudyStream {
  const plan = "geometry" in opts ? opts : planStudy(opts);
  const truth = createTruthAccumulator(plan);
  function* instances(): Generator<SynthInstance, void, undefined> {
    const shared = seriesAttributes(plan);
    const pixels = new Int16Array(plan.geometry.rows * plan.geometry.cols);
    for (let index = 0; index < plan.geometry.slices; index++) {
      renderSlice(plan, index, pixels);
      truth.add(index, measureLesions(plan, index, pixels));
      const bytes = encodeSlice(plan, shared, index, pixels);
      yield {
        index,
        instanceNumber: index + 1,
        sopInstanceUid: plan.sopInstanceUids[index],
        bytes,
      };
    }
  }
  return { plan, instances: instances(), truth: () => truth.finish() };
}

/** Generates a whole study in memory (100 slices of 512×512 ≈ 52 MB). */
export function generateStudy(opts: SynthOptions): SynthStudy {
  const stream = streamStudy(opts);
  const instances = Array.from(stream.instances, (i) => i.bytes);
  const { plan } = stream;
  return { plan, patient: plan.patient, study: plan.study, instances, truth: stream.truth() };
}
