/**
 * @module The candidate stage of a chest model: the classical candidates (`candidates.ts`) each
 * classified by a small 3D network on a cube of HU around it (the false-positive reduction of a
 * lung CAD system), those it accepts segmented on the series' grid (region growing from the
 * centre at half the contrast to the parenchyma, within a ball a little larger than the blob's
 * scale) and handed to the lung stage's rules like the segmentation network's components.
 */
import type { LungMask, ValueVolume } from "../anatomy/lung_mask.ts";
import type { ModelRunner } from "../onnx_runner.ts";
import { patientToVoxel, voxelToPatient } from "../volume.ts";
import { platt } from "./assess.ts";
import { type Geometry, type ProbabilityGrid, segment, type Segmentation } from "../postprocess.ts";
import {
  type Candidate,
  type CandidateOptions,
  findCandidates,
  type IsoVolume,
  isoVolume,
  patch,
} from "./candidates.ts";

type Vec3 = [number, number, number];

/** Series voxel (x column, y row, z slice) of a value-volume voxel, and back (half-pixel centres). */
export function valueToSeries(
  values: Pick<ValueVolume, "width" | "height">,
  geometry: Geometry,
  at: readonly number[],
): Vec3 {
  const fx = geometry.dims.x / values.width, fy = geometry.dims.y / values.height;
  return [(at[0] + 0.5) * fx - 0.5, (at[1] + 0.5) * fy - 0.5, at[2]];
}

export function seriesToValue(
  values: Pick<ValueVolume, "width" | "height">,
  geometry: Geometry,
  s: readonly number[],
): Vec3 {
  const fx = geometry.dims.x / values.width, fy = geometry.dims.y / values.height;
  return [(s[0] + 0.5) / fx - 0.5, (s[1] + 0.5) / fy - 0.5, s[2]];
}

/** Patient position of an isotropic-grid voxel. */
export function isoToPatient(
  iso: Pick<IsoVolume, "origin" | "step">,
  values: Pick<ValueVolume, "width" | "height">,
  g: Geometry,
  at: readonly number[],
): Vec3 {
  const v = [0, 1, 2].map((a) => iso.origin[a] + at[a] * iso.step[a]);
  return voxelToPatient(g, ...valueToSeries(values, g, v));
}

/** Isotropic-grid position of a patient position. */
export function patientToIso(
  iso: Pick<IsoVolume, "origin" | "step">,
  values: Pick<ValueVolume, "width" | "height">,
  g: Geometry,
  p: Vec3,
): Vec3 {
  const v = seriesToValue(values, g, patientToVoxel(g, p));
  return [0, 1, 2].map((a) => (v[a] - iso.origin[a]) / iso.step[a]) as Vec3;
}

/** The candidate stage's settings (manifest `postprocessing.candidates`). */
export interface CandidateStageConfig extends CandidateOptions {
  /** The classifier, beside model.onnx. */
  file: string;
  sha256?: string;
  /** Its input (`[batch, 1, patch, patch, patch]`) and output (`[batch, 1]`, a probability). */
  input: string;
  output: string;
  /** Patch edge (voxels of `gridMm`). */
  patch: number;
  /** Patches per run. */
  batch: number;
  /** Platt scaling of the classifier's logit, fitted on validation candidates. */
  calibration: { slope: number; intercept: number };
  /** Candidates whose calibrated probability is below this are not segmented (the lung rules' minProbability decides what is reported). */
  minProbability: number;
  /**
   * A grown region whose mean is below this (HU) is dropped: noise or texture of the parenchyma,
   * not a nodule (ground-glass nodules are about −700 to −300 HU). Default −750.
   */
  minRegionHu?: number;
}

export interface ScoredCandidate extends Candidate {
  /** The classifier's probability, and calibrated. */
  score: number;
  probability: number;
  /** Calibrated probability at or above the stage's `minProbability`: segmented. */
  accepted: boolean;
}

/** The accepted candidates as a segmentation on the series' grid, for the lung stage's rules. */
export interface CandidateSegmentation extends Pick<Segmentation, "findings" | "maskSlice"> {
  /** Every candidate with its score (strongest first). */
  scored: ScoredCandidate[];
}

