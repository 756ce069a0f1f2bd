/**
 * @module The lung stage of a chest model's post-processing, on the volume the sidecar loaded:
 * the lung mask on the planes' own grid (the model's input planes, mapped back to HU, or the
 * modality values), then each component of the model assessed against it (`assess.ts`), and the
 * lung mask on the series' grid for the NIfTI beside the findings mask.
 */
import type { ModelManifest } from "../manifest.ts";
import type { Geometry, Segmentation } from "../postprocess.ts";
import type { Volume } from "../volume.ts";
import {
  LEFT_LUNG,
  type LungMask,
  lungMask,
  RIGHT_LUNG,
  type ValueVolume,
} from "../anatomy/lung_mask.ts";
import { type Assessed, assessFindings, type Calibration, type LungRules } from "./assess.ts";
import type { ModelRunner } from "../onnx_runner.ts";
import {
  type CandidateStageConfig,
  runCandidateStage,
  type ScoredCandidate,
} from "./candidate_stage.ts";

export interface LungStage {
  lung: LungMask;
  assessed: Assessed;
  /** The candidate stage's candidates with their scores (models with one). */
  candidates?: ScoredCandidate[];
  /**
   * Lung labels (0, 1 right, 2 left) of series slice z, `[y][x]`, the reported findings' voxels
   * included (a nodule on the pleura lies in the lung it grows from); null when none.
   */
  lungSlice(z: number): Uint8Array | null;
}

/** The loaded planes as a `ValueVolume` on their grid, with HU recovered from the window. */
export function valueVolume(
  volume: Pick<Volume, "data" | "values" | "plane" | "dims"> & Geometry,
  m: Pick<ModelManifest, "preprocessing">,
): ValueVolume {
  const { x: nx, y: ny, z: nz } = volume.dims;
  const { height: h, width: w } = volume.plane;
  let toHu = { scale: 1, offset: 0 };
  if (volume.values === "model-input") {
    const { center, width } = m.preprocessing.window;
    const [r0, r1] = m.preprocessing.rescale;
    // x = (clamp(HU) − lo) / width · (r1 − r0) + r0  ⇒  HU = (x − r0) · width / (r1 − r0) + lo
    const scale = width / (r1 - r0);
    toHu = { scale, offset: center - width / 2 - r0 * scale };
  }
  const fx = nx / w, fy = ny / h;
  return {
    data: volume.data,
    width: w,
    height: h,
    depth: nz,
    sx: volume.spacing.x * fx,
    sy: volume.spacing.y * fy,
    sz: Math.hypot(...volume.sliceStep) || volume.spacing.z,
    toHu,
    patientX(i, j, k) {
      // Plane pixel centre → series voxel index (half-pixel centres), then patient x.
      const x = (i + 0.5) * fx - 0.5, y = (j + 0.5) * fy - 0.5;
      return volume.origin[0] + x * volume.spacing.x * volume.rowDirection[0] +
        y * volume.spacing.y * volume.columnDirection[0] + k * volume.sliceStep[0];
    },
  };
}

export async function runLungStage(
  volume: Pick<Volume, "data" | "values" | "plane" | "dims"> & Geometry,
  m: Pick<ModelManifest, "preprocessing">,
  seg: Pick<Segmentation, "findings" | "maskSlice">,
  rules?: LungRules,
  calibration?: Calibration,
  candidateStage?: {
    config: CandidateStageConfig;
    runner: Pick<ModelRunner, "run">;
    signal?: AbortSignal;
  },
): Promise<LungStage> {
  const values = valueVolume(volume, m);
  const lung = lungMask(values);
  const { x: nx, y: ny, z: nz } = volume.dims;
  const { width: w, height: h } = values;
  const col = Int32Array.from(
    { length: nx },
    (_, x) => Math.min(w - 1, Math.floor((x + 0.5) * w / nx)),
  );
  const row = Int32Array.from(
    { length: ny },
    (_, y) => Math.min(h - 1, Math.floor((y + 0.5) * h / ny)),
  );
  const plane = w * h;
  const inside = (x: number, y: number, z: number) =>
    x >= 0 && y >= 0 && z >= 0 && x < nx && y < ny && z < nz;
  const { scale, offset } = values.toHu;
  const ctx = {
    lung,
    huAt: (x: number, y: number, z: number) =>
      inside(x, y, z) ? values.data[z * plane + row[y] * w + col[x]] * scale + offset : -1000,
    lungAt: (x: number, y: number, z: number) =>
      inside(x, y, z) ? lung.labels[z * plane + row[y] * w + col[x]] : 0,
  };
  let assessed = assessFindings(seg, volume, ctx, rules, calibration);
  let candidates: ScoredCandidate[] | undefined;
  if (candidateStage) {
    const found = await runCandidateStage(
      values,
      lung,
      volume,
      candidateStage.config,
      candidateStage.runner,
      candidateStage.signal,
    );
    candidates = found.scored;
    assessed = mergeAssessed(assessed, assessFindings(found, volume, ctx, rules), nx, ny);
  }
  return {
    lung,
    assessed,
    ...(candidates ? { candidates } : {}),
    lungSlice(z) {
      const out = new Uint8Array(nx * ny);
      let any = false;
      const base = z * plane;
      for (let y = 0; y < ny; y++) {
        const r = base + row[y] * w;
        for (let x = 0; x < nx; x++) {
          const l = lung.labels[r + col[x]];
          if (l) {
            out[y * nx + x] = l;
            any = true;
          }
        }
      }
      // A nodule on the pleura is lung too (what a rolling ball along the pleura would add).
      const found = assessed.maskSlice(z);
      if (found) {
        for (let i = 0; i < found.length; i++) {
          const f = found[i] && assessed.findings[found[i] - 1];
          if (f && !out[i]) {
            out[i] = f.lung.lung === "right" ? RIGHT_LUNG : LEFT_LUNG;
            any = true;
          }
        }
      }
      return any ? out : null;
    },
  };
}

