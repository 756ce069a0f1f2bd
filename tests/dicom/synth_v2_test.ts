/**
 * @module Tests of `dicom/synth/v2` (the realistic chest generator): instances are read back with
 * dicom-parser, masks with `dicom/nifti.ts` and node:zlib — independent of the writers — for the
 * grid geometry, reproducible bytes, lungs (two components, both present, vessels inside),
 * nodules (inside the lungs, ground glass hazy), masses, thick slices, the NIfTI affine, and the
 * v2 flags of the CLI. Small matrices and thick slices keep it quick.
 */

import assert from "node:assert/strict";
import { gunzipSync } from "node:zlib";
import dicomParser from "dicom-parser";
import { parseNiftiHeader } from "../../dicom/codec/nifti.ts";
import { parseSynthArgs } from "../../dicom/synth/cli_args.ts";
import { isValidUid } from "../../dicom/synth/rng.ts";
import { runSynth } from "../../dicom/synth/run.ts";
import {
  generateStudyV2,
  planStudyV2,
  streamStudyV2,
  type SynthStudyV2,
  type SynthV2Options,
} from "../../dicom/synth/v2/ct.ts";

type DataSet = ReturnType<typeof dicomParser.parseDicom>;

const BASE: SynthV2Options = { seed: 5, matrix: 112, pixelSpacingMm: 3.6, thicknessMm: 5 };
const cache = new Map<string, SynthStudyV2>();
/** A study of `opts`, generated once per test run. */
function study(opts: SynthV2Options): SynthStudyV2 {
  const key = JSON.stringify(opts);
  if (!cache.has(key)) cache.set(key, generateStudyV2(opts));
  return cache.get(key)!;
}
const parse = (bytes: Uint8Array): DataSet => dicomParser.parseDicom(bytes);

/** HU of every voxel of an instance (stored × slope + intercept). */
function huOf(bytes: Uint8Array): Float64Array {
  const ds = parse(bytes), el = ds.elements.x7fe00010;
  const raw = ds.byteArray.slice(el.dataOffset, el.dataOffset + el.length);
  const stored = new Int16Array(raw.buffer, raw.byteOffset, el.length / 2);
  const slope = ds.floatString("x00281053") ?? 1, intercept = ds.floatString("x00281052") ?? 0;
  return Float64Array.from(stored, (v) => v * slope + intercept);
}

/** Slice index of patient z in a study. */
const sliceOf = (s: SynthStudyV2, z: number): number =>
  Math.round((s.plan.geometry.origin[2] - z) / s.plan.geometry.sliceSpacing);

/** Sizes of the 6-connected components of the non-zero voxels, largest first, with their labels. */
function components(vol: Uint8Array, nx: number, ny: number, nz: number) {
  const seen = new Uint8Array(vol.length), out: { size: number; labels: Set<number> }[] = [];
  for (let i = 0; i < vol.length; i++) {
    if (!vol[i] || seen[i]) continue;
    const stack = [i], labels = new Set<number>();
    let size = 0;
    seen[i] = 1;
    while (stack.length) {
      const p = stack.pop()!, x = p % nx, y = Math.floor(p / nx) % ny, z = Math.floor(p / nx / ny);
      size++;
      labels.add(vol[p]);
      const next = [
        x > 0 ? p - 1 : -1,
        x < nx - 1 ? p + 1 : -1,
        y > 0 ? p - nx : -1,
        y < ny - 1 ? p + nx : -1,
        z > 0 ? p - nx * ny : -1,
        z < nz - 1 ? p + nx * ny : -1,
      ];
      for (const q of next) if (q >= 0 && vol[q] && !seen[q]) (seen[q] = 1), stack.push(q);
    }
    out.push({ size, labels });
  }
  return out.sort((a, b) => b.size - a.size);
}

