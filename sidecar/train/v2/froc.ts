/**
 * @module The figures of a lung nodule model, computed through the sidecar's own code (volume
 * assembly with the model's sampler, `findingsOf`: model, components, lung stage, calibration) on
 * synthetic studies on disk (generator v2 or v1: DICOM + truth.json, and nodules.nii.gz when
 * present): FROC (sensitivity at 1/8 … 8 false findings per scan, and their mean, LUNA16's CPM)
 * overall, by nodule type and by size; the operating point (the manifest's reporting threshold);
 * false findings per nodule-free scan; masses called masses; Dice and volume error of the matched
 * nodules; CPU time per 100 slices. `--fit-calibration` fits the Platt scaling and the reporting
 * threshold on the studies given (use a validation set, never the test set) and writes them into
 * the manifest.
 *
 *   deno run -A sidecar/train/v2/froc.ts DIR [DIR ...] [--model lung-nodule-demo] [--models DIR]
 *     [--profile standard] [--limit N] [--json OUT] [--fit-calibration] [--max-fp 0.5]
 *
 * A finding hits a nodule when its centre lies within the nodule's radius of the nodule's centre
 * (LUNA16's rule) or inside the nodule's voxels; a finding that hits no nodule and no mass is a
 * false finding. Each nodule counts once however many findings hit it.
 */
import { gunzipSync } from "fflate";
import { findingsOf } from "../../analysis.ts";
import { loadModel, resolveSettings } from "../../manifest.ts";
import { createRunner } from "../../onnx_runner.ts";
import { modelSampler } from "../../preprocess.ts";
import { createVolumeBuilder, type Volume } from "../../volume.ts";
import type { Profile } from "../../../queue/jobs.ts";
import type { Finding } from "../../postprocess.ts";
import type { Calibration } from "../../nodules/assess.ts";

interface Target {
  id: number;
  centre: [number, number, number];
  diameterMm: number;
  type: string;
  mass: boolean;
  /** Label in nodules.nii.gz. */
  label?: number;
  voxelVolumeMm3?: number;
}

const args = [...Deno.args];
const flag = (name: string, fallback: string): string => {
  const i = args.indexOf(`--${name}`);
  return i < 0 ? fallback : args.splice(i, 2)[1];
};
const has = (name: string) => {
  const i = args.indexOf(`--${name}`);
  if (i >= 0) args.splice(i, 1);
  return i >= 0;
};
const modelName = flag("model", "lung-nodule-demo");
const modelsDir = flag("models", new URL("../../models", import.meta.url).pathname);
const profile = flag("profile", "standard") as Profile;
const limit = Number(flag("limit", "0"));
const jsonOut = flag("json", "");
const maxFp = Number(flag("max-fp", "0.5"));
const fit = has("fit-calibration");
const withoutCandidates = has("without-candidates");
const roots = args;
const root = roots.join(" + ");
if (!roots.length) throw new Error("usage: froc.ts DIR [DIR ...] [flags]");

const installed = await loadModel(`${modelsDir}/${modelName}`);
const manifest = installed.manifest;
const runner = await createRunner(installed.modelPath, ["cpu"]);
const candidatesRunner = installed.candidatesPath && !withoutCandidates
  ? await createRunner(installed.candidatesPath, ["cpu"])
  : undefined;
// Every candidate with its score: no reporting threshold while measuring.
const measuring = structuredClone(manifest);
if (measuring.postprocessing.lung) measuring.postprocessing.lung.minProbability = 0;
const stage = measuring.postprocessing.candidates;
if (stage) stage.minProbability = Math.min(0.02, stage.minProbability);
if (withoutCandidates) delete measuring.postprocessing.candidates;
if (fit) delete measuring.postprocessing.calibration;
const settings = resolveSettings(measuring, profile, undefined);
const model = {
  manifest: measuring,
  runner,
  ...(candidatesRunner ? { candidates: candidatesRunner } : {}),
};
const sampler = modelSampler(measuring);