/**
 * The segmentation's findings and the candidate stage's, as one list: a candidate whose centre
 * lies in a finding of `a` (or within half its long axis of that finding's centre, at least 3 mm)
 * is the same nodule, reported once with the higher of the two probabilities: with the candidate's
 * segmentation when both call it solid and the candidate's is the larger (a density threshold
 * half-way to the parenchyma is how solid nodules are measured; the network's mask on its 256² grid
 * runs small; the candidate's stops at its ball), else with the finding's. The rest are numbered
 * together by falling probability, the mask following. `nx`, `ny`: the series' columns and rows.
 */
export function mergeAssessed(a: Assessed, b: Assessed, nx: number, ny: number): Assessed {
  const plane = nx * ny;
  const p = (f: Assessed["findings"][number]) => f.probability ?? f.maxProbability;
  const raised = new Map<number, number>();
  /** Findings of `a` whose segmentation a solid candidate replaces. */
  const replaced = new Set<number>();
  const duplicateOf = (f: Assessed["findings"][number]) => {
    const c = f.centreVoxel.map(Math.round);
    const inA = a.maskSlice(c[2])?.[c[1] * nx + c[0]] ?? 0;
    return a.findings.find((g) =>
      g.number === inA ||
      Math.hypot(...g.centrePatient.map((v, i) => v - f.centrePatient[i])) <=
        Math.max(3, g.lung.measures.longAxisMm / 2)
    );
  };
  const solid = (f: Assessed["findings"][number]) => f.lung.measures.attenuation === "solid";
  const extra = b.findings.flatMap((f) => {
    const g = duplicateOf(f);
    if (!g) return [f];
    if (solid(f) && solid(g) && f.volumeMm3 > g.volumeMm3 && !replaced.has(g.number)) {
      replaced.add(g.number);
      return [{ ...f, probability: Math.max(p(f), p(g)) }];
    }
    raised.set(g.number, Math.max(raised.get(g.number) ?? p(g), p(f)));
    return [];
  });
  const fused = a.findings.filter((f) => !replaced.has(f.number)).map((f) =>
    raised.has(f.number) && raised.get(f.number)! > p(f)
      ? { ...f, probability: raised.get(f.number)! }
      : f
  );
  const all = [
    ...fused.map((f) => ({ f, from: a, old: f.number })),
    ...extra.map((f) => ({ f, from: b, old: f.number })),
  ].sort((x, y) =>
    (y.f.probability ?? y.f.maxProbability) - (x.f.probability ?? x.f.maxProbability)
  );
  const renumber = new Map<Assessed, Map<number, number>>([[a, new Map()], [b, new Map()]]);
  const findings = all.map(({ f, from, old }, n) => {
    renumber.get(from)!.set(old, n + 1);
    return { ...f, number: n + 1 };
  });
  return {
    findings,
    rejected: [...a.rejected, ...b.rejected],
    maskSlice(z) {
      let out: Uint8Array | null = null;
      for (const from of [a, b]) {
        const m = from.maskSlice(z);
        if (!m) continue;
        const map = renumber.get(from)!;
        for (let i = 0; i < plane; i++) {
          const n = m[i] && map.get(m[i]);
          if (!n || out?.[i]) continue;
          out ??= new Uint8Array(plane);
          out[i] = Math.min(255, n);
        }
      }
      return out;
    },
  };
}