Deno.test("generateStudyV2() writes CT images on the requested grid", () => {
  const s = study(BASE), g = s.plan.geometry, t = s.truth;
  assert.equal(s.instances.length, g.slices);
  assert.equal(t.version, 2);
  assert.deepEqual([g.rows, g.cols, g.pixelSpacing, g.sliceSpacing], [112, 112, 3.6, 5]);
  const length = t.landmarks.rightApexZMm - t.landmarks.rightDomeZMm;
  assert.ok(length > 150 && (g.slices - 1) * 5 >= length, "the scan spans apices to domes");
  const sops = new Set<string>();
  let previousZ = NaN;
  s.instances.forEach((bytes, i) => {
    const ds = parse(bytes), str = (tag: string) => ds.string(tag);
    assert.equal(str("x00080016"), "1.2.840.10008.5.1.4.1.1.2");
    assert.equal(str("x00080018"), t.sopInstanceUids[i]);
    assert.ok(isValidUid(str("x00080018")!));
    sops.add(str("x00080018")!);
    assert.equal(str("x0020000d"), t.study.studyInstanceUid);
    assert.equal(ds.intString("x00200013"), i + 1);
    assert.equal(ds.uint16("x00280010"), 112);
    assert.equal(ds.uint16("x00280011"), 112);
    assert.deepEqual([ds.floatString("x00280030", 0), ds.floatString("x00280030", 1)], [3.6, 3.6]);
    assert.equal(ds.floatString("x00180050"), 5, "SliceThickness");
    assert.equal(ds.floatString("x00180088"), 5, "SpacingBetweenSlices");
    assert.equal(str("x00200037"), "1\\0\\0\\0\\1\\0");
    assert.equal(ds.floatString("x00281052"), -1024);
    assert.equal(str("x00181020"), "dicom/synth 2");
    const ipp = [0, 1, 2].map((k) => ds.floatString("x00200032", k)!);
    assert.deepEqual(ipp.slice(0, 2), t.geometry.firstImagePositionPatient.slice(0, 2));
    if (i === 0) assert.deepEqual(ipp, t.geometry.firstImagePositionPatient);
    else assert.ok(Math.abs(previousZ - ipp[2] - 5) < 1e-3, `z step at ${i}`);
    previousZ = ipp[2];
  });
  assert.equal(sops.size, g.slices);
  // Air in the corner, a body in the middle.
  const mid = huOf(s.instances[sliceOf(s, t.landmarks.carinaZMm)]);
  assert.ok(Math.abs(mid[0] + 1000) < 100, `corner ${mid[0]}`);
  const column = Math.round(-g.origin[0] / g.pixelSpacing);
  const spine = Array.from({ length: 40 }, (_, r) => mid[(56 + r) * 112 + column]);
  assert.ok(Math.max(...spine) > 250, "the spine behind the centre");
});

Deno.test("generateStudyV2() is reproducible per seed and differs across seeds", () => {
  const a = study(BASE), b = generateStudyV2(BASE);
  a.instances.forEach((bytes, i) => assert.deepEqual(b.instances[i], bytes, `slice ${i}`));
  assert.deepEqual(b.truth, a.truth);
  assert.deepEqual(b.masks.lungs, a.masks.lungs);
  assert.deepEqual(b.masks.nodules, a.masks.nodules);
  const c = planStudyV2({ ...BASE, seed: 6 });
  assert.notEqual(c.study.studyInstanceUid, a.study.studyInstanceUid);
  assert.notDeepEqual(c.scene.an, a.plan.scene.an);
  // Another scanner setting of the same seed: the same patient and lesions, another study.
  const d = planStudyV2({ ...BASE, thicknessMm: 2.5 });
  assert.notEqual(d.study.studyInstanceUid, a.study.studyInstanceUid);
  const far = (p: number[], q: number[]) => Math.hypot(p[0] - q[0], p[1] - q[1], p[2] - q[2]);
  d.lesions.forEach((l, i) => assert.ok(far(l.spec.c, a.plan.lesions[i].spec.c) < 4.5));
  assert.equal(d.lesions.length, a.plan.lesions.length);
});