function targetsOf(truth: Record<string, unknown>): Target[] {
  const out: Target[] = [];
  const vec = (c: unknown): [number, number, number] =>
    Array.isArray(c) ? c as [number, number, number] : [
      (c as Record<string, number>).x,
      (c as Record<string, number>).y,
      (c as Record<string, number>).z,
    ];
  const list = (key: string, mass: boolean) => {
    for (const n of (truth[key] ?? []) as Record<string, unknown>[]) {
      const d = Number(n.diameterMm ?? n.equivalentDiameterMm ?? (Number(n.radiusMm) * 2));
      out.push({
        id: Number(n.id),
        centre: vec(n.centerMm ?? n.centreMm ?? n.center ?? n.centre),
        diameterMm: d,
        type: String(n.type ?? "solid"),
        mass: mass || d > 30,
        label: n.label === undefined ? (mass ? undefined : Number(n.id)) : Number(n.label),
        voxelVolumeMm3: Number(
          n.voxelVolumeMm3 ?? n.volumeVoxelMm3 ?? n.voxelCountVolumeMm3 ?? NaN,
        ),
      });
    }
  };
  list("nodules", false);
  list("masses", true);
  list("lesions", false); // generator v1
  return out;
}

function readNifti(bytes: Uint8Array): { dims: number[]; data: Uint8Array } {
  const raw = bytes[0] === 0x1f && bytes[1] === 0x8b ? gunzipSync(bytes) : bytes;
  const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const dims = [1, 2, 3].map((i) => v.getInt16(40 + 2 * i, true));
  const offset = Math.round(v.getFloat32(108, true));
  return { dims, data: raw.subarray(offset, offset + dims[0] * dims[1] * dims[2]) };
}

interface Scored {
  score: number;
  /** The component's mean probability (the calibration's feature). */
  mean: number;
  scan: number;
  hit: number | null; // index into targets of that scan (a nodule)
  massHit: boolean;
  kind: string;
  longAxisMm: number;
  source: "segmentation" | "candidates";
}

