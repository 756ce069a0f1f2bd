/**
 * @module From the model's components to what is reported: each candidate is measured
 * (`measure.ts`), kept only when it lies in the lungs (its centre inside the lung mask, or at least
 * half of the shell of voxels around it is lung: a nodule on the pleura), dropped when it is not
 * nodule-shaped (a tube or a plate, a branch, something running through more slices than its
 * axial size allows), called a **mass** when its long axis exceeds 30 mm and a **nodule** from 3 mm
 * up, and placed by lung and zone (upper, middle, lower third of that lung's height). The kept
 * findings are renumbered and the mask follows them; what was dropped is listed with the reason.
 */
import { LEFT_LUNG, type LungMask, RIGHT_LUNG } from "../anatomy/lung_mask.ts";
import type { Finding, Geometry, Segmentation } from "../postprocess.ts";
import { measure, type Measures, type Voxels } from "./measure.ts";

/** The rules of the lung stage (manifest `postprocessing.lung`). */
export interface LungRules {
  /** Below this long axis (mm) a candidate is dropped. */
  minDiameterMm: number;
  /** Above this long axis (mm) a candidate is a mass. */
  maxNoduleDiameterMm: number;
  /** Largest √(λ1/λ2): above, a tube (vessel, airway wall). */
  maxElongation: number;
  /** Largest √(λ2/λ3): above, a plate (fissure, pleura). */
  maxFlatness: number;
  /** Smallest volume / sphere of the longest extent: below, a branch or a plate. */
  minCompactness: number;
  /** Largest z extent, as a multiple of the long axis plus two slices. */
  maxZExtentRatio: number;
  /** Smallest fraction of the shell that must be lung when the centre lies outside the mask. */
  minShellLung: number;
  /** Findings whose (calibrated) probability is below this are not reported. */
  minProbability: number;
}

/**
 * Platt scaling of a finding's score: σ(slope · logit(score) + intercept), the score being the
 * component's maximum or mean probability (`feature`; the maximum saturates near 1 for most
 * components of a confident network, the mean keeps them apart).
 */
export interface Calibration {
  slope: number;
  intercept: number;
  feature?: "maxProbability" | "meanProbability";
}

/** The calibrated probability of a finding (its maximum probability when uncalibrated). */
export function calibrated(
  f: Pick<Finding, "maxProbability" | "meanProbability">,
  c?: Calibration,
): number {
  if (!c) return f.maxProbability;
  return platt(c.feature === "meanProbability" ? f.meanProbability : f.maxProbability, c);
}

/** Platt scaling: σ(slope · logit(p) + intercept), p kept off 0 and 1. */
export function platt(p: number, c: { slope: number; intercept: number }): number {
  const q = Math.min(1 - 1e-6, Math.max(1e-6, p));
  return 1 / (1 + Math.exp(-(c.slope * Math.log(q / (1 - q)) + c.intercept)));
}

export const DEFAULT_LUNG_RULES: LungRules = {
  minDiameterMm: 3,
  maxNoduleDiameterMm: 30,
  maxElongation: 3,
  maxFlatness: 4,
  minCompactness: 0.12,
  maxZExtentRatio: 1.6,
  minShellLung: 0.5,
  minProbability: 0,
};

export type Zone = "upper" | "middle" | "lower";

/** What the lung stage adds to a finding. */
export interface LungFinding {
  kind: "nodule" | "mass";
  lung: "right" | "left";
  zone: Zone;
  measures: Measures;
  /** Fraction of the voxels around the candidate that are lung. */
  shellLung: number;
  /** Whether the centre lies inside the lung mask (false: on the pleura). */
  centreInLung: boolean;
}

export interface Rejected {
  finding: Finding;
  reason: string;
  measures?: Measures;
}

export interface Assessed {
  findings: (Finding & { lung: LungFinding })[];
  rejected: Rejected[];
  maskSlice(z: number): Uint8Array | null;
}

