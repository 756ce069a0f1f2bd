/**
 * @module Training data for the candidate classifier: every study of the given folders (generator
 * v2 or v1: DICOM + truth.json) is loaded as the sidecar loads it (the model's sampler), its lung
 * mask made and its candidates found (`sidecar/nodules/candidates.ts`), and each candidate's
 * patch written with its label: 1 when its centre lies within the radius of a nodule or mass of
 * the truth (LUNA16's rule), 0 when it lies farther than the radius + `--margin` mm from every
 * one, left out between. `--jitter N` adds N patches per nodule around its true centre (±1.5 mm),
 * so that small nodules the detector misses still teach the classifier.
 *
 *   deno run -A sidecar/train/v2/candidates_dump.ts DIR [DIR ...] --out FILE_PREFIX
 *     [--model lung-nodule-demo] [--jitter 0] [--margin 3]
 *
 * Writes FILE_PREFIX.u8 (patches, uint8 0…255 of the 0…1 input, `size`³ each) and
 * FILE_PREFIX.json (one entry per patch: scan, label, the candidate's measures, the nodule's size
 * and type; and per scan its nodules and how many the detector reached).
 */
import { loadModel } from "../../manifest.ts";
import { modelSampler } from "../../preprocess.ts";
import { createVolumeBuilder, type Volume } from "../../volume.ts";
import { lungMask } from "../../anatomy/lung_mask.ts";
import { valueVolume } from "../../nodules/lung_stage.ts";
import {
  DEFAULT_CANDIDATE_OPTIONS,
  findCandidates,
  isoVolume,
  patch,
} from "../../nodules/candidates.ts";
import { isoToPatient, patientToIso } from "../../nodules/candidate_stage.ts";

const args = [...Deno.args];
const flag = (name: string, fallback: string): string => {
  const i = args.indexOf(`--${name}`);
  return i < 0 ? fallback : args.splice(i, 2)[1];
};
const modelName = flag("model", "lung-nodule-demo");
const out = flag("out", "");
const jitter = Number(flag("jitter", "0"));
const margin = Number(flag("margin", "3"));
const size = Number(flag("size", "24"));
if (!out || !args.length) throw new Error("usage: candidates_dump.ts DIR [DIR ...] --out PREFIX");
const modelsDir = new URL("../../models", import.meta.url).pathname;
const { manifest } = await loadModel(`${modelsDir}/${modelName}`);
const sampler = modelSampler(manifest);
const options = {
  ...DEFAULT_CANDIDATE_OPTIONS,
  ...JSON.parse(flag("options", "{}")),
};

const dirs: string[] = [];
for (const r of args) {
  const found: string[] = [];
  for await (const e of Deno.readDir(r)) {
    if (e.isDirectory || e.isSymlink) found.push(`${r}/${e.name}`);
  }
  dirs.push(...found.sort());
}
const file = await Deno.open(`${out}.u8`, { write: true, create: true, truncate: true });
const entries: Record<string, unknown>[] = [];
const scans: Record<string, unknown>[] = [];
const buffer = new Float32Array(size ** 3);
const bytes = new Uint8Array(size ** 3);
let seed = 1;
const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
const write = async (p: Float32Array) => {
  for (let i = 0; i < p.length; i++) bytes[i] = Math.round(p[i] * 255);
  let n = 0;
  while (n < bytes.length) n += await file.write(bytes.subarray(n));
};

for (const [scan, dir] of dirs.entries()) {
  const started = performance.now();
  const truth = JSON.parse(await Deno.readTextFile(`${dir}/truth.json`));
  const targets = [
    ...(truth.nodules ?? []).map((n: Record<string, unknown>) => ({ ...n, mass: false })),
    ...(truth.masses ?? []).map((n: Record<string, unknown>) => ({ ...n, mass: true })),
    ...(truth.lesions ?? []).map((n: Record<string, unknown>) => ({ ...n, mass: false })),
  ].map((n) => {
    const c = (n.centerMm ?? n.centreMm ?? n.center) as Record<string, number> | number[];
    const centre = Array.isArray(c) ? c : [c.x, c.y, c.z];
    const d = Number(n.diameterMm ?? n.equivalentDiameterMm ?? Number(n.radiusMm) * 2);
    return { centre, diameterMm: d, type: String(n.type ?? "solid"), mass: n.mass || d > 30 };
  });
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) if (e.name.endsWith(".dcm")) names.push(e.name);
  const builder = createVolumeBuilder({ sampler });
  for (const name of names.sort()) builder.add(await Deno.readFile(`${dir}/${name}`));
  const volume: Volume = builder.finish();
  const values = valueVolume(volume, manifest);
  const lung = lungMask(values);
  const iso = isoVolume(values, lung, options);
  if (!iso) {
    scans.push({ scan, dir, nodules: targets.length, reached: 0, candidates: 0, noLungs: true });
    continue;
  }
  const candidates = findCandidates(iso, options);
  const reached = new Set<number>();
  for (const c of candidates) {
    const p = isoToPatient(iso, values, volume, c.iso);
    let label = 0, hit = -1, nearest = Infinity;
    targets.forEach((t, i) => {
      const d = Math.hypot(p[0] - t.centre[0], p[1] - t.centre[1], p[2] - t.centre[2]);
      const r = t.diameterMm / 2;
      if (d <= r && (hit < 0 || d < nearest)) [hit, nearest] = [i, d];
      else if (d <= r + margin) label = -1;
    });
    if (hit >= 0) {
      label = 1;
      reached.add(hit);
    }
    if (label < 0) continue;
    await write(patch(iso, c.iso, size, buffer));
    const t = hit >= 0 ? targets[hit] : undefined;
    entries.push({
      scan,
      label,
      source: "candidate",
      scaleMm: c.scaleMm,
      responseHu: Math.round(c.responseHu * 10) / 10,
      centreHu: Math.round(c.centreHu),
      blobness: Math.round(c.blobness * 1000) / 1000,
      ...(t ? { diameterMm: t.diameterMm, type: t.type, mass: t.mass } : {}),
    });
  }
  for (const t of targets) {
    const at = patientToIso(iso, values, volume, t.centre as [number, number, number]);
    for (let j = 0; j < jitter; j++) {
      const r = 1.5 / iso.mm;
      const a: [number, number, number] = [
        at[0] + (random() * 2 - 1) * r,
        at[1] + (random() * 2 - 1) * r,
        at[2] + (random() * 2 - 1) * r,
      ];
      await write(patch(iso, a, size, buffer));
      entries.push({
        scan,
        label: 1,
        source: "truth",
        diameterMm: t.diameterMm,
        type: t.type,
        mass: t.mass,
      });
    }
  }
  const missed = targets.filter((t, i) => !reached.has(i) && !t.mass).map((t) => ({
    diameterMm: t.diameterMm,
    type: t.type,
  }));
  scans.push({
    scan,
    dir,
    nodules: targets.filter((t) => !t.mass).length,
    reached: [...reached].filter((i) => !targets[i].mass).length,
    candidates: candidates.length,
    missed,
    seconds: Math.round(performance.now() - started) / 1000,
  });
  console.log(
    `${dir}: ${candidates.length} candidates, ${reached.size}/${targets.length} lesions reached, ` +
      `${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
}
file.close();
await Deno.writeTextFile(
  `${out}.json`,
  JSON.stringify({ size, gridMm: options.gridMm, options, scans, entries }),
);