const dirs: string[] = [];
for (const r of roots) {
  const found: string[] = [];
  for await (const e of Deno.readDir(r)) if (e.isDirectory) found.push(`${r}/${e.name}`);
  dirs.push(...found.sort());
}
const scans = limit ? dirs.slice(0, limit) : dirs;
const scored: Scored[] = [];
const nodules: (Target & { scan: number })[] = [];
const matched: { dice?: number; volumeErrorPercent?: number; target: Target }[] = [];
let slicesTotal = 0, msTotal = 0, massesCalledMass = 0, massesTotal = 0, nodulesCalledMass = 0;
let bigNodules = 0;
const perScanFp: number[] = [];
for (const [scan, dir] of scans.entries()) {
  const truth = JSON.parse(await Deno.readTextFile(`${dir}/truth.json`));
  const targets = targetsOf(truth);
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) if (e.name.endsWith(".dcm")) names.push(e.name);
  const builder = createVolumeBuilder({ sampler });
  for (const name of names.sort()) builder.add(await Deno.readFile(`${dir}/${name}`));
  const volume: Volume = builder.finish();
  const started = performance.now();
  const { seg } = await findingsOf(volume, model, settings);
  msTotal += performance.now() - started;
  slicesTotal += volume.dims.z;
  let labels: { dims: number[]; data: Uint8Array } | undefined;
  try {
    labels = readNifti(await Deno.readFile(`${dir}/nodules.nii.gz`));
  } catch { /* generator v1: no mask file */ }
  // NIfTI slices are in instance order; the volume may be stacked the other way.
  const firstZ = Number(
    truth.geometry?.firstImagePositionPatient?.[2] ?? truth.geometry?.origin?.[2],
  );
  const reversed = Number.isFinite(firstZ) && Math.abs(volume.origin[2] - firstZ) > 1e-3;
  const truthSlice = (k: number) => reversed ? volume.dims.z - 1 - k : k;
  const labelAt = (x: number, y: number, k: number) =>
    labels ? labels.data[(truthSlice(k) * volume.dims.y + y) * volume.dims.x + x] : 0;

  const hitOf = (f: Finding): number | null => {
    const c = f.centreVoxel.map(Math.round);
    const inside = labelAt(c[0], c[1], c[2]);
    let best: number | null = null, bestD = Infinity;
    targets.forEach((t, i) => {
      const d = Math.hypot(...t.centre.map((v, a) => v - f.centrePatient[a]));
      if ((d <= t.diameterMm / 2 || (inside && inside === t.label)) && d < bestD) {
        best = i;
        bestD = d;
      }
    });
    return best;
  };
  for (const t of targets) {
    if (t.mass) massesTotal++;
    else nodules.push({ ...t, scan });
  }
  let fp = 0;
  const hitBy = new Map<number, Finding[]>();
  for (const f of seg.findings) {
    const i = hitOf(f);
    const t = i === null ? undefined : targets[i];
    const score = f.probability ?? f.maxProbability;
    if (t) hitBy.set(i!, [...(hitBy.get(i!) ?? []), f]);
    const kind = f.lung?.kind ?? "nodule";
    if (kind === "nodule" && (f.lung?.measures.longAxisMm ?? f.longestDiameterMm) > 30) {
      bigNodules++;
    }
    if (!t) fp++;
    scored.push({
      score,
      mean: f.meanProbability,
      scan,
      hit: t && !t.mass ? nodules.findIndex((n) => n.scan === scan && n.id === t.id) : null,
      massHit: !!t?.mass,
      kind,
      longAxisMm: f.lung?.measures.longAxisMm ?? f.longestDiameterMm,
      source: f.source ?? "segmentation",
    });
  }
  perScanFp.push(fp);
  for (const [i, fs] of hitBy) {
    const t = targets[i];
    if (t.mass) {
      if (fs.some((f) => f.lung?.kind === "mass")) massesCalledMass++;
      continue;
    }
    if (fs.every((f) => f.lung?.kind === "mass")) nodulesCalledMass++;
    // Dice of the findings that hit it against its voxels.
    let inter = 0, found = 0, truthVoxels = 0;
    if (labels && t.label !== undefined) {
      const numbers = new Set(fs.map((f) => f.number));
      for (let k = 0; k < volume.dims.z; k++) {
        const m = seg.maskSlice(k);
        const base = truthSlice(k) * volume.dims.x * volume.dims.y;
        for (let p = 0; p < volume.dims.x * volume.dims.y; p++) {
          const isTruth = labels.data[base + p] === t.label;
          const isFound = !!m && numbers.has(m[p]);
          if (isTruth) truthVoxels++;
          if (isFound) found++;
          if (isTruth && isFound) inter++;
        }
      }
    }
    const vol = fs.reduce((s, f) => s + f.volumeMm3, 0);
    const voxelMm3 = volume.spacing.x * volume.spacing.y * volume.spacing.z;
    const truthVolume = truthVoxels ? truthVoxels * voxelMm3 : t.voxelVolumeMm3;
    matched.push({
      target: t,
      ...(truthVoxels ? { dice: (2 * inter) / (found + truthVoxels) } : {}),
      ...(truthVolume && Number.isFinite(truthVolume)
        ? { volumeErrorPercent: (100 * Math.abs(vol - truthVolume)) / truthVolume }
        : {}),
    });
  }
  console.error(
    `${scan + 1}/${scans.length} ${dir.split("/").pop()}: ${volume.dims.z} slices, ` +
      `${
        targets.filter((t) => !t.mass).length
      } nodules, ${seg.findings.length} findings, ${fp} false`,
  );
}

