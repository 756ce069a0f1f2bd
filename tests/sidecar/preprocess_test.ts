/** @module Tests of `sidecar/preprocess.ts`: windowing numbers, resize, neighbour stacking. */
import assert from "node:assert/strict";
import {
  applyWindow,
  flipPlanes,
  makeBatches,
  modelSampler,
  prepareSlices,
  probabilityPlane,
  resize2d,
  strideIndices,
  windowTable,
} from "../../sidecar/preprocess.ts";
import { generateStudy } from "../../dicom/synth/ct.ts";
import { createVolumeBuilder } from "../../sidecar/volume.ts";
import { parseManifest } from "../../sidecar/manifest.ts";

const MANIFEST = JSON.parse(
  await Deno.readTextFile(
    new URL("./fixtures/models/threshold-demo/manifest.json", import.meta.url),
  ),
);

Deno.test("applyWindow() maps the window linearly onto the range and clamps outside it", () => {
  // Lung window: centre −600, width 1500 → [−1350, 150].
  const out = applyWindow([-2000, -1350, -600, 0, 150, 3000], { center: -600, width: 1500 });
  assert.deepEqual(Array.from(out, (v) => Math.round(v * 1e4) / 1e4), [0, 0, 0.5, 0.9, 1, 1]);
  const scaled = applyWindow([-1350, -600, 150], { center: -600, width: 1500 }, [-1, 1]);
  assert.deepEqual(Array.from(scaled), [-1, 0, 1]);
});

Deno.test("resize2d() bilinear uses half-pixel centres and keeps constant images constant", () => {
  // 1×2 → 1×4: [0, 1] becomes [0, 0.25, 0.75, 1] (PyTorch align_corners=False).
  assert.deepEqual(Array.from(resize2d([0, 1], 1, 2, 1, 4)), [0, 0.25, 0.75, 1]);
  // 4 → 2 averages pairs.
  assert.deepEqual(Array.from(resize2d([0, 1, 2, 3], 1, 4, 1, 2)), [0.5, 2.5]);
  const flat = resize2d(new Float32Array(35).fill(7), 5, 7, 3, 11);
  assert.ok(flat.every((v) => v === 7));
  assert.deepEqual(Array.from(resize2d([1, 2, 3, 4], 2, 2, 1, 1, "nearest")), [4]);
});

Deno.test("prepareSlices() and makeBatches() stack neighbours, repeating the edge slices", () => {
  const m = parseManifest({
    ...MANIFEST,
    input: { ...MANIFEST.input, height: 2, width: 2 },
    preprocessing: { ...MANIFEST.preprocessing, resize: { height: 2, width: 2 } },
  }, "threshold-demo");
  assert.deepEqual(m.input.offsets, [-1, 0, 1]);
  // 5 slices of 2×2, slice z all at HU −800 + 100·z → windowed (−300 ± 500): 0.1·z.
  const hu = new Float32Array(5 * 4).map((_, i) => -800 + 100 * Math.floor(i / 4));
  const prepared = prepareSlices(hu, { x: 2, y: 2, z: 5 }, m);
  assert.deepEqual(prepared.depth, 5);
  const batches = [...makeBatches(prepared, m.input.offsets, 2)];
  assert.deepEqual(batches.map((b) => [b.slices, b.dims]), [
    [[0, 1], [2, 3, 2, 2]],
    [[2, 3], [2, 3, 2, 2]],
    [[4], [1, 3, 2, 2]],
  ]);
  const channelValues = (b: (typeof batches)[number], s: number) =>
    [0, 1, 2].map((c) => Math.round(b.data[(s * 3 + c) * 4] * 10) / 10);
  assert.deepEqual(channelValues(batches[0], 0), [0, 0, 0.1]); // slice 0: −1 repeats 0
  assert.deepEqual(channelValues(batches[0], 1), [0, 0.1, 0.2]);
  assert.deepEqual(channelValues(batches[2], 0), [0.3, 0.4, 0.4]); // slice 4: +1 repeats 4
  // A stride runs 0, 2, 4; other offsets are honoured.
  const strided = [...makeBatches(prepared, [-2, 0, 2], 8, strideIndices(5, 2))];
  assert.deepEqual(strided[0].slices, [0, 2, 4]);
  assert.deepEqual(channelValues(strided[0], 1), [0, 0.2, 0.4]);
});

