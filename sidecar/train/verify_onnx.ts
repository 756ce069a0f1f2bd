/**
 * @module Checks `sidecar/models/lung-nodule-demo-v1/model.onnx` under ONNX Runtime (onnxruntime-node,
 * the sidecar's runtime) against the PyTorch outputs that `evaluate.py` saved for a few real
 * preprocessed test slices: prints one JSON line (max abs difference, batch sizes tried) and exits
 * 1 when the difference exceeds the tolerance.
 *
 *   deno run --allow-read --allow-ffi --allow-env --allow-sys sidecar/train/verify_onnx.ts DIR
 *
 * DIR holds `meta.json` ({ n, channels, height, width }), `input.f32` and `torch.f32` (little-endian
 * float32, NCHW).
 */

import * as ort from "onnxruntime-node";

const TOLERANCE = 1e-4;

const dir = Deno.args[0] ?? "sidecar/train/.data/verify";
const modelPath = new URL("../models/lung-nodule-demo-v1/model.onnx", import.meta.url).pathname;
const meta = JSON.parse(await Deno.readTextFile(`${dir}/meta.json`)) as {
  n: number;
  channels: number;
  height: number;
  width: number;
};
const input = floats(await Deno.readFile(`${dir}/input.f32`));
const expected = floats(await Deno.readFile(`${dir}/torch.f32`));
const perInput = meta.channels * meta.height * meta.width;
const perOutput = meta.height * meta.width;

const session = await ort.InferenceSession.create(modelPath);
let maxDiff = 0;
const batches = [meta.n, 1];
for (const batch of batches) {
  for (let first = 0; first < meta.n; first += batch) {
    const n = Math.min(batch, meta.n - first);
    const x = input.subarray(first * perInput, (first + n) * perInput);
    const feeds = {
      [session.inputNames[0]]: new ort.Tensor("float32", x, [
        n,
        meta.channels,
        meta.height,
        meta.width,
      ]),
    };
    const out = (await session.run(feeds))[session.outputNames[0]];
    const y = out.data as Float32Array;
    const want = expected.subarray(first * perOutput, (first + n) * perOutput);
    for (let i = 0; i < want.length; i++) maxDiff = Math.max(maxDiff, Math.abs(y[i] - want[i]));
  }
}
const ok = maxDiff <= TOLERANCE;
console.log(JSON.stringify({
  runtime: `onnxruntime-node ${ort.env.versions?.node ?? ""}`.trim(),
  inputs: meta.n,
  batchSizes: batches,
  maxAbsDiff: maxDiff,
  tolerance: TOLERANCE,
  ok,
}));
if (!ok) Deno.exit(1);

function floats(bytes: Uint8Array): Float32Array {
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}
