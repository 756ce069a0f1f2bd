/**
 * @module `POST [base]/ImagingStudy/{id}/$analyze`: asks for an AI analysis of a study. Takes a
 * Parameters body (`model`, `profile` fast|standard|research, `threshold` default the model's,
 * `priority` routine|stat), answers 202 with the FHIR Task that tracks the job (`requested` →
 * `accepted` once queued; the sidecar moves it on). The same request for the same study content
 * returns the Task already running instead of a second one. When the queue cannot be reached the
 * answer is 503 and no Task is left behind.
 */
import { currentTraceparent } from "../observability/tracing.ts";
import type { ImagingStudy, Parameters, Task } from "@medplum/fhirtypes";
import type { JobQueue } from "../queue/queue.ts";
import {
  type AnalysisJob,
  idempotencyKey,
  JOB_KEY_SYSTEM,
  type Priority,
  type Profile,
} from "../queue/jobs.ts";
import { MODEL_SYSTEM, modelIdentifier, type ModelSummary } from "../queue/model_devices.ts";
import type { FhirContext, OperationHandler } from "../fhir/context.ts";
import { interact } from "../fhir/interaction.ts";
import { badRequest, fhirError } from "../platform/outcome.ts";
import { ORDER_TASK_SYSTEM } from "./order.ts";

export const TASK_CODE_SYSTEM = "urn:imaging-ai:task";

/**
 * Series that hold results about images rather than images: an analysis's own SEG and SR among
 * them. They do not change what an analysis of the study sees.
 */
const DERIVED_MODALITIES = new Set(["SEG", "SR", "KO", "PR", "DOC", "RTSTRUCT"]);

/**
 * The study's image content, for the idempotency key: each image series with its instance count.
 * Storing an analysis's SEG and SR into the study leaves it as it was, so the study-stable event
 * those objects cause does not start the same analysis again (and again).
 */
export function imageContent(study: ImagingStudy): string {
  return (study.series ?? [])
    .filter((s) => !DERIVED_MODALITIES.has(s.modality?.code?.toUpperCase() ?? ""))
    .map((s) => `${s.uid}=${s.numberOfInstances ?? 0}`)
    .sort()
    .join(";");
}

export interface AnalyzeDeps {
  queue: JobQueue;
  models: () => ModelSummary[];
  log(level: "info" | "warn" | "error", msg: string, data?: Record<string, unknown>): void;
  /** This service's Organization (`Organization/{id}`, ORGANIZATION_NAME), when there is one. */
  organization?: string;
}

/** The order an analysis fulfils (analysis/order_workflow.ts). */
export interface OrderLink {
  /** The ServiceRequest's id. */
  id: string;
  requester?: Task["requester"];
  /** Its performers a DiagnosticReport may name (`Type/id`). */
  performers: string[];
}

export interface AnalyzeRequest {
  model?: string;
  profile?: Profile;
  threshold?: number;
  priority?: Priority;
  requestId?: string;
  /** The order being fulfilled: its Task is `basedOn` it, one Task per order. */
  order?: OrderLink;
}

const PROFILES = ["fast", "standard", "research"];
const PRIORITIES = ["routine", "stat"];

/** Reads the Parameters body; 400 with the parameter's name for anything wrong. */
export function analyzeParameters(body: unknown): AnalyzeRequest {
  if (body === undefined || body === null) return {};
  const p = body as Parameters;
  if (p.resourceType !== "Parameters") {
    throw badRequest(`Expected a Parameters resource, got ${p.resourceType ?? typeof body}`);
  }
  const out: AnalyzeRequest = {};
  for (const param of p.parameter ?? []) {
    const value = param.valueString ?? param.valueCode ?? param.valueDecimal ?? param.valueInteger;
    switch (param.name) {
      case "model":
        if (typeof value !== "string") {
          throw badRequest("model must be a string", "Parameters.parameter");
        }
        out.model = value;
        break;
      case "profile":
        if (!PROFILES.includes(String(value))) {
          throw badRequest(`profile must be one of ${PROFILES.join(", ")}`, "Parameters.parameter");
        }
        out.profile = value as Profile;
        break;
      case "threshold":
        if (typeof value !== "number" || !(value > 0 && value < 1)) {
          throw badRequest("threshold must be a decimal between 0 and 1", "Parameters.parameter");
        }
        out.threshold = value;
        break;
      case "priority":
        if (!PRIORITIES.includes(String(value))) {
          throw badRequest("priority must be routine or stat", "Parameters.parameter");
        }
        out.priority = value as Priority;
        break;
      default:
        throw badRequest(`Unknown parameter "${param.name}"`, "Parameters.parameter");
    }
  }
  return out;
}

