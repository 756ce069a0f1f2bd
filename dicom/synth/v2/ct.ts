/**
 * @module Realistic synthetic chest CT studies ("v2"): the public API of `dicom/synth/v2`. The
 * patient is a 3D anatomical model (body wall, ribs, spine, mediastinum and heart, lungs with
 * lobes, fissures, vessel and bronchial trees, diaphragm and upper abdomen) with seeded nodules
 * and an optional mass; each slice averages fine planes over its thickness, gets reconstruction
 * blur and correlated noise, and is written as a DICOM CT image with v1's encoder. The truth
 * (`truth.json`, version 2) and two label masks (NIfTI) come after the last instance.
 * `planStudyV2` fixes everything but the pixels; `streamStudyV2` yields the instances one at a
 * time; `generateStudyV2` collects a whole study. Same options → identical bytes.
 */

import { encodeSlice, seriesAttributes } from "../encode.ts";
import { type Geometry, sliceZ } from "../geometry.ts";
import {
  createPatient,
  createStudyInfo,
  sopInstanceUid,
  type SynthPatient,
  type SynthStudyInfo,
} from "../identity.ts";
import { createRng, hash32 } from "../rng.ts";
import { keepLargest } from "./components.ts";
import { niftiLabels } from "./nifti.ts";
import {
  type LesionOptions,
  resolveLesions,
  resolveScanner,
  type Scanner,
  studyGeometry,
  type SynthV2Options,
} from "./params.ts";
import { clippedVolume, lesionSite, lungDistance, placeLesions } from "./placement.ts";
import {
  blur2d,
  correlatedNoise,
  createUnitNoise,
  gaussianKernel,
  quantize,
  RESCALE_INTERCEPT,
} from "./postproc.ts";
import { createCanvas } from "./raster.ts";
import { addTrees, buildScene, coarseLungs, regionAt, renderPlane, type Scene } from "./scene.ts";
import { createTruthV2, type GroundTruthV2, labelOf, type LesionFacts } from "./truth.ts";

export type { SynthV2Options } from "./params.ts";
export type { GroundTruthV2, LesionTruthV2 } from "./truth.ts";
export type { NoduleShape, NoduleType } from "./nodules.ts";

/** Everything about a v2 study except its pixels. */
export interface StudyPlanV2 {
  seed: number;
  scanner: Scanner;
  lesionOptions: LesionOptions;
  geometry: Geometry;
  scene: Scene;
  patient: SynthPatient;
  study: SynthStudyInfo;
  lesions: LesionFacts[];
  landmarks: Record<string, number>;
  /** Index i holds the SOPInstanceUID of slice i (InstanceNumber i + 1). */
  sopInstanceUids: string[];
  rescaleIntercept: number;
}

/** One generated instance. */
export interface SynthInstanceV2 {
  index: number;
  instanceNumber: number;
  sopInstanceUid: string;
  bytes: Uint8Array;
}

/**
 * The two label masks: gzipped NIfTI files and the raw volumes (x fastest, then y, then z). The
 * lung mask keeps the largest connected piece of each lung (slivers a voxel wide are dropped).
 */
export interface StudyMasks {
  lungs: Uint8Array;
  nodules: Uint8Array;
  lungLabels: Uint8Array;
  noduleLabels: Uint8Array;
}

/** A study being generated: iterate `instances` once, then read `truth()` and `masks()`. */
export interface StudyStreamV2 {
  plan: StudyPlanV2;
  instances: Generator<SynthInstanceV2, void, undefined>;
  truth(): GroundTruthV2;
  masks(): StudyMasks;
}

/** A whole study in memory. */
export interface SynthStudyV2 {
  plan: StudyPlanV2;
  patient: SynthPatient;
  study: SynthStudyInfo;
  instances: Uint8Array[];
  truth: GroundTruthV2;
  masks: StudyMasks;
}

