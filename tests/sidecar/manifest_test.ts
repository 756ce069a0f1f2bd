/** @module Tests of `sidecar/manifest.ts`: loading, validation messages, listing, profiles. */
import assert from "node:assert/strict";
import {
  listModels,
  loadModel,
  ManifestError,
  parseManifest,
  resolveSettings,
} from "../../sidecar/manifest.ts";

const FIXTURES = new URL("./fixtures/models", import.meta.url).pathname;
const REAL = new URL("../../sidecar/models/lung-nodule-demo", import.meta.url).pathname;
const hasReal = (() => {
  try {
    return Deno.statSync(`${REAL}/manifest.json`).isFile;
  } catch {
    return false;
  }
})();

Deno.test("loadModel() reads the fixture model's manifest", async () => {
  const { manifest: m, modelPath } = await loadModel(`${FIXTURES}/threshold-demo`);
  assert.equal(m.name, "threshold-demo");
  assert.equal(m.version, "1.0.0");
  assert.deepEqual(m.input, {
    name: "image",
    layout: "NCHW",
    channels: 3,
    height: 32,
    width: 32,
    dtype: "float32",
    slicesPerSample: 3,
    offsets: [-1, 0, 1],
    batch: 4,
  });
  assert.equal(m.labels[0].outputChannel, 0);
  assert.deepEqual(m.labels[0].code.coding[0], {
    system: "http://snomed.info/sct",
    code: "786838002",
    display: "Pulmonary nodule",
  });
  assert.ok(modelPath.endsWith("threshold-demo/model.onnx"));
});

Deno.test({
  name: "loadModel() reads the lung-nodule-demo manifest (when the model is installed)",
  ignore: !hasReal,
  fn: async () => {
    const { manifest: m } = await loadModel(REAL);
    assert.equal(m.name, "lung-nodule-demo");
    assert.equal(m.input.channels, m.input.offsets.length);
    assert.ok(m.labels.length >= 1 && m.labels[0].code.coding.length >= 1);
    assert.ok(m.defaultThreshold > 0 && m.defaultThreshold < 1);
    for (const p of ["fast", "standard", "research"] as const) {
      const s = resolveSettings(m, p, undefined);
      assert.ok(s.batch >= 1 && s.sliceStride >= 1, p);
    }
  },
});

Deno.test("parseManifest() checks the lung stage, the calibration and mm-spaced neighbours", () => {
  try {
    parseManifest({
      name: "demo",
      version: "2.0.0",
      input: { name: "x", channels: 3, height: 8, width: 8, neighbourSpacingMm: 0 },
      output: { name: "y" },
      preprocessing: { window: { center: 0, width: 1 }, rescale: [0, 1] },
      postprocessing: {
        lung: { maxElongation: -1, bogus: 1 },
        calibration: { slope: "steep", intercept: 0, feature: "median" },
      },
      labels: [{ index: 1, code: { system: "s", code: "c" } }],
    }, "demo");
    assert.fail("expected a ManifestError");
  } catch (e) {
    assert.ok(e instanceof ManifestError);
    const text = e.problems.join("\n");
    for (
      const expected of [
        "input.neighbourSpacingMm: expected a number of mm > 0, got 0",
        "postprocessing.lung.bogus: unknown rule",
        "postprocessing.lung.maxElongation: expected a number ≥ 0, got -1",
        'postprocessing.calibration.slope: expected a number, got "steep"',
        "postprocessing.calibration.feature: expected one of maxProbability, meanProbability",
      ]
    ) assert.ok(text.includes(expected), `missing "${expected}" in:\n${text}`);
  }
});

Deno.test("parseManifest() lists every problem at once, with its path", () => {
  try {
    parseManifest({
      name: "other",
      version: "",
      input: { name: "x", channels: 3, height: -1, width: 8, slicesPerSample: 2 },
      output: { name: "y", kind: "mask" },
      preprocessing: { window: { center: 0, width: 0 }, rescale: [1, 1] },
      postprocessing: { connectivity: 4 },
      profiles: { turbo: {} },
      labels: [{ index: 1, code: "nodule" }],
    }, "demo");
    assert.fail("expected a ManifestError");
  } catch (e) {
    assert.ok(e instanceof ManifestError);
    const text = e.problems.join("\n");
    for (
      const expected of [
        'name: "other" differs from its folder "demo"',
        "version: expected a non-empty string",
        "input.height: expected a positive integer, got -1",
        "input.slicesPerSample (2) must equal input.channels (3)",
        "output.kind: expected one of probability, logits",
        "preprocessing.window.width: expected a number > 0",
        "preprocessing.rescale: expected [low, high]",
        "postprocessing.connectivity: expected 6, 18 or 26, got 4",
        "profiles.turbo: unknown profile",
        "labels[0].code: expected {system, code, display}",
      ]
    ) assert.ok(text.includes(expected), `missing "${expected}" in:\n${text}`);
    assert.match(e.message, /^Model demo: invalid manifest.json:/);
  }
});

Deno.test("listModels() reports a broken folder and keeps the others", async () => {
  const dir = await Deno.makeTempDir({ prefix: "models-" });
  try {
    await Deno.mkdir(`${dir}/threshold-demo`);
    for (const f of ["manifest.json", "model.onnx"]) {
      await Deno.copyFile(`${FIXTURES}/threshold-demo/${f}`, `${dir}/threshold-demo/${f}`);
    }
    await Deno.mkdir(`${dir}/broken`);
    await Deno.writeTextFile(`${dir}/broken/manifest.json`, "{");
    await Deno.mkdir(`${dir}/no-weights`);
    const manifest = JSON.parse(
      await Deno.readTextFile(`${FIXTURES}/threshold-demo/manifest.json`),
    );
    await Deno.writeTextFile(
      `${dir}/no-weights/manifest.json`,
      JSON.stringify({ ...manifest, name: "no-weights" }),
    );
    const { models, errors } = await listModels(dir);
    assert.deepEqual(models.map((m) => m.manifest.name), ["threshold-demo"]);
    assert.deepEqual(errors.map((e) => e.model).sort(), ["broken", "no-weights"]);
    assert.match(errors.find((e) => e.model === "no-weights")!.message, /model.onnx: missing/);
    assert.deepEqual(await listModels(`${dir}/nowhere`), { models: [], errors: [] });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("resolveSettings() applies the profile, then the job's threshold", async () => {
  const { manifest: m } = await loadModel(`${FIXTURES}/threshold-demo`);
  assert.deepEqual(resolveSettings(m, "standard", undefined), {
    threshold: 0.5,
    minComponentVoxels: 3,
    minVolumeMm3: 0,
    connectivity: 26,
    batch: 4,
    flipTta: false,
    sliceStride: 1,
  });
  assert.equal(resolveSettings(m, "fast", 0.7).minComponentVoxels, 6);
  assert.equal(resolveSettings(m, "fast", 0.7).threshold, 0.7);
  assert.equal(resolveSettings(m, "research", undefined).threshold, 0.3);
  assert.equal(resolveSettings(m, "research", undefined).flipTta, true);
});
