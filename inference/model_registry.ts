/**
 * @module The models a sidecar serves: every folder of the models directory with a valid
 * manifest, each with an ONNX Runtime session on the first execution provider that starts. A
 * model that fails is logged and left out; the others still load.
 */
import type { LoadedModel } from "./analysis.ts";
import type { Logger } from "./log.ts";
import { listModels } from "./manifest.ts";
import { createRunner } from "./onnx_runner.ts";

export async function loadModels(
  modelsDir: string,
  providers: readonly string[],
  log: Logger,
): Promise<Map<string, LoadedModel>> {
  const { models, errors } = await listModels(modelsDir);
  for (const e of errors) log("error", "model left out", { model: e.model, problems: e.problems });
  const loaded = new Map<string, LoadedModel>();
  for (const { manifest, modelPath } of models) {
    try {
      const runner = await createRunner(modelPath, providers, { log, model: manifest.name });
      const missing = [
        ...(runner.inputNames.includes(manifest.input.name)
          ? []
          : [`input "${manifest.input.name}"`]),
        ...(runner.outputNames.includes(manifest.output.name)
          ? []
          : [`output "${manifest.output.name}"`]),
      ];
      if (missing.length) {
        await runner.close();
        throw new Error(
          `model.onnx has no ${missing.join(" or ")} (it has inputs ${
            runner.inputNames.join(", ")
          }; outputs ${runner.outputNames.join(", ")})`,
        );
      }
      loaded.set(manifest.name, { manifest, runner });
      log("info", "model loaded", {
        model: manifest.name,
        version: manifest.version,
        provider: runner.provider,
      });
    } catch (e) {
      log("error", "model left out", { model: manifest.name, error: (e as Error).message });
    }
  }
  return loaded;
}

export async function closeModels(models: ReadonlyMap<string, LoadedModel>): Promise<void> {
  for (const m of models.values()) await m.runner.close().catch(() => {});
}
