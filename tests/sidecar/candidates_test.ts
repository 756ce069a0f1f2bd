/**
 * The candidate stage on the independent chest phantom (`_chest_phantom.ts`, not `dicom/synth`):
 * the classical detector finds the small nodules inside the lungs and on the pleura (3 to 12 mm,
 * solid and ground-glass) and nothing outside the lungs; the grid maps back to patient mm; a
 * classifier that accepts candidates is turned into measured findings by region growing; the
 * candidate stage's findings join the network's without duplicates; the manifest's candidate stage
 * is checked.
 */
import assert from "node:assert/strict";
import { chestPhantom, phantomGeometry, phantomValues, type Sphere } from "./_chest_phantom.ts";
import { lungMask } from "../../sidecar/anatomy/lung_mask.ts";
import {
  DEFAULT_CANDIDATE_OPTIONS,
  findCandidates,
  isoVolume,
  patch,
} from "../../sidecar/nodules/candidates.ts";
import {
  isoToPatient,
  patientToIso,
  runCandidateStage,
} from "../../sidecar/nodules/candidate_stage.ts";
import { platt } from "../../sidecar/nodules/assess.ts";
import { mergeAssessed, runLungStage } from "../../sidecar/nodules/lung_stage.ts";
import { segment } from "../../sidecar/postprocess.ts";
import { parseManifest } from "../../sidecar/manifest.ts";

const SMALL: Sphere[] = [
  { name: "solid 4 mm", c: [-70, 40, 60], r: 2 },
  { name: "solid 6 mm", c: [80, -40, 30], r: 3 },
  { name: "solid 10 mm", c: [-60, 20, -50], r: 5 },
  { name: "ground-glass 8 mm", c: [60, 50, 40], r: 4, hu: -500 },
  { name: "pleural 6 mm", c: [-130, 0, 0], r: 3 },
  // Outside the lungs.
  { name: "chest wall", c: [0, -100, 60], r: 4 },
  { name: "heart", c: [15, -20, -30], r: 4 },
  { name: "liver", c: [-40, 0, -120], r: 4 },
];
const OUTSIDE = new Set(["chest wall", "heart", "liver"]);

const valuesOf = phantomValues;
const geometryOf = phantomGeometry;

for (const grid of [{ sliceMm: 1.25, pixelMm: 1.4 }, { sliceMm: 2.5, pixelMm: 0.9 }]) {
  Deno.test(
    `candidates: small nodules found, nothing outside the lungs (${grid.sliceMm} mm slices, ${grid.pixelMm} mm pixels)`,
    () => {
      const size = Math.round(360 / grid.pixelMm);
      const p = chestPhantom({ ...grid, size, spheres: SMALL });
      const values = valuesOf(p);
      const g = geometryOf(p);
      const lung = lungMask(values);
      const iso = isoVolume(values, lung, { gridMm: 1.25, pleuraMm: 3 })!;
      assert.ok(iso);
      const found = findCandidates(iso);
      assert.ok(found.length > 0 && found.length <= 150, `${found.length}`);
      const centres = found.map((c) => isoToPatient(iso, values, g, c.iso));
      const near = (s: Sphere) =>
        centres.findIndex((c) => Math.hypot(...c.map((v, a) => v - s.c[a])) <= Math.max(2, s.r));
      for (const s of SMALL) {
        const n = near(s);
        if (OUTSIDE.has(s.name)) assert.equal(n, -1, `${s.name}: a candidate outside the lungs`);
        else {
          assert.ok(n >= 0, `${s.name} not among the candidates`);
          // Ranked above the vessels' straight stretches: among the first few.
          assert.ok(n < 12, `${s.name} ranked ${n}`);
        }
      }
      // The grid maps to patient mm and back.
      const q = patientToIso(iso, values, g, [-70, 40, 60]);
      const back = isoToPatient(iso, values, g, q);
      assert.ok(Math.hypot(back[0] + 70, back[1] - 40, back[2] - 60) < 1e-6, `${back}`);
      // A patch is centred: its middle voxel is the nodule's (bright), its corner lung (dark).
      const cube = patch(iso, q, 24);
      const mid = cube[11 * 576 + 11 * 24 + 11], corner = cube[0];
      assert.ok(mid > corner + 0.4, `${mid} vs ${corner}`);
    },
  );
}