Deno.test("the lung mask holds two lungs: right on the image left, both on mid slices", () => {
  for (const seed of [5, 11, 12]) {
    const s = study({ ...BASE, seed }), g = s.plan.geometry, n = g.rows * g.cols;
    const lungs = s.masks.lungLabels;
    const comps = components(lungs, g.cols, g.rows, g.slices);
    assert.equal(comps.length, 2, `seed ${seed}: ${comps.map((c) => c.size).join(", ")}`);
    assert.deepEqual(comps.map((c) => [...c.labels].sort()).sort(), [[1], [2]]);
    const lm = s.truth.landmarks;
    for (const z of [lm.carinaZMm + 20, lm.carinaZMm - 30, lm.carinaZMm - 70]) {
      const k = sliceOf(s, z), cols = [0, 0, 0], count = [0, 0, 0];
      for (let p = 0; p < n; p++) {
        const v = lungs[k * n + p];
        if (v) (cols[v] += p % g.cols), count[v]++;
      }
      assert.ok(count[1] > 80 && count[2] > 60, `seed ${seed} z ${z}: ${count}`);
      assert.ok(cols[1] / count[1] < g.cols / 2 && cols[2] / count[2] > g.cols / 2);
      assert.ok(count[1] > 0.6 * count[2], "right lung not much smaller than the left");
    }
  }
});

Deno.test("vessels run inside the lungs; lung parenchyma has lung density", () => {
  const s = study({ seed: 7, matrix: 160, pixelSpacingMm: 2.5, thicknessMm: 2.5, nodules: 0 });
  const g = s.plan.geometry, n = g.rows * g.cols, lm = s.truth.landmarks;
  let lung = 0, dense = 0, sum = 0;
  for (let k = sliceOf(s, lm.carinaZMm + 10); k <= sliceOf(s, lm.carinaZMm - 60); k++) {
    const hu = huOf(s.instances[k]);
    for (let p = 0; p < n; p++) {
      if (!s.masks.lungLabels[k * n + p]) continue;
      lung++;
      sum += hu[p];
      if (hu[p] > -300) dense++;
    }
  }
  const fraction = dense / lung, mean = sum / lung;
  assert.ok(fraction > 0.02 && fraction < 0.25, `dense fraction ${fraction}`);
  assert.ok(mean > -900 && mean < -650, `mean lung HU ${mean}`);
  assert.ok(s.plan.scene.trees!.branches > 2000, "branching trees");
});

Deno.test("nodules lie inside the lungs and their truth is consistent", () => {
  const s = study({ seed: 21, matrix: 128, pixelSpacingMm: 3, thicknessMm: 2.5, nodules: 6 });
  const g = s.plan.geometry, n = g.rows * g.cols, t = s.truth;
  assert.equal(t.nodules.length, 6);
  assert.equal(t.masses.length, 0);
  const lungs = s.masks.lungLabels, labels = s.masks.noduleLabels;
  for (const l of t.nodules) {
    const { column, row, slice } = l.centerVoxel;
    assert.equal(lungs[slice * n + row * g.cols + column], l.lung === "right" ? 1 : 2, `${l.id}`);
    assert.ok(l.lobe.startsWith(l.lung === "right" ? "R" : "L"));
    assert.ok(l.diameterMm > 1.5 && l.diameterMm <= l.requestedDiameterMm + 0.1, `${l.id}`);
    assert.ok(l.voxelCount > 0, `nodule ${l.id} (${l.diameterMm} mm) has voxels`);
    assert.ok(l.longAxisMm >= l.shortAxisMm && l.shortAxisMm > 0);
    if (l.diameterMm >= 10) {
      assert.ok(Math.abs(l.voxelVolumeMm3 / l.volumeMm3 - 1) < 0.35, `volume of ${l.id}`);
      assert.ok(l.longAxisMm > 0.7 * l.diameterMm, `long axis of ${l.id}`);
    }
    assert.equal(l.centerSopInstanceUid, t.sopInstanceUids[slice]);
  }
  let inside = 0, outside = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i]) lungs[i] ? inside++ : outside++;
  assert.ok(inside > 0 && outside <= 0.01 * inside, `${outside} nodule voxels outside the lungs`);
  const kinds = new Set(t.nodules.map((l) => l.attachment));
  assert.ok(kinds.size >= 2, `attachments ${[...kinds]}`);
});