// ---- FROC ----
const RATES = [1 / 8, 1 / 4, 1 / 2, 1, 2, 4, 8];
function froc(subset: (n: Target & { scan: number }) => boolean) {
  const wanted = new Set(nodules.flatMap((n, i) => subset(n) ? [i] : []));
  const total = wanted.size;
  const sorted = scored.filter((s) => !s.massHit).sort((a, b) => b.score - a.score);
  const points: { fpRate: number; sensitivity: number; threshold: number }[] = [];
  const seen = new Set<number>();
  let fp = 0;
  for (let i = 0; i < sorted.length; i++) {
    const s = sorted[i];
    if (s.hit === null || s.hit < 0) fp++;
    else if (wanted.has(s.hit)) seen.add(s.hit);
    if (i + 1 < sorted.length && sorted[i + 1].score === s.score) continue;
    points.push({
      fpRate: fp / scans.length,
      sensitivity: total ? seen.size / total : NaN,
      threshold: s.score,
    });
  }
  const at = RATES.map((r) =>
    points.filter((p) => p.fpRate <= r).reduce((m, p) => Math.max(m, p.sensitivity), 0)
  );
  return {
    nodules: total,
    sensitivity: at,
    cpm: at.reduce((a, b) => a + b, 0) / at.length,
    points,
  };
}
const r3 = (v: number) => Math.round(v * 1000) / 1000;
const overall = froc(() => true);
const byType = Object.fromEntries(
  [...new Set(nodules.map((n) => n.type))].sort().map((t) => [t, froc((n) => n.type === t)]),
);
const SIZES: [string, number, number][] = [["3-6 mm", 0, 6], ["6-10 mm", 6, 10], [
  "10-30 mm",
  10,
  30.01,
]];
const bySize = Object.fromEntries(
  SIZES.map(([name, lo, hi]) => [name, froc((n) => n.diameterMm >= lo && n.diameterMm < hi)]),
);

// ---- calibration (Platt) on these studies, and the reporting threshold ----
let calibration: Calibration | undefined;
let threshold = manifest.postprocessing.lung?.minProbability ?? 0;
if (fit) {
  // The network's components only: the candidate stage calibrates its own.
  const xs = scored.filter((s) => !s.massHit && s.source === "segmentation").map((s) => {
    const p = Math.min(1 - 1e-6, Math.max(1e-6, s.mean));
    return [Math.log(p / (1 - p)), s.hit !== null && s.hit >= 0 ? 1 : 0];
  });
  // Newton's method on the log-likelihood with a ridge on the slope (λ = 1): a few candidates
  // must not drive it to a step function.
  let a = 1, b = 0;
  for (let it = 0; it < 50; it++) {
    let ga = a, gb = 0, haa = 1, hab = 0, hbb = 1e-6;
    for (const [x, y] of xs) {
      const q = 1 / (1 + Math.exp(-(a * x + b)));
      ga += (q - y) * x;
      gb += q - y;
      const w = q * (1 - q);
      haa += w * x * x;
      hab += w * x;
      hbb += w;
    }
    const det = haa * hbb - hab * hab;
    a -= (hbb * ga - hab * gb) / det;
    b -= (haa * gb - hab * ga) / det;
  }
  calibration = { slope: r3(a), intercept: r3(b), feature: "meanProbability" as const };
  const cal = (p: number) => {
    const q = Math.min(1 - 1e-6, Math.max(1e-6, p));
    return 1 / (1 + Math.exp(-(a * Math.log(q / (1 - q)) + b)));
  };
  for (const s of scored) if (s.source === "segmentation") s.score = cal(s.mean);
  // The most nodules found within --max-fp false findings per scan, and the highest calibrated
  // threshold that finds them all: below it, only false findings are added.
  const candidates = scored.filter((s) => !s.massHit).map((s) => ({ ...s, c: s.score }))
    .sort((x, y) => y.c - x.c);
  let fp = 0, best = 0;
  const hits = new Set<number>();
  const reach: { c: number; found: number }[] = [];
  for (let i = 0; i < candidates.length; i++) {
    const s = candidates[i];
    if (s.hit === null || s.hit < 0) fp++;
    else hits.add(s.hit);
    if (fp / scans.length > maxFp) break;
    if (i + 1 < candidates.length && candidates[i + 1].c === s.c) continue;
    reach.push({ c: s.c, found: hits.size });
    best = Math.max(best, hits.size);
  }
  threshold = reach.find((r) => r.found === best)?.c ?? 1;
  threshold = Math.max(0.05, Math.floor(threshold * 100) / 100);
  const path = `${modelsDir}/${modelName}/manifest.json`;
  const raw = JSON.parse(await Deno.readTextFile(path));
  raw.postprocessing.calibration = {
    ...calibration,
    fittedOn: `${scans.length} validation studies (${root}), ${xs.length} candidates`,
  };
  raw.postprocessing.lung.minProbability = threshold;
  await Deno.writeTextFile(path, JSON.stringify(raw, null, 2) + "\n");
  console.error(`calibration ${JSON.stringify(calibration)}, reporting threshold ${threshold}`);
}