/** Runs the classifier over the candidates of `values` and segments those it accepts. */
export async function runCandidateStage(
  values: ValueVolume,
  lung: LungMask,
  geometry: Geometry,
  config: CandidateStageConfig,
  runner: Pick<ModelRunner, "run">,
  signal?: AbortSignal,
): Promise<CandidateSegmentation> {
  const empty: CandidateSegmentation = { findings: [], maskSlice: () => null, scored: [] };
  const iso = isoVolume(values, lung, config);
  if (!iso) return empty;
  const candidates = findCandidates(iso, config);
  if (!candidates.length) return empty;
  const size = config.patch, cube = size ** 3;
  const scored: ScoredCandidate[] = [];
  for (let b = 0; b < candidates.length; b += config.batch) {
    signal?.throwIfAborted();
    const part = candidates.slice(b, b + config.batch);
    const data = new Float32Array(part.length * cube);
    part.forEach((c, i) => patch(iso, c.iso, size, data.subarray(i * cube, (i + 1) * cube)));
    const out = await runner.run(data, [part.length, 1, size, size, size], {
      input: config.input,
      output: config.output,
    });
    if (out.data.length !== part.length) {
      throw new Error(
        `The candidate classifier answered ${out.data.length} values for ${part.length} patches`,
      );
    }
    part.forEach((c, i) => {
      const score = out.data[i];
      const probability = platt(score, config.calibration);
      scored.push({ ...c, score, probability, accepted: probability >= config.minProbability });
    });
  }
  const accepted = scored.filter((c) => c.accepted);
  if (!accepted.length) return { ...empty, scored };

  // Each accepted candidate grown on the value grid: 1 inside, and which candidate.
  const { width: w, height: h, depth: d } = values;
  const plane = w * h;
  const grid: ProbabilityGrid = {
    data: new Float32Array(plane * d),
    width: w,
    height: h,
    depth: d,
  };
  const owner = new Map<number, number>();
  const minRegionHu = config.minRegionHu ?? -750;
  accepted.forEach((c, n) => {
    const region = grow(values, lung.labels, c);
    if (!region.length) return;
    let sum = 0;
    for (const i of region) sum += values.data[i] * values.toHu.scale + values.toHu.offset;
    if (sum / region.length < minRegionHu) return;
    for (const i of region) {
      grid.data[i] = 1;
      if (!owner.has(i)) owner.set(i, n);
    }
  });
  const seg = segment(grid, geometry, {
    threshold: 0.5,
    connectivity: 26,
    minComponentVoxels: 1,
    minVolumeMm3: 0,
  });
  const findings = seg.findings.map((f) => {
    // The candidate whose region holds the component's centre (the nearest when none does).
    const at = seriesToValue(values, geometry, f.centreVoxel).map(Math.round);
    let n = owner.get(at[2] * plane + at[1] * w + at[0]);
    if (n === undefined) {
      let best = Infinity;
      accepted.forEach((c, i) => {
        const dd = Math.hypot(
          (c.at[0] - at[0]) * values.sx,
          (c.at[1] - at[1]) * values.sy,
          (c.at[2] - at[2]) * values.sz,
        );
        if (dd < best) [best, n] = [dd, i];
      });
    }
    const c = accepted[n!];
    return {
      ...f,
      maxProbability: c.score,
      meanProbability: c.score,
      probability: c.probability,
      source: "candidates" as const,
    };
  });
  return { findings, maskSlice: (z) => seg.maskSlice(z), scored };
}

/**
 * Region growing on the value grid from the candidate's brightest voxel nearby: 6-connected
 * voxels of the lung mask (which holds a nodule on the pleura, not the chest wall it touches) at
 * or above half the way from the parenchyma (−850 HU) to that voxel, within a ball of 1.5 times
 * the blob's radius (√3 σ) plus a voxel (so it does not run along the vessels a nodule touches);
 * answers the region's voxel indices.
 */
function grow(
  v: ValueVolume,
  lung: Uint8Array,
  c: Candidate,
): number[] {
  const { width: w, height: h, depth: d } = v;
  const plane = w * h;
  const hu = (i: number) => v.data[i] * v.toHu.scale + v.toHu.offset;
  const ci = Math.round(c.at[0]), cj = Math.round(c.at[1]), ck = Math.round(c.at[2]);
  let seed = -1, peak = -Infinity;
  for (let dz = -1; dz <= 1; dz++) {
    for (let dy = -1; dy <= 1; dy++) {
      for (let dx = -1; dx <= 1; dx++) {
        const x = ci + dx, y = cj + dy, z = ck + dz;
        if (x < 0 || y < 0 || z < 0 || x >= w || y >= h || z >= d) continue;
        const i = z * plane + y * w + x;
        if (lung[i] && hu(i) > peak) [peak, seed] = [hu(i), i];
      }
    }
  }
  if (seed < 0) return [];
  const threshold = Math.min(peak, (peak - 850) / 2);
  const radius = 1.5 * Math.sqrt(3) * c.scaleMm + Math.max(v.sx, v.sy, v.sz);
  const r2 = radius * radius;
  const stack = [seed];
  const seen = new Set<number>([seed]);
  const region: number[] = [];
  while (stack.length) {
    const i = stack.pop()!;
    region.push(i);
    const z = Math.floor(i / plane), y = Math.floor((i - z * plane) / w), x = i - z * plane - y * w;
    for (const [dx, dy, dz] of STEPS) {
      const X = x + dx, Y = y + dy, Z = z + dz;
      if (X < 0 || Y < 0 || Z < 0 || X >= w || Y >= h || Z >= d) continue;
      const j = Z * plane + Y * w + X;
      if (seen.has(j)) continue;
      seen.add(j);
      const ex = (X - c.at[0]) * v.sx, ey = (Y - c.at[1]) * v.sy, ez = (Z - c.at[2]) * v.sz;
      if (ex * ex + ey * ey + ez * ez > r2 || !lung[j] || hu(j) < threshold) continue;
      stack.push(j);
    }
  }
  return region;
}

const STEPS = [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]];