Deno.test("ground-glass nodules are hazy, solid ones dense", () => {
  const gg = study({
    seed: 31,
    matrix: 128,
    pixelSpacingMm: 3,
    thicknessMm: 2.5,
    nodules: 4,
    noduleTypes: ["ground-glass"],
    noduleDiameterMm: [10, 24],
  }).truth;
  assert.equal(gg.nodules.length, 4);
  for (const l of gg.nodules) {
    assert.equal(l.type, "ground-glass");
    assert.ok(l.meanHu > -750 && l.meanHu < -250, `ground glass ${l.id}: ${l.meanHu} HU`);
  }
  const solid = study({
    seed: 32,
    matrix: 128,
    pixelSpacingMm: 3,
    thicknessMm: 2.5,
    nodules: 3,
    noduleTypes: ["solid"],
    noduleDiameterMm: [12, 24],
  }).truth;
  for (const l of solid.nodules) assert.ok(l.meanHu > -300, `solid ${l.id}: ${l.meanHu} HU`);
});

Deno.test("nodules: 0 gives none; mass gives one mass over 30 mm", () => {
  const none = study({ ...BASE, seed: 41, nodules: 0 });
  assert.deepEqual([none.truth.nodules.length, none.truth.masses.length], [0, 0]);
  assert.ok(none.masks.noduleLabels.every((v) => v === 0));
  const s = study({ ...BASE, seed: 42, nodules: 0, mass: 45 }), m = s.truth.masses;
  assert.equal(m.length, 1);
  assert.equal(m[0].label, 101);
  assert.ok(m[0].diameterMm > 30 && m[0].longAxisMm > 30, `mass ${m[0].diameterMm} mm`);
  const labels = new Set(s.masks.noduleLabels);
  assert.deepEqual([...labels].sort((a, b) => a - b), [0, 101]);
  const seeded = planStudyV2({ ...BASE, seed: 43, mass: true }).lesions;
  const mass = seeded.filter((l) => l.spec.kind === "mass");
  assert.ok(mass.length === 1 && mass[0].spec.diameter >= 35 && mass[0].spec.diameter <= 60);
});

Deno.test("thick slices cover the same z range with fewer slices", () => {
  const thin = planStudyV2({ ...BASE, thicknessMm: 1.25 }), thick = planStudyV2(BASE);
  const span = (
    g: typeof thin.geometry,
  ) => [g.origin[2], g.origin[2] - (g.slices - 1) * g.sliceSpacing];
  assert.ok(thick.geometry.slices < thin.geometry.slices / 3.5);
  const [a0, a1] = span(thin.geometry), [b0, b1] = span(thick.geometry);
  assert.equal(a0, b0);
  assert.ok(Math.abs(a1 - b1) < 5, `${a1} vs ${b1}`);
  assert.deepEqual([thin.scanner.subSamples, thick.scanner.subSamples], [1, 5]);
});

Deno.test("the masks are NIfTI-1 files whose affine maps voxels onto the DICOM grid", () => {
  const s = study(BASE), g = s.plan.geometry, [ox, oy, oz] = g.origin;
  for (
    const [file, raw] of [[s.masks.lungs, s.masks.lungLabels], [
      s.masks.nodules,
      s.masks.noduleLabels,
    ]]
  ) {
    const h = parseNiftiHeader(file);
    assert.equal(h.version, 1);
    assert.deepEqual(h.dims, [g.cols, g.rows, g.slices]);
    assert.equal(h.datatype, "uint8");
    assert.equal(h.voxOffset, 352);
    assert.deepEqual(h.pixdim.slice(1, 3).map((v) => +v.toFixed(4)), [3.6, 5]);
    assert.equal(h.sformCode, 1);
    const map = (i: number, j: number, k: number) =>
      h.srow!.map((r) => r[0] * i + r[1] * j + r[2] * k + r[3]);
    const near = (a: number[], b: number[]) => a.every((v, i) => Math.abs(v - b[i]) < 1e-3);
    assert.ok(near(map(0, 0, 0), [-ox, -oy, oz]), `${map(0, 0, 0)}`);
    assert.ok(near(map(3, 5, 7), [-(ox + 3 * 3.6), -(oy + 5 * 3.6), oz - 7 * 5]));
    const bytes = new Uint8Array(gunzipSync(file));
    assert.equal(new DataView(bytes.buffer).getInt32(0, true), 348);
    assert.deepEqual(bytes.subarray(348, 352), new Uint8Array(4));
    assert.equal(bytes.length, 352 + raw.length);
    assert.deepEqual(bytes.subarray(352), raw);
  }
});