/** How the lung grid and the HU are read at a series voxel. */
export interface LungContext {
  lung: LungMask;
  /** HU at a series voxel. */
  huAt(x: number, y: number, z: number): number;
  /** Lung label at a series voxel (0, RIGHT_LUNG, LEFT_LUNG). */
  lungAt(x: number, y: number, z: number): number;
}

export function assessFindings(
  seg: Pick<Segmentation, "findings" | "maskSlice">,
  geometry: Geometry,
  ctx: LungContext,
  rules: LungRules = DEFAULT_LUNG_RULES,
  calibration?: Calibration,
): Assessed {
  const { x: nx, y: ny, z: nz } = geometry.dims;
  const plane = nx * ny;
  // Each finding's voxels, and the slices (kept for the shell).
  const slices = new Map<number, Uint8Array>();
  const lists = seg.findings.map(() => ({
    x: [] as number[],
    y: [] as number[],
    z: [] as number[],
  }));
  for (let z = 0; z < nz; z++) {
    const m = seg.maskSlice(z);
    if (!m) continue;
    slices.set(z, m);
    for (let i = 0; i < plane; i++) {
      const n = m[i];
      if (!n || n > lists.length) continue;
      const l = lists[n - 1];
      l.x.push(i % nx);
      l.y.push(Math.floor(i / nx));
      l.z.push(z);
    }
  }
  const at = (x: number, y: number, z: number) =>
    x < 0 || y < 0 || z < 0 || x >= nx || y >= ny || z >= nz ? 0 : slices.get(z)?.[y * nx + x] ?? 0;
  const lungSpan = lungHeights(ctx.lung);

  const kept: (Finding & { lung: LungFinding })[] = [];
  const rejected: Rejected[] = [];
  const keptNumber = new Map<number, number>();
  seg.findings.forEach((f, index) => {
    const l = lists[index];
    const v: Voxels = {
      x: Int32Array.from(l.x),
      y: Int32Array.from(l.y),
      z: Int32Array.from(l.z),
      count: l.x.length,
    };
    if (!v.count) return rejected.push({ finding: f, reason: "no voxels" });
    // The shell: 6-neighbours outside the finding, and how many are lung.
    let shell = 0, shellLung = 0;
    for (let i = 0; i < v.count; i++) {
      for (const [dx, dy, dz] of NEIGHBOURS) {
        const x = v.x[i] + dx, y = v.y[i] + dy, z = v.z[i] + dz;
        if (at(x, y, z) === f.number) continue;
        shell++;
        if (x >= 0 && y >= 0 && z >= 0 && x < nx && y < ny && z < nz && ctx.lungAt(x, y, z)) {
          shellLung++;
        }
      }
    }
    const c = f.centreVoxel.map(Math.round);
    const centreLabel = ctx.lungAt(c[0], c[1], c[2]);
    const shellFraction = shell ? shellLung / shell : 0;
    if (!centreLabel && shellFraction < rules.minShellLung) {
      return rejected.push({
        finding: f,
        reason: `outside the lungs (${Math.round(shellFraction * 100)} % of its surroundings lung)`,
      });
    }
    // The candidate stage sets its own calibrated probability.
    const probability = f.probability ?? calibrated(f, calibration);
    if (probability < rules.minProbability) {
      return rejected.push({
        finding: f,
        reason: `probability ${probability.toFixed(2)} below ${rules.minProbability}`,
      });
    }
    const m = measure(v, geometry.spacing, f.longestDiameterMm, ctx.huAt);
    const why = notNoduleShaped(m, rules, geometry.spacing.z);
    if (why) return rejected.push({ finding: f, reason: why, measures: m });
    const side = centreLabel || sideByShell(v, ctx) ||
      (f.centrePatient[0] < 0 ? RIGHT_LUNG : LEFT_LUNG);
    const span = lungSpan[side];
    const t = span ? (f.centreVoxel[2] - span.first) / Math.max(1, span.last - span.first) : 0.5;
    // Slices run in the series' order; `upper` is the superior third whichever way that is.
    const superiorFirst = geometry.sliceStep[2] < 0;
    const fromTop = superiorFirst ? t : 1 - t;
    kept.push({
      ...f,
      ...(calibration || f.probability !== undefined ? { probability } : {}),
      lung: {
        kind: m.longAxisMm > rules.maxNoduleDiameterMm ? "mass" : "nodule",
        lung: side === RIGHT_LUNG ? "right" : "left",
        zone: fromTop < 1 / 3 ? "upper" : fromTop < 2 / 3 ? "middle" : "lower",
        measures: m,
        shellLung: shellFraction,
        centreInLung: centreLabel !== 0,
      },
    });
  });
  kept.forEach((f, n) => {
    keptNumber.set(f.number, n + 1);
    f.number = n + 1;
  });
  return {
    findings: kept,
    rejected,
    maskSlice(z) {
      const m = slices.get(z);
      if (!m) return null;
      const out = new Uint8Array(plane);
      let any = false;
      for (let i = 0; i < plane; i++) {
        const n = m[i] && keptNumber.get(m[i]);
        if (n) {
          out[i] = Math.min(255, n);
          any = true;
        }
      }
      return any ? out : null;
    },
  };
}

