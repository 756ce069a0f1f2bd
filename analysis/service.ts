/**
 * @module The API side of the AI pipeline: the job queue (Redis Streams, or in-process), the
 * installed models registered as FHIR Devices (and this service's Organization, when configured),
 * the `$analyze` operation, the rules that start an analysis when a study becomes stable, and the
 * orders (ServiceRequests) that start one (order_workflow.ts).
 */
import type { Interaction } from "../auth/scopes.ts";
import type { Organization, Task } from "@medplum/fhirtypes";
import type { Config } from "../platform/config.ts";
import type { DicomService } from "../dicom/service.ts";
import {
  MODEL_SYSTEM,
  modelDevice,
  modelIdentifier,
  type ModelSummary,
  readModelSummaries,
} from "../queue/model_devices.ts";
import type { JobQueue } from "../queue/queue.ts";
import { createJobQueue, queueSettings } from "../queue/factory.ts";
import type { FhirContext } from "../fhir/context.ts";
import type { FhirService } from "../fhir/service.ts";
import type { ChangeFeed } from "../fhir/change_feed.ts";
import { interact } from "../fhir/interaction.ts";
import { FhirError } from "../platform/outcome.ts";
import { type AnalyzeDeps, analyzeOperation } from "./analyze.ts";
import { applyRules } from "./rules.ts";
import { type OrderWorkflow, startOrderWorkflow } from "./order_workflow.ts";

/** The identifier system of this service's Organization (ORGANIZATION_ID). */
export const ORGANIZATION_SYSTEM = "urn:imaging-ai:organization";
import { ANALYZE_DEFINITION_ID, analyzeDefinition } from "./operation_definition.ts";

export interface AnalysisService {
  queue: JobQueue;
  models: ModelSummary[];
  /** AI-analysis orders (ServiceRequests) → Tasks. */
  orders: OrderWorkflow;
  close(): Promise<void>;
}

export async function createAnalysisService(deps: {
  config: Readonly<Config>;
  fhir: FhirService;
  dicom: DicomService;
  log: AnalyzeDeps["log"];
  /** The change feed, whose ServiceRequest writes start analyses (absent: only the sweep). */
  changes?: ChangeFeed;
}): Promise<AnalysisService> {
  const c = deps.config.inference;
  const queue = await createJobQueue({
    ...queueSettings(c),
    onError: (e: unknown) => deps.log("warn", "job queue", { error: String(e) }),
    // The in-process worker's queue: a job whose every delivery timed out ends here.
    onExpired: (job, reason) => {
      deps.log("error", "job dead-lettered: no delivery was acknowledged", {
        jobId: job.jobId,
        taskId: job.taskId,
        reason,
      });
      failTask(deps.fhir.context, job.taskId, reason).catch((e) =>
        deps.log("error", "could not mark the Task failed", {
          taskId: job.taskId,
          error: String(e),
        })
      );
    },
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
  const org = deps.config.organization;
  const organization = org.identifier
    ? await registerOrganization(deps.fhir.context, org.identifier, org.name)
    : undefined;
  const analyze: AnalyzeDeps = { queue, models: () => models, log: deps.log, organization };
  const ctx = deps.fhir.context;
  ctx.operations ??= new Map();
  // Its OperationDefinition, so the CapabilityStatement's `definition` resolves here.
  const definition = analyzeDefinition(ctx.baseUrl);
  await interact(ctx, {
    method: "PUT",
    path: ["OperationDefinition", ANALYZE_DEFINITION_ID],
    query: [],
    body: definition,
  });
  ctx.operations.set(
    "ImagingStudy/$analyze",
    Object.assign(analyzeOperation(analyze), {
      definition: definition.url,
      // Reads the study, creates the Task that tracks the analysis.
      access: [["ImagingStudy", "read"], ["Task", "create"]] as [string, Interaction][],
    }),
  );
  const orders = startOrderWorkflow({ ctx, analyze, changes: deps.changes });
  const off = deps.dicom.onStudyStable(async (e) => {
    await applyRules(ctx, analyze, c.rules, e.studyUid);
    // Orders usually come before their images: one waiting for this study can start now (a
    // failed sweep is the next minute's business, not a reason to look at the study again).
    await orders.sweep().catch((e) => deps.log("warn", "order sweep failed", { error: String(e) }));
  });
  return {
    queue,
    models,
    orders,
    async close() {
      off();
      orders.close();
      await queue.close();
    },
  };
}

/** Conditional update on the identifier: one Organization, kept current; `Organization/{id}`. */
async function registerOrganization(
  ctx: FhirContext,
  identifier: string,
  name: string,
): Promise<string> {
  const body: Organization = {
    resourceType: "Organization",
    identifier: [{ system: ORGANIZATION_SYSTEM, value: identifier }],
    active: true,
    ...(name ? { name } : {}),
  };
  const saved = await interact(ctx, {
    method: "PUT",
    path: ["Organization"],
    query: [["identifier", `${ORGANIZATION_SYSTEM}|${identifier}`]],
    body,
  });
  return `Organization/${(saved.body as Organization).id}`;
}

/** Marks a Task failed with the reason, unless it has already ended; retried on a 412. */
async function failTask(ctx: FhirContext, taskId: string, reason: string): Promise<void> {
  for (let attempt = 1;; attempt++) {
    const task = (await interact(ctx, { method: "GET", path: ["Task", taskId], query: [] }))
      .body as Task;
    if (["completed", "failed", "cancelled", "entered-in-error"].includes(task.status)) return;
    const { meta, ...rest } = task;
    const now = new Date().toISOString();
    try {
      await interact(ctx, {
        method: "PUT",
        path: ["Task", taskId],
        query: [],
        body: {
          ...rest,
          status: "failed",
          statusReason: { text: reason.slice(0, 1000) },
          lastModified: now,
          executionPeriod: { ...task.executionPeriod, end: now },
        },
        ifMatch: meta?.versionId,
      });
      return;
    } catch (e) {
      if (!(e instanceof FhirError && e.status === 412) || attempt >= 3) throw e;
    }
  }
}
