/**
 * @module The API side of the AI pipeline: the job queue (Redis Streams, or in-process), the
 * installed models registered as FHIR Devices, the `$analyze` operation and the rules that start
 * an analysis when a study becomes stable.
 */
import type { Config } from "../../config.ts";
import type { DicomService } from "../../dicom/service.ts";
import {
  MODEL_SYSTEM,
  modelDevice,
  modelIdentifier,
  type ModelSummary,
  readModelSummaries,
} from "../../inference/devices.ts";
import type { JobQueue } from "../../inference/queue.ts";
import { createJobQueue } from "../../inference/queue_factory.ts";
import type { FhirService } from "../service.ts";
import { interact } from "../interaction.ts";
import { type AnalyzeDeps, analyzeOperation } from "./analyze.ts";
import { applyRules } from "./analysis_rules.ts";

export interface AnalysisService {
  queue: JobQueue;
  models: ModelSummary[];
  close(): Promise<void>;
}

export async function createAnalysisService(deps: {
  config: Readonly<Config>;
  fhir: FhirService;
  dicom: DicomService;
  log: AnalyzeDeps["log"];
}): Promise<AnalysisService> {
  const c = deps.config.inference;
  const queue = await createJobQueue({
    redisUrl: c.redisUrl,
    visibilityMs: c.visibilityMs,
    maxAttempts: c.maxAttempts,
    backoffBaseMs: c.backoffBaseMs,
    backoffMaxMs: c.backoffMaxMs,
    onError: (e: unknown) => deps.log("warn", "job queue", { error: String(e) }),
  });
  const models = await readModelSummaries(c.modelsDir);
  for (const m of models) {
    // Conditional update on the model's identifier: one Device per model version, kept current.
    await interact(deps.fhir.context, {
      method: "PUT",
      path: ["Device"],
      query: [["identifier", `${MODEL_SYSTEM}|${modelIdentifier(m)}`]],
      body: modelDevice(m),
    });
  }
  const analyze: AnalyzeDeps = { queue, models: () => models, log: deps.log };
  const ctx = deps.fhir.context;
  ctx.operations ??= new Map();
  ctx.operations.set("ImagingStudy/$analyze", analyzeOperation(analyze));
  const off = deps.dicom.onStudyStable(async (e) => {
    await applyRules(ctx, analyze, c.rules, e.studyUid);
  });
  return {
    queue,
    models,
    async close() {
      off();
      await queue.close();
    },
  };
}