// ---- the operating point ----
const score = (s: Scored) => s.score;
const reported = scored.filter((s) => score(s) >= threshold);
const free = scans.map((_, i) => i).filter((i) => !nodules.some((n) => n.scan === i));
const falseOf = (s: Scored) => !s.massHit && (s.hit === null || s.hit < 0);
const fpPerFreeScan = free.map((i) => reported.filter((s) => s.scan === i && falseOf(s)).length);
const hitSet = new Set(reported.filter((s) => s.hit !== null && s.hit >= 0).map((s) => s.hit));
const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
};
const dices = matched.flatMap((m) => m.dice === undefined ? [] : [m.dice]);
const volErr = matched.flatMap((m) =>
  m.volumeErrorPercent === undefined ? [] : [m.volumeErrorPercent]
);
const result = {
  model: `${manifest.name} ${manifest.version}`,
  profile,
  data: root,
  scans: scans.length,
  nodules: nodules.length,
  nodulesFreeScans: free.length,
  masses: massesTotal,
  froc: {
    rates: ["1/8", "1/4", "1/2", "1", "2", "4", "8"],
    sensitivity: overall.sensitivity.map(r3),
    cpm: r3(overall.cpm),
  },
  byType: Object.fromEntries(
    Object.entries(byType).map((
      [k, v],
    ) => [k, { nodules: v.nodules, sensitivity: v.sensitivity.map(r3), cpm: r3(v.cpm) }]),
  ),
  bySize: Object.fromEntries(
    Object.entries(bySize).map((
      [k, v],
    ) => [k, { nodules: v.nodules, sensitivity: v.sensitivity.map(r3), cpm: r3(v.cpm) }]),
  ),
  operatingPoint: {
    threshold,
    sensitivity: r3(nodules.length ? hitSet.size / nodules.length : NaN),
    falseFindingsPerScan: r3(reported.filter(falseOf).length / scans.length),
    falseFindingsPerNoduleFreeScan: {
      mean: r3(fpPerFreeScan.reduce((a, b) => a + b, 0) / Math.max(1, free.length)),
      max: Math.max(0, ...fpPerFreeScan),
    },
    maxFalseFindingsInAScan: Math.max(
      0,
      ...scans.map((_, i) => reported.filter((s) => s.scan === i && falseOf(s)).length),
    ),
    nodulesOver30mm: reported.filter((s) => s.kind === "nodule" && s.longAxisMm > 30).length,
  },
  bySource: Object.fromEntries(
    (["segmentation", "candidates"] as const).map((source) => {
      const mine = reported.filter((s) => s.source === source);
      return [source, {
        reported: mine.length,
        nodulesHit: new Set(mine.filter((s) => s.hit !== null && s.hit >= 0).map((s) => s.hit))
          .size,
        false: mine.filter(falseOf).length,
      }];
    }),
  ),
  allCandidatesNodulesOver30mm: bigNodules,
  massesCalledMass: `${massesCalledMass}/${massesTotal}`,
  nodulesOnlyCalledMass: nodulesCalledMass,
  segmentation: {
    matchedNodules: matched.length,
    diceMean: dices.length ? r3(dices.reduce((a, b) => a + b, 0) / dices.length) : null,
    diceMedian: r3(median(dices)),
    volumeErrorMedianPercent: Math.round(median(volErr) * 10) / 10,
  },
  cpuSecondsPer100Slices: Math.round((msTotal / slicesTotal) * 100) / 1000,
  // The FROC curve (every nodule hit or false finding added below a threshold), for choosing one.
  curve: overall.points.filter((p, i, all) =>
    i === all.length - 1 || p.sensitivity !== all[i + 1].sensitivity ||
    Math.floor(p.fpRate * 8) !== Math.floor(all[i + 1].fpRate * 8)
  ).map((p) => ({
    threshold: Math.round(p.threshold * 1e4) / 1e4,
    falsePerScan: r3(p.fpRate),
    sensitivity: r3(p.sensitivity),
  })),
  ...(calibration ? { calibration } : {}),
};
console.log(JSON.stringify(result, null, 2));
if (jsonOut) await Deno.writeTextFile(jsonOut, JSON.stringify(result, null, 2) + "\n");