/** Builds the patient, the scanner settings, the grid and the lesions of `opts`. */
export function planStudyV2(opts: SynthV2Options): StudyPlanV2 {
  const lesionOptions = resolveLesions(opts);
  const seed = opts.seed;
  const scene = buildScene(seed, createPatient(seed, "20000101").sex);
  const scanner = resolveScanner(opts, scene.an);
  const geometry = studyGeometry(scene.an, scanner);
  const vol = coarseLungs(scene, 3);
  addTrees(scene, vol, seed);
  scene.lesions = placeLesions(scene, vol, lungDistance(vol), {
    count: lesionOptions.nodules,
    diameter: lesionOptions.diameter,
    types: lesionOptions.types,
    mass: lesionOptions.mass,
  }, createRng(`synth:v2:${seed}:placement`));
  const an = scene.an, zc = an.zCarina;
  for (const spec of scene.lesions) snapToVoxel(scene, spec, geometry);
  const lesions = scene.lesions.map((spec): LesionFacts => {
    const site = lesionSite(scene, spec);
    const top = zc + (site.lung === "right" ? an.aApexR : an.aApexL);
    const bottom = zc + (site.lung === "right" ? an.aDomeR : an.aDomeL) - an.hPost;
    const t = (top - spec.c[2]) / (top - bottom);
    const zone = t < 1 / 3 ? "upper" : t < 2 / 3 ? "middle" : "lower";
    return { spec, ...site, zone, volumeMm3: clippedVolume(scene, spec) };
  });
  const g = geometry, lo = lesionOptions, sc = scanner;
  const shape = `v2:${g.rows}x${g.cols}x${g.slices}:${sc.thicknessMm}:${sc.pixelSpacingMm}:` +
    `${sc.noiseHu}:${sc.blurMm}:${lo.nodules}:${lo.mass}:${lo.diameter.join("-")}:${lo.types}`;
  const study = createStudyInfo(seed, shape, sc.thicknessMm);
  const r1 = (v: number) => Math.round(v * 10) / 10;
  return {
    seed,
    scanner,
    lesionOptions,
    geometry,
    scene,
    patient: createPatient(seed, study.studyDate),
    study,
    lesions,
    landmarks: {
      carinaZMm: zc,
      rightApexZMm: r1(zc + an.aApexR),
      leftApexZMm: r1(zc + an.aApexL),
      rightDomeZMm: r1(zc + an.aDomeR),
      leftDomeZMm: r1(zc + an.aDomeL),
      sternalNotchZMm: r1(zc + an.aNotch),
      aorticArchZMm: r1(zc + an.aArch),
    },
    sopInstanceUids: Array.from({ length: g.slices }, (_, i) => sopInstanceUid(seed, shape, i)),
    rescaleIntercept: RESCALE_INTERCEPT,
  };
}

/**
 * Moves a lesion centre onto the nearest voxel centre (when that stays in the same lung), so that
 * even the smallest nodule has its centre voxel in the mask, as in v1.
 */
function snapToVoxel(scene: Scene, spec: LesionFacts["spec"], g: Geometry): void {
  const [ox, oy, oz] = g.origin, p = g.pixelSpacing, t = g.sliceSpacing;
  const c: [number, number, number] = [
    ox + Math.round((spec.c[0] - ox) / p) * p,
    oy + Math.round((spec.c[1] - oy) / p) * p,
    oz - Math.round((oz - spec.c[2]) / t) * t,
  ];
  const side = regionAt(scene, spec.c[0], spec.c[1], spec.c[2]);
  if (regionAt(scene, c[0], c[1], c[2]) === side) spec.c = c;
}

