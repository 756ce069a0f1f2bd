/**
 * @module The installed lung-nodule-demo model (when present) loads through the sidecar's model
 * registry (manifest, SHA-256, input and output names) and runs over a small synthetic chest CT.
 * Detection quality is the training's business (`sidecar/train/evaluate.py`), not tested here.
 */
import assert from "node:assert/strict";
import { generateStudy } from "../../dicom/synth/ct.ts";
import { predictVolume } from "../../sidecar/analysis.ts";
import type { Logger } from "../../platform/log.ts";
import { resolveSettings } from "../../sidecar/manifest.ts";
import { closeModels, loadModels } from "../../sidecar/model_registry.ts";
import { segment } from "../../sidecar/postprocess.ts";
import { createVolumeBuilder } from "../../sidecar/volume.ts";

const DIR = new URL("../../sidecar/models", import.meta.url).pathname;
const installed = (() => {
  try {
    return Deno.statSync(`${DIR}/lung-nodule-demo/model.onnx`).isFile;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "lung-nodule-demo loads and runs over a synthetic chest CT (when installed)",
  ignore: !installed,
  fn: async () => {
    const problems: string[] = [];
    const log: Logger = (level, msg, data) => {
      if (level === "error") problems.push(`${msg} ${JSON.stringify(data)}`);
    };
    const models = await loadModels(DIR, ["cpu"], log);
    try {
      const model = models.get("lung-nodule-demo");
      assert.ok(model, problems.join("\n"));
      const study = generateStudy({ seed: 9001, rows: 256, cols: 256, slices: 8, lesions: 1 });
      const builder = createVolumeBuilder();
      study.instances.forEach((b) => builder.add(b));
      const volume = builder.finish();
      const settings = resolveSettings(model.manifest, "fast", undefined);
      const probability = await predictVolume(volume, model, settings);
      assert.deepEqual(
        [probability.depth, probability.height, probability.width],
        [8, 256, 256],
      );
      assert.ok(probability.data.every((p) => p >= 0 && p <= 1));
      const seg = segment(probability, volume, settings);
      assert.ok(seg.maxProbability > 0);
    } finally {
      await closeModels(models);
    }
  },
});