Deno.test("strideIndices() always ends with the last slice; flipPlanes() mirrors rows", () => {
  assert.deepEqual(strideIndices(6, 2), [0, 2, 4, 5]);
  assert.deepEqual(strideIndices(3, 1), [0, 1, 2]);
  assert.deepEqual(strideIndices(1, 4), [0]);
  assert.deepEqual(Array.from(flipPlanes(new Float32Array([1, 2, 3, 4, 5, 6]), 3)), [
    3,
    2,
    1,
    6,
    5,
    4,
  ]);
});

Deno.test("probabilityPlane() applies sigmoid to logits and softmax across channels", () => {
  const base = parseManifest(MANIFEST, "threshold-demo");
  const logits = {
    ...base,
    output: { ...base.output, kind: "logits" as const, activation: "sigmoid" as const },
  };
  assert.deepEqual(
    Array.from(probabilityPlane(new Float32Array([0, 0]), [1, 1, 1, 2], 0, logits, 0)),
    [0.5, 0.5],
  );
  const softmax = {
    ...base,
    output: { ...base.output, kind: "logits" as const, activation: "softmax" as const },
  };
  const two = probabilityPlane(new Float32Array([0, Math.log(3)]), [1, 2, 1, 1], 0, softmax, 1);
  assert.ok(Math.abs(two[0] - 0.75) < 1e-6);
  // Probabilities pass through, clamped.
  assert.deepEqual(
    Array.from(probabilityPlane(new Float32Array([1.2, 0.3]), [1, 1, 1, 2], 0, base, 0)),
    [1, 0.30000001192092896],
  );
});

Deno.test("modelSampler() maps stored values to exactly the planes of decodeFrame + prepareSlices", () => {
  const m = parseManifest(MANIFEST, "threshold-demo");
  // 45×50 images onto the 32×32 plane (uneven factors), and 64×64 (exactly 2×).
  for (const [rows, cols] of [[45, 50], [64, 64], [32, 32]]) {
    const study = generateStudy({ seed: 11, rows, cols, slices: 5, lesions: 0 });
    const full = createVolumeBuilder(), sampled = createVolumeBuilder({ sampler: modelSampler(m) });
    for (const bytes of study.instances) {
      full.add(bytes);
      sampled.add(bytes);
    }
    const a = full.finish(), b = sampled.finish();
    assert.equal(a.values, "modality");
    assert.equal(b.values, "model-input");
    assert.deepEqual(b.plane, { height: 32, width: 32 });
    assert.deepEqual(b.dims, a.dims, "the series' grid is kept");
    const expected = prepareSlices(a.data, a.dims, m);
    assert.equal(b.data.length, expected.data.length);
    assert.deepEqual(b.data, expected.data, `${rows}×${cols}`);
  }
});

Deno.test("windowTable() fixes the sign of BitsStored < BitsAllocated and of 8-bit samples", () => {
  const w = { center: 0, width: 4096 };
  // 12 bits stored in 16, signed: 0x0fff is −1; 0x0800 is −2048 (the window's lower edge).
  const t12 = windowTable(
    { signed: true, bitsStored: 12, bitsAllocated: 16, slope: 1, intercept: 0 },
    w,
  );
  assert.equal(t12[0x0fff], applyWindow([-1], w)[0]);
  assert.equal(t12[0x0800], 0);
  assert.equal(t12[0x07ff], applyWindow([2047], w)[0]);
  // Signed 8-bit arrives as Int8Array values: −128 & 0xffff = 0xff80.
  const t8 = windowTable(
    { signed: true, bitsStored: 8, bitsAllocated: 8, slope: 10, intercept: 0 },
    w,
  );
  assert.equal(t8[-128 & 0xffff], applyWindow([-1280], w)[0]);
  // Unsigned 16-bit with a rescale.
  const tu = windowTable(
    { signed: false, bitsStored: 16, bitsAllocated: 16, slope: 1, intercept: -1024 },
    w,
  );
  assert.equal(tu[1024], applyWindow([0], w)[0]);
});
