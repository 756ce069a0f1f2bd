/**
 * @module The models a sidecar serves: every folder of the models directory with a valid
 * manifest, each with an ONNX Runtime session on the first execution provider that starts. A
 * model that fails is logged and left out; the others still load. Each session is warmed up with
 * one batch of zeros of the manifest's batch size, so the first job does not pay for the
 * allocations (and kernel compilation on a GPU) of the first run.
 */
import type { LoadedModel } from "./analysis.ts";
import type { Logger } from "../platform/log.ts";
import { listModels, type ModelManifest } from "./manifest.ts";
import { createRunner, type ModelRunner } from "./onnx_runner.ts";

export interface LoadOptions {
  /** ONNX Runtime intra-op threads per session (0: one per core). */
  threads?: number;
  /** Run one batch of zeros after loading (default true). */
  warmUp?: boolean;
}

export async function loadModels(
  modelsDir: string,
  providers: readonly string[],
  log: Logger,
  options: LoadOptions = {},
): Promise<Map<string, LoadedModel>> {
  const { models, errors } = await listModels(modelsDir);
  for (const e of errors) log("error", "model left out", { model: e.model, problems: e.problems });
  const loaded = new Map<string, LoadedModel>();
  for (const { manifest, modelPath, candidatesPath } of models) {
    try {
      const runner = await createRunner(modelPath, providers, {
        log,
        model: manifest.name,
        threads: options.threads,
      });
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
      let warmUpMs: number | undefined;
      if (options.warmUp !== false) {
        // A model that fails here stays loaded: its jobs then fail with the model's own error.
        warmUpMs = await warmUp(manifest, runner).catch((e) => {
          log("warn", "model warm-up failed", {
            model: manifest.name,
            error: (e as Error).message?.split("\n")[0],
          });
          return undefined;
        });
      }
      let candidates: ModelRunner | undefined;
      if (candidatesPath) {
        candidates = await createRunner(candidatesPath, providers, {
          log,
          model: `${manifest.name} candidates`,
          threads: options.threads,
        }).catch(async (e) => {
          await runner.close();
          throw e;
        });
        const stage = manifest.postprocessing.candidates!;
        if (
          !candidates.inputNames.includes(stage.input) ||
          !candidates.outputNames.includes(stage.output)
        ) {
          await runner.close();
          await candidates.close();
          throw new Error(
            `${stage.file} has no input "${stage.input}" or output "${stage.output}" (it has ` +
              `${candidates.inputNames.join(", ")}; ${candidates.outputNames.join(", ")})`,
          );
        }
        if (options.warmUp !== false) {
          const s = stage.patch;
          await candidates.run(new Float32Array(stage.batch * s ** 3), [stage.batch, 1, s, s, s], {
            input: stage.input,
            output: stage.output,
          }).catch((e) =>
            log("warn", "candidate classifier warm-up failed", {
              model: manifest.name,
              error: (e as Error).message?.split("\n")[0],
            })
          );
        }
      }
      loaded.set(manifest.name, { manifest, runner, ...(candidates ? { candidates } : {}) });
      log("info", "model loaded", {
        model: manifest.name,
        version: manifest.version,
        provider: runner.provider,
        threads: options.threads || "default",
        warmUpMs,
      });
    } catch (e) {
      log("error", "model left out", { model: manifest.name, error: (e as Error).message });
    }
  }
  return loaded;
}

/** One batch of zeros through the session; answers how long it took (ms). */
async function warmUp(manifest: ModelManifest, runner: ModelRunner): Promise<number> {
  const { batch, channels, height, width, name } = manifest.input;
  const started = performance.now();
  await runner.run(
    new Float32Array(batch * channels * height * width),
    [batch, channels, height, width],
    { input: name, output: manifest.output.name },
  );
  return Math.round(performance.now() - started);
}

export async function closeModels(models: ReadonlyMap<string, LoadedModel>): Promise<void> {
  for (const m of models.values()) {
    await m.runner.close().catch(() => {});
    await m.candidates?.close().catch(() => {});
  }
}