const NEIGHBOURS: [number, number, number][] = [
  [1, 0, 0],
  [-1, 0, 0],
  [0, 1, 0],
  [0, -1, 0],
  [0, 0, 1],
  [0, 0, -1],
];

/** Why a candidate is not a nodule or mass, or null. */
export function notNoduleShaped(m: Measures, r: LungRules, sliceMm: number): string | null {
  const mm = (v: number) => `${Math.round(v * 10) / 10} mm`;
  if (m.longAxisMm < r.minDiameterMm) return `smaller than ${r.minDiameterMm} mm`;
  if (m.zExtentMm > r.maxZExtentRatio * m.longAxisMm + 2 * sliceMm) {
    return `runs through ${mm(m.zExtentMm)} of slices for a ${mm(m.longAxisMm)} axial size ` +
      `(a vessel or a wall)`;
  }
  if (m.elongation > r.maxElongation) {
    return `tube-shaped (elongation ${m.elongation.toFixed(1)}: a vessel or airway)`;
  }
  if (m.flatness > r.maxFlatness) return `plate-shaped (flatness ${m.flatness.toFixed(1)})`;
  if (m.compactness < r.minCompactness) {
    return `not compact (${m.compactness.toFixed(2)} of a ball: a branch or a plate)`;
  }
  return null;
}

/** The lung most of the candidate's surroundings belong to (0: none). */
function sideByShell(v: Voxels, ctx: LungContext): number {
  let right = 0, left = 0;
  for (let i = 0; i < v.count; i++) {
    for (const [dx, dy, dz] of NEIGHBOURS) {
      const l = ctx.lungAt(v.x[i] + dx, v.y[i] + dy, v.z[i] + dz);
      if (l === RIGHT_LUNG) right++;
      else if (l === LEFT_LUNG) left++;
    }
  }
  return right + left === 0 ? 0 : right >= left ? RIGHT_LUNG : LEFT_LUNG;
}

/** Per lung, its first and last slice. */
function lungHeights(lung: LungMask): Record<number, { first: number; last: number } | undefined> {
  const { width: w, height: h, depth: d } = lung.grid;
  const plane = w * h;
  const out: Record<number, { first: number; last: number } | undefined> = {};
  for (let z = 0; z < d; z++) {
    for (let i = z * plane; i < (z + 1) * plane; i++) {
      const l = lung.labels[i];
      if (!l) continue;
      const s = out[l] ??= { first: z, last: z };
      s.last = z;
    }
  }
  return out;
}