Deno.test("candidate stage: accepted candidates become measured findings; calibration applied", async () => {
  const p = chestPhantom({ sliceMm: 1.25, pixelMm: 1.4, size: 256, spheres: SMALL });
  const values = valuesOf(p);
  const g = geometryOf(p);
  const lung = lungMask(values);
  // A classifier that accepts a patch whose centre voxel (index size/2 − 1 on each axis) is
  // brighter than −300 HU.
  const runner = {
    run(input: Float32Array, dims: readonly number[]) {
      const n = dims[0],
        cube = dims[2] * dims[3] * dims[4],
        mid = ((dims[2] >> 1) - 1) * (576 + 25);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        const hu = input[i * cube + mid] * 1400 - 1000;
        out[i] = hu > -300 ? 0.9 : 0.01;
      }
      return Promise.resolve({ data: out, dims: [n, 1] });
    },
  };
  const config = {
    ...DEFAULT_CANDIDATE_OPTIONS,
    file: "candidates.onnx",
    input: "patch",
    output: "probability",
    patch: 24,
    batch: 16,
    calibration: { slope: 1, intercept: -1 },
    minProbability: 0.5,
  };
  const found = await runCandidateStage(values, lung, g, config, runner);
  assert.ok(found.scored.length > 0);
  for (const c of found.scored) {
    assert.ok(Math.abs(c.probability - platt(c.score, config.calibration)) < 1e-9);
  }
  const solid10 = SMALL[2];
  const f = found.findings.find((f) =>
    Math.hypot(...f.centrePatient.map((v, a) => v - solid10.c[a])) < solid10.r
  );
  assert.ok(f, "the 10 mm nodule segmented");
  assert.equal(f!.source, "candidates");
  assert.ok(Math.abs(f!.longestDiameterMm - 10) <= 3, `${f!.longestDiameterMm}`);
  assert.ok(Math.abs(f!.probability! - platt(0.9, config.calibration)) < 1e-6);
  // Nothing accepted outside the lungs.
  for (const s of SMALL.filter((s) => OUTSIDE.has(s.name))) {
    assert.ok(
      !found.findings.some((f) => Math.hypot(...f.centrePatient.map((v, a) => v - s.c[a])) < 6),
      s.name,
    );
  }

  // Through the lung stage with a network that found only the 10 mm nodule: the candidates add
  // the others, the 10 mm one is reported once, and the numbers follow the probabilities.
  const probability = new Float32Array(p.tags.length);
  for (let i = 0; i < p.tags.length; i++) probability[i] = p.tags[i] === 2 + 2 ? 0.99 : 0;
  const seg = segment(probability, g, { threshold: 0.5, connectivity: 26, minVolumeMm3: 1 });
  const stage = await runLungStage(
    { ...g, data: p.hu, values: "modality", plane: { height: p.height, width: p.width } },
    { preprocessing: { window: { center: 0, width: 1 }, rescale: [0, 1] } },
    seg,
    undefined,
    { slope: 1, intercept: 0 },
    { config, runner },
  );
  const findings = stage.assessed.findings;
  const hits = (s: Sphere) =>
    findings.filter((f) => Math.hypot(...f.centrePatient.map((v, a) => v - s.c[a])) <= s.r + 1);
  assert.equal(hits(solid10).length, 1, "the 10 mm nodule once");
  // Solid in both: reported once, with the larger of the two segmentations (here the network's,
  // drawn from the phantom's own labels), measured.
  assert.ok(Math.abs(hits(solid10)[0].lung.measures.longAxisMm - 10) <= 3);
  for (const name of ["solid 6 mm", "pleural 6 mm"]) {
    const s = SMALL.find((s) => s.name === name)!;
    const why = stage.assessed.rejected.filter((r) =>
      Math.hypot(...r.finding.centrePatient.map((v, a) => v - s.c[a])) <= s.r + 3
    ).map((r) => `${r.reason} at ${r.finding.centrePatient.map(Math.round)}`);
    assert.equal(hits(s).length, 1, `${name}: ${why.join("; ")}`);
  }
  const ps = findings.map((f) => f.probability!);
  assert.deepEqual(ps, [...ps].sort((a, b) => b - a));
  assert.deepEqual(findings.map((f) => f.number), findings.map((_, i) => i + 1));
  const numbers = new Set<number>();
  for (let z = 0; z < p.depth; z++) {
    stage.assessed.maskSlice(z)?.forEach((v) => v && numbers.add(v));
  }
  assert.deepEqual([...numbers].sort((a, b) => a - b), findings.map((f) => f.number));
});