Deno.test("parseSynthArgs() reads the v2 flags and keeps v1 command lines working", () => {
  const d = parseSynthArgs([]);
  assert.equal(d.generator, "v2");
  const a = parseSynthArgs([
    "--thickness",
    "2.5",
    "--matrix=384",
    "--pixel-spacing",
    "0.8",
    "--noise",
    "25",
    "--nodules",
    "3",
    "--mass",
  ]);
  assert.deepEqual(
    [a.thickness, a.matrix, a.pixelSpacing, a.noise, a.nodules, a.mass],
    [2.5, 384, 0.8, 25, 3, true],
  );
  assert.equal(parseSynthArgs(["--mass", "45", "--seed", "3"]).mass, 45);
  assert.equal(parseSynthArgs(["--mass=50"]).mass, 50);
  assert.equal(parseSynthArgs(["--size", "256"]).matrix, 256);
  assert.equal(parseSynthArgs(["--slices", "20"]).generator, "v1");
  assert.equal(parseSynthArgs(["--generator", "v1"]).generator, "v1");
  for (
    const bad of [
      ["--generator", "v3"],
      ["--generator", "v2", "--slices", "20"],
      ["--generator", "v1", "--thickness", "2"],
      ["--nodules", "9"],
      ["--mass", "20"],
      ["--thickness", "x"],
      ["--slices", "20", "--nodules", "2"],
    ]
  ) {
    assert.throws(() => parseSynthArgs(bad), Error, bad.join(" "));
  }
});

Deno.test("runSynth() with v2 writes the instances, truth.json and both masks", async () => {
  const out = await Deno.makeTempDir({ prefix: "synth_v2_test_" });
  try {
    const lines: string[] = [];
    const args = parseSynthArgs([
      "--out",
      out,
      "--matrix",
      "64",
      "--pixel-spacing",
      "5",
      "--thickness",
      "10",
      "--nodules",
      "1",
      "--seed",
      "9",
    ]);
    const summary = await runSynth(args, (l) => lines.push(l));
    const dir = `${out}/${summary.studyInstanceUids[0]}`;
    const truth = JSON.parse(await Deno.readTextFile(`${dir}/truth.json`));
    assert.equal(truth.version, 2);
    assert.equal(summary.instances, truth.geometry.slices);
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.equal(names.filter((n) => /^\d{4}\.dcm$/.test(n)).length, truth.geometry.slices);
    for (const name of ["lungs.nii.gz", "nodules.nii.gz"]) {
      const h = parseNiftiHeader(await Deno.readFile(`${dir}/${name}`));
      assert.deepEqual(h.dims, [64, 64, truth.geometry.slices]);
    }
    assert.ok(lines.some((l) => / nodules: \d/.test(l)), lines.join("\n"));
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("seeded scanner settings stay in range and the body fits the field of view", () => {
  for (const seed of [1, 2, 3, 4]) {
    const p = planStudyV2({ seed }), sc = p.scanner, g = p.geometry, an = p.scene.an;
    assert.ok([256, 384, 512].includes(sc.matrix));
    assert.ok(sc.thicknessMm >= 0.625 && sc.thicknessMm <= 5);
    assert.ok(sc.pixelSpacingMm >= 0.5 && sc.pixelSpacingMm <= 1.5, `${sc.pixelSpacingMm}`);
    assert.ok(sc.noiseHu >= 10 && sc.noiseHu <= 60 && sc.blurMm >= 0.4 && sc.blurMm <= 1);
    assert.ok(g.cols * g.pixelSpacing > 2 * an.bodyW, "the body fits");
    const length = (g.slices - 1) * g.sliceSpacing;
    assert.ok(length >= 245 && length <= 335, `z range ${length}`);
    assert.ok(p.lesionOptions.nodules >= 0 && p.lesionOptions.nodules <= 8);
  }
});

Deno.test("streamStudyV2() renders 512×512 slices quickly", () => {
  const started = performance.now();
  const s = streamStudyV2({ seed: 3, matrix: 512, thicknessMm: 1.25, nodules: 2 });
  let n = 0;
  for (const _ of s.instances) if (++n === 20) break;
  const seconds = (performance.now() - started) / 1000;
  console.log(`512×512 v2: plan + 20 slices in ${seconds.toFixed(2)} s`);
  assert.ok(seconds < 10, `${seconds} s`);
});