/** Starts (or finds) the analysis of a study; returns the Task and whether it is new. */
export async function requestAnalysis(
  ctx: FhirContext,
  deps: AnalyzeDeps,
  studyId: string,
  req: AnalyzeRequest,
): Promise<{ task: Task; created: boolean }> {
  const study = (await interact(ctx, { method: "GET", path: ["ImagingStudy", studyId], query: [] }))
    .body as ImagingStudy;
  const models = deps.models();
  const model = req.model ? models.find((m) => m.name === req.model) : models[0];
  if (!model) {
    throw badRequest(
      req.model
        ? `Unknown model "${req.model}"; installed: ${
          models.map((m) => m.name).join(", ") || "none"
        }`
        : "No model is installed",
      "Parameters.parameter",
    );
  }
  const studyUid = study.identifier?.find((i) => i.system === "urn:dicom:uid")?.value?.replace(
    /^urn:oid:/,
    "",
  );
  if (!studyUid) throw badRequest(`ImagingStudy/${studyId} has no DICOM Study Instance UID`);
  if (!study.numberOfInstances) {
    throw fhirError(422, "business-rule", `ImagingStudy/${studyId} has no instances to analyse`);
  }
  if (!study.subject?.reference?.startsWith("Patient/")) {
    throw fhirError(422, "business-rule", `ImagingStudy/${studyId} has no Patient subject`);
  }
  const order = req.order;
  const profile = req.profile ?? "standard";
  const threshold = req.threshold ?? model.defaultThreshold;
  const priority = req.priority ?? "routine";
  const key = await idempotencyKey({
    studyInstanceUid: studyUid,
    contentVersion: imageContent(study),
    model: model.name,
    modelVersion: model.version,
    profile,
    threshold,
    order: order && `ServiceRequest/${order.id}`,
  });
  // The same analysis of the same content, still running or done: that Task, not a new one. An
  // order has one Task whatever became of it (a failed one is not started again by itself).
  const existing = await interact(ctx, {
    method: "GET",
    path: ["Task"],
    query: order ? [["identifier", `${ORDER_TASK_SYSTEM}|${order.id}`]] : [
      ["identifier", `${JOB_KEY_SYSTEM}|${key}`],
      ["status:not", "failed"],
      ["status:not", "cancelled"],
    ],
  });
  const found = (existing.body as { entry?: { resource: Task }[] }).entry?.[0]?.resource;
  if (found && !orphaned(found)) return { task: found, created: false };
  if (!(await deps.queue.ping())) {
    throw fhirError(503, "transient", "The analysis queue is unavailable; try again later");
  }
  const now = new Date().toISOString();
  const draft: Task = {
    resourceType: "Task",
    identifier: [
      { system: JOB_KEY_SYSTEM, value: key },
      ...(order ? [{ system: ORDER_TASK_SYSTEM, value: order.id }] : []),
    ],
    ...(order ? { basedOn: [{ reference: `ServiceRequest/${order.id}` }] } : {}),
    status: "requested",
    intent: "order",
    priority,
    code: {
      coding: [{ system: TASK_CODE_SYSTEM, code: "analyze", display: "AI analysis" }],
      text: "AI analysis",
    },
    description:
      `${model.displayName} ${model.version} on ImagingStudy/${studyId} (${profile}, threshold ${threshold})`,
    focus: { reference: `ImagingStudy/${studyId}` },
    for: { reference: study.subject.reference },
    ...(order?.requester ? { requester: order.requester } : {}),
    authoredOn: now,
    lastModified: now,
    owner: {
      identifier: { system: MODEL_SYSTEM, value: modelIdentifier(model) },
      display: model.displayName,
    },
    input: [
      { type: { text: "model" }, valueString: model.name },
      { type: { text: "modelVersion" }, valueString: model.version },
      { type: { text: "profile" }, valueCode: profile },
      { type: { text: "threshold" }, valueDecimal: threshold },
    ],
  };
  // A Task still `requested` long after it was made lost its job (its API stopped between the
  // Task's commit and the enqueue): it is queued again (jobs are idempotent by key).
  if (found) {
    deps.log("warn", "a requested Task was never queued; queueing it now", { taskId: found.id });
  }
  let task = found;
  if (!task) {
    // Conditional on the order: replicas that see the same order make one Task between them.
    const made = await interact(ctx, {
      method: "POST",
      path: ["Task"],
      query: [],
      body: draft,
      ...(order ? { ifNoneExist: `identifier=${ORDER_TASK_SYSTEM}|${order.id}` } : {}),
    });
    if (made.status === 200) return { task: made.body as Task, created: false };
    task = made.body as Task;
  }
  const job: AnalysisJob = {
    jobId: crypto.randomUUID(),
    taskId: task.id!,
    imagingStudyId: studyId,
    studyInstanceUid: studyUid,
    patient: study.subject.reference,
    model: model.name,
    modelVersion: model.version,
    profile,
    threshold,
    priority,
    idempotencyKey: key,
    requestId: req.requestId,
    traceparent: currentTraceparent(),
    enqueuedAt: now,
    ...(order ? { order: `ServiceRequest/${order.id}` } : {}),
    ...(order?.performers.length || deps.organization
      ? {
        performers: [...new Set([...order?.performers ?? [], deps.organization ?? ""])]
          .filter(Boolean),
      }
      : {}),
    ...(deps.organization ? { organization: deps.organization } : {}),
  };
  try {
    await deps.queue.enqueue(job);
  } catch (e) {
    if (!found) {
      deps.log("error", "enqueue failed; removing the Task", { taskId: task.id, error: String(e) });
      await interact(ctx, { method: "DELETE", path: ["Task", task.id!], query: [] })
        .catch(() => {});
    }
    throw fhirError(503, "transient", "The analysis queue is unavailable; try again later");
  }
  // The sidecar may already have moved it on; only a `requested` Task becomes `accepted`.
  try {
    const accepted = await interact(ctx, {
      method: "PUT",
      path: ["Task", task.id!],
      query: [],
      body: { ...task, status: "accepted", lastModified: new Date().toISOString() },
      ifMatch: task.meta?.versionId,
    });
    return { task: accepted.body as Task, created: !found };
  } catch {
    const current = await interact(ctx, { method: "GET", path: ["Task", task.id!], query: [] });
    return { task: current.body as Task, created: !found };
  }
}

/** How long a Task may stay `requested` before it counts as never queued. */
export const ORPHANED_AFTER_MS = 30_000;

/** A `requested` Task untouched for ORPHANED_AFTER_MS: its job was never queued. */
function orphaned(task: Task): boolean {
  if (task.status !== "requested") return false;
  const since = Date.parse(task.lastModified ?? task.authoredOn ?? "");
  return Number.isFinite(since) && Date.now() - since > ORPHANED_AFTER_MS;
}

/** The `$analyze` handler. */
export function analyzeOperation(deps: AnalyzeDeps): OperationHandler {
  return async (ctx, req) => {
    if (req.method !== "POST") {
      throw fhirError(405, "not-supported", "$analyze is invoked with POST");
    }
    const params = analyzeParameters(req.body);
    const { task } = await requestAnalysis(ctx, deps, req.id ?? "", params);
    const url = `${ctx.baseUrl}/Task/${task.id}`;
    return {
      status: 202,
      body: task,
      contentLocation: url,
      etag: task.meta?.versionId ? `W/"${task.meta.versionId}"` : undefined,
    };
  };
}