/** Streams a study slice by slice; the masks are kept (1 byte per voxel each) for the end. */
export function streamStudyV2(opts: SynthV2Options | StudyPlanV2): StudyStreamV2 {
  const plan = "geometry" in opts ? opts : planStudyV2(opts);
  const g = plan.geometry, sc = plan.scanner, n = g.rows * g.cols;
  const truth = createTruthV2({ ...plan, scanner: sc });
  const lungLabels = new Uint8Array(n * g.slices), noduleLabels = new Uint8Array(n * g.slices);
  let done = false;
  function* instances(): Generator<SynthInstanceV2, void, undefined> {
    const shared = {
      ...seriesAttributes(plan),
      SoftwareVersions: "dicom/synth 2",
      ManufacturerModelName: "dicom/synth phantom v2",
      ConvolutionKernel: sc.kernel,
    };
    const cv = createCanvas({
      cols: g.cols,
      rows: g.rows,
      x0: g.origin[0],
      y0: g.origin[1],
      dx: g.pixelSpacing,
    });
    const sum = new Float32Array(n), tmp = new Float32Array(n), noise = new Float32Array(n);
    const stored = new Int16Array(n);
    const psf = gaussianKernel(sc.blurMm / g.pixelSpacing);
    const grain = gaussianKernel(Math.max(0.45, sc.noiseCorrelationMm / g.pixelSpacing));
    const table = createUnitNoise(plan.seed);
    const S = sc.subSamples, mid = (S - 1) / 2;
    const body = new Map<number, number[]>();
    const onBody = (l: LesionFacts["spec"], p: number) => {
      const label = labelOf(l), list = body.get(label);
      if (list) list.push(p);
      else body.set(label, [p]);
    };
    for (let k = 0; k < g.slices; k++) {
      sum.fill(0);
      body.clear();
      const lesionSlice = noduleLabels.subarray(k * n, (k + 1) * n);
      for (let j = 0; j < S; j++) {
        const z = sliceZ(g, k) + sc.thicknessMm * ((j + 0.5) / S - 0.5);
        const centre = j === mid;
        renderPlane(
          cv,
          plan.scene,
          z,
          centre ? lesionSlice : undefined,
          centre ? onBody : undefined,
        );
        for (let p = 0; p < n; p++) sum[p] += cv.value[p];
        if (centre) {
          const o = k * n;
          for (let p = 0; p < n; p++) {
            const r = cv.region[p];
            if (r === 1 || r === 2) lungLabels[o + p] = r;
          }
        }
      }
      if (S > 1) { for (let p = 0; p < n; p++) sum[p] /= S; }
      blur2d(sum, tmp, g.cols, g.rows, psf);
      const seed = hash32(`synth:v2:${plan.seed}:noise:${k}`);
      correlatedNoise(noise, tmp, g.cols, g.rows, table, seed, grain, sc.noiseHu);
      quantize(sum, noise, stored);
      truth.add(k, lesionSlice, stored, body);
      const bytes = encodeSlice(plan, shared, k, stored);
      yield { index: k, instanceNumber: k + 1, sopInstanceUid: plan.sopInstanceUids[k], bytes };
    }
    done = true;
  }
  let masks: StudyMasks | undefined;
  return {
    plan,
    instances: instances(),
    truth: () => truth.finish(),
    masks: () => {
      if (!done) throw new Error("masks are incomplete: generate every instance first");
      if (!masks) keepLargest(lungLabels, g.cols, g.rows, g.slices, [1, 2]);
      return masks ??= {
        lungs: niftiLabels(lungLabels, g, "synthetic lungs: 1 right, 2 left"),
        nodules: niftiLabels(noduleLabels, g, "synthetic nodules: id; masses 100+id"),
        lungLabels,
        noduleLabels,
      };
    },
  };
}

/** Generates a whole study in memory (250 slices of 512×512 ≈ 131 MB of instances). */
export function generateStudyV2(opts: SynthV2Options): SynthStudyV2 {
  const stream = streamStudyV2(opts);
  const instances = Array.from(stream.instances, (i) => i.bytes);
  const { plan } = stream;
  return {
    plan,
    patient: plan.patient,
    study: plan.study,
    instances,
    truth: stream.truth(),
    masks: stream.masks(),
  };
}