Deno.test("mergeAssessed: a candidate on a finding is merged into it; numbering and mask follow probability", () => {
  const finding = (n: number, x: number, probability: number, source?: "candidates") => ({
    ...(source ? { source } : {}),
    number: n,
    voxels: 1,
    volumeMm3: 1,
    centreVoxel: [x, 0, 0] as [number, number, number],
    centrePatient: [x * 10, 0, 0] as [number, number, number],
    boundingBox: {
      min: [x, 0, 0] as [number, number, number],
      max: [x, 0, 0] as [number, number, number],
    },
    longestDiameterMm: 4,
    maxProbability: probability,
    meanProbability: probability,
    probability,
    lung: {
      kind: "nodule" as const,
      lung: "right" as const,
      zone: "upper" as const,
      shellLung: 1,
      centreInLung: true,
      measures: {
        longAxisMm: 4,
        shortAxisMm: 4,
        meanDiameterMm: 4,
        axialSlice: 0,
        zExtentMm: 4,
        elongation: 1,
        flatness: 1,
        compactness: 0.5,
        meanHu: 0,
        solidFraction: 1,
        attenuation: "solid" as const,
      },
    },
  });
  const a = {
    findings: [finding(1, 0, 0.6)],
    rejected: [],
    maskSlice: () => Uint8Array.from([1, 0, 0, 0]),
  };
  const b = {
    findings: [
      { ...finding(1, 0, 0.95, "candidates"), volumeMm3: 2 },
      finding(2, 3, 0.9, "candidates"),
    ],
    rejected: [],
    maskSlice: () => Uint8Array.from([1, 1, 0, 2]),
  };
  const m = mergeAssessed(a, b, 4, 1);
  assert.equal(m.findings.length, 2);
  // Both solid and the candidate's segmentation the larger: reported once, with the higher
  // probability and the candidate's segmentation.
  assert.deepEqual(m.findings.map((f) => [f.number, f.probability, f.centreVoxel[0]]), [
    [1, 0.95, 0],
    [2, 0.9, 3],
  ]);
  assert.equal(m.findings[0].source, "candidates");
  assert.deepEqual([...m.maskSlice(0)!], [1, 1, 0, 2]);
  // A ground-glass finding keeps the network's segmentation and takes the higher probability.
  const ggo = structuredClone(finding(1, 0, 0.6));
  ggo.lung.measures.attenuation = "ground-glass" as "solid";
  const kept = mergeAssessed({ ...a, findings: [ggo] }, b, 4, 1);
  assert.deepEqual(kept.findings.map((f) => [f.number, f.probability, f.source]), [
    [1, 0.95, undefined],
    [2, 0.9, "candidates"],
  ]);
  assert.deepEqual([...kept.maskSlice(0)!], [1, 0, 0, 2]);
  // So does a solid finding whose segmentation is the larger.
  const big = { ...finding(1, 0, 0.6), volumeMm3: 5 };
  const larger = mergeAssessed({ ...a, findings: [big] }, b, 4, 1);
  assert.deepEqual(larger.findings.map((f) => [f.probability, f.source, f.volumeMm3]), [
    [0.95, undefined, 5],
    [0.9, "candidates", 1],
  ]);
  // Without duplicates, the numbers follow the probabilities across both lists.
  const low = { ...a, findings: [finding(1, 0, 0.6)] };
  const far = {
    ...b,
    findings: [finding(1, 2, 0.95, "candidates")],
    maskSlice: () => Uint8Array.from([0, 0, 1, 0]),
  };
  const n = mergeAssessed(low, far, 4, 1);
  assert.deepEqual(n.findings.map((f) => [f.number, f.probability]), [[1, 0.95], [2, 0.6]]);
  assert.deepEqual([...n.maskSlice(0)!], [2, 0, 1, 0]);
});

Deno.test("manifest: the candidate stage is parsed, and refused without the lung stage or with a bad setting", () => {
  const base = {
    name: "m",
    version: "1.0.0",
    input: { name: "input", channels: 1, height: 8, width: 8 },
    output: { name: "probability" },
    preprocessing: { window: { center: 0, width: 100 }, resize: { height: 8, width: 8 } },
    labels: [{ index: 1, name: "n", code: { system: "http://snomed.info/sct", code: "1" } }],
  };
  const candidates = {
    file: "candidates.onnx",
    patch: 24,
    calibration: { slope: 1.2, intercept: -0.5 },
    scalesMm: [1, 2],
  };
  const ok = parseManifest({
    ...base,
    postprocessing: { lung: {}, candidates },
  }, "m");
  const c = ok.postprocessing.candidates!;
  assert.equal(c.file, "candidates.onnx");
  assert.deepEqual(c.scalesMm, [1, 2]);
  assert.equal(c.gridMm, 1.25);
  assert.equal(c.input, "patch");
  assert.deepEqual(c.calibration, { slope: 1.2, intercept: -0.5 });
  assert.throws(
    () => parseManifest({ ...base, postprocessing: { candidates } }, "m"),
    /postprocessing\.candidates: needs postprocessing\.lung/,
  );
  assert.throws(
    () =>
      parseManifest({
        ...base,
        postprocessing: {
          lung: {},
          candidates: { ...candidates, file: "../x.onnx", scalesMm: [], speed: 1 },
        },
      }, "m"),
    (e: Error) =>
      /candidates\.file/.test(e.message) && /candidates\.scalesMm/.test(e.message) &&
      /candidates\.speed: unknown/.test(e.message),
  );
});
