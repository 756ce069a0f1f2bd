/**
 * @module Runs the shipped lung-nodule demo model through the sidecar's own code path (volume
 * assembly, preprocessing, ONNX Runtime, post-processing) on synthetic studies on disk and scores
 * the findings against each study's truth.json the way `evaluate.py` does, so the Python figures
 * can be checked against what the service really computes.
 *
 *   deno run -A sidecar/train/sidecar_check.ts [DIR] [--limit N] [--profile standard]
 *
 * DIR (default sidecar/train/.data/raw/test) holds one folder per study: NNNN.dcm + truth.json.
 */

import { predictVolume } from "../analysis.ts";
import { loadModel, resolveSettings } from "../manifest.ts";
import { createRunner } from "../onnx_runner.ts";
import { segment } from "../postprocess.ts";
import { createVolumeBuilder } from "../volume.ts";
import type { Profile } from "../../queue/jobs.ts";
import {
  columnX,
  ellipseRows,
  ellipseRowSpan,
  type Geometry,
  rowY,
  sliceZ,
} from "../../dicom/synth/geometry.ts";
import { lesionCrossSection, type LesionSpec } from "../../dicom/synth/lesions.ts";

interface Lesion {
  id: number;
  radiusMm: number;
  centerVoxel: { column: number; row: number; slice: number };
}

const args = [...Deno.args];
const flag = (name: string, fallback: string): string => {
  const i = args.indexOf(`--${name}`);
  return i < 0 ? fallback : args.splice(i, 2)[1];
};
const limit = Number(flag("limit", "0"));
const profile = flag("profile", "standard") as Profile;
const root = args[0] ?? "sidecar/train/.data/raw/test";

const modelDir = new URL("../models/lung-nodule-demo-v1", import.meta.url).pathname;
const model = await loadModel(modelDir);
const runner = await createRunner(model.modelPath, ["cpu"]);
const settings = resolveSettings(model.manifest, profile, undefined);

const dirs: string[] = [];
for await (const e of Deno.readDir(root)) if (e.isDirectory) dirs.push(`${root}/${e.name}`);
dirs.sort();
let withLesions = 0;
let lesions = 0, found = 0, falsePositives = 0, studies = 0, ms = 0, diceSum = 0;
for (const dir of limit ? dirs.slice(0, limit) : dirs) {
  const builder = createVolumeBuilder();
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) if (e.name.endsWith(".dcm")) names.push(e.name);
  for (const name of names.sort()) builder.add(await Deno.readFile(`${dir}/${name}`));
  const volume = builder.finish();
  const truth = JSON.parse(await Deno.readTextFile(`${dir}/truth.json`)) as {
    seed: number;
    geometry: {
      rows: number;
      cols: number;
      slices: number;
      pixelSpacingMm: number;
      sliceSpacingMm: number;
      firstImagePositionPatient: number[];
    };
    lesions: Lesion[];
  };
  const started = performance.now();
  const probability = await predictVolume(volume, { manifest: model.manifest, runner }, settings);
  const seg = segment(probability, volume, settings);
  ms += performance.now() - started;
  // The synthetic series runs head to feet; the volume may be stacked either way.
  const flipped = volume.origin[2] !== truth.geometry.firstImagePositionPatient[2];
  const sp = volume.spacing;
  const used = new Set<number>();
  let hits = 0;
  for (const l of truth.lesions) {
    const k = flipped ? volume.dims.z - 1 - l.centerVoxel.slice : l.centerVoxel.slice;
    const match = seg.findings.filter((f) => {
      const [i, j, kk] = f.centreVoxel;
      const d = Math.hypot(
        (i - l.centerVoxel.column) * sp.x,
        (j - l.centerVoxel.row) * sp.y,
        (kk - k) * sp.z,
      );
      return d <= l.radiusMm;
    });
    for (const f of match) used.add(f.number);
    if (match.length) hits++;
  }
  const fps = seg.findings.filter((f) => !used.has(f.number)).length;
  const truthMask = rasterise(truth.geometry, truth.lesions);
  const plane = volume.dims.x * volume.dims.y;
  let both = 0, predicted = 0, actual = 0;
  for (let k = 0; k < volume.dims.z; k++) {
    const t = flipped ? volume.dims.z - 1 - k : k;
    for (let i = 0; i < plane; i++) {
      const p = seg.mask[k * plane + i] > 0, a = truthMask[t * plane + i] === 1;
      if (p) predicted++;
      if (a) actual++;
      if (p && a) both++;
    }
  }
  const dice = predicted + actual ? (2 * both) / (predicted + actual) : 1;
  if (truth.lesions.length) diceSum += dice;
  lesions += truth.lesions.length;
  found += hits;
  falsePositives += fps;
  studies++;
  if (truth.lesions.length) withLesions++;
  console.log(
    `seed ${truth.seed}: ${hits}/${truth.lesions.length} found, ${fps} FP, ` +
      `${seg.findings.length} findings, Dice ${dice.toFixed(3)}`,
  );
}
await runner.close();
console.log(JSON.stringify({
  profile,
  provider: runner.provider,
  studies,
  lesions,
  sensitivity: lesions ? found / lesions : null,
  falsePositivesPerStudy: studies ? falsePositives / studies : null,
  dice: withLesions ? Math.round((diceSum / withLesions) * 1e4) / 1e4 : null,
  msPerStudy: studies ? Math.round(ms / studies) : null,
}));

/** The lesions' voxels on the series grid, by the generator's own rule (`dicom/synth`). */
function rasterise(
  g: {
    rows: number;
    cols: number;
    slices: number;
    pixelSpacingMm: number;
    sliceSpacingMm: number;
    firstImagePositionPatient: number[];
  },
  lesions: Lesion[],
): Uint8Array {
  const [ox, oy, oz] = g.firstImagePositionPatient;
  const geometry: Geometry = {
    rows: g.rows,
    cols: g.cols,
    slices: g.slices,
    pixelSpacing: g.pixelSpacingMm,
    sliceSpacing: g.sliceSpacingMm,
    origin: [ox, oy, oz],
  };
  const mask = new Uint8Array(g.rows * g.cols * g.slices);
  for (const l of lesions) {
    const c = l.centerVoxel;
    const spec: LesionSpec = {
      id: l.id,
      lung: "right",
      column: c.column,
      row: c.row,
      slice: c.slice,
      x: columnX(geometry, c.column),
      y: rowY(geometry, c.row),
      z: sliceZ(geometry, c.slice),
      radiusMm: l.radiusMm,
      hu: 0,
    };
    for (let s = 0; s < g.slices; s++) {
      const e = lesionCrossSection(spec, sliceZ(geometry, s));
      const rows = e && ellipseRows(geometry, e);
      if (!e || !rows) continue;
      for (let row = rows[0]; row <= rows[1]; row++) {
        const span = ellipseRowSpan(geometry, e, row);
        const at = (s * g.rows + row) * g.cols;
        if (span) mask.fill(1, at + span[0], at + span[1] + 1);
      }
    }
  }
  return mask;
}
