/**
 * @module Orders start analyses: an active AI-analysis ServiceRequest (analysis/order.ts) gets one
 * Task `basedOn` it, queued like `$analyze`'s; an order that cannot be done gets a Task `rejected`
 * with a `statusReason`; a revoked order cancels its Task while no worker has started it.
 *
 * The trigger is the change feed (fhir/change_feed.ts), not a hook on the write: the feed sees what
 * any replica committed, including writes by transactions and by other processes, and it runs after
 * the commit. Every replica follows the feed, so every replica sees every order: the Task is a
 * conditional create on `urn:imaging-ai:order|<ServiceRequest id>` (the FHIR core serialises
 * conditional creates on the condition with an advisory lock), and only the replica whose create
 * made it queues the job. The feed starts at its head, so orders written while no API ran, and
 * orders whose start failed on a dependency, are found by a sweep (at start, then every minute):
 * active and revoked AI orders of the last week with their Tasks (`_revinclude=Task:based-on`).
 * A Task left `requested` (its API stopped before the enqueue) is queued again, as `$analyze` does.
 *
 * Conventions: FHIR R4 workflow, "fulfillment" with a Task (the placer owns the ServiceRequest,
 * the filler owns the Task and reports progress there). So this service does not set the order
 * `completed` when the report is final: the Task's status and `output` say it, and the order's
 * status stays the placer's to change (nor does the worker need write access to orders).
 */
import type { Bundle, ImagingStudy, Resource, ServiceRequest, Task } from "@medplum/fhirtypes";
import type { ChangeFeed } from "../fhir/change_feed.ts";
import type { FhirContext } from "../fhir/context.ts";
import { interact } from "../fhir/interaction.ts";
import { FhirError } from "../platform/outcome.ts";
import { type AnalyzeDeps, requestAnalysis, TASK_CODE_SYSTEM } from "./analyze.ts";
import { isAnalysisOrder, ORDER_CODE_TOKEN, ORDER_TASK_SYSTEM, readOrder } from "./order.ts";

/** How far back the sweep looks for orders (by `_lastUpdated`). */
export const ORDER_LOOKBACK_MS = 7 * 24 * 3_600_000;
/** How often the sweep runs. */
export const ORDER_SWEEP_MS = 60_000;
/** Task statuses before a worker has started: a revoked order cancels these. */
const NOT_STARTED = new Set(["draft", "requested", "received", "accepted", "ready", "on-hold"]);

export type OrderOutcome =
  | "ignored"
  | "answered"
  | "started"
  | "waiting"
  | "rejected"
  | "cancelled";

export interface OrderWorkflow {
  /** Acts on the ServiceRequest as it is now. */
  handle(id: string): Promise<OrderOutcome>;
  /** Finds orders without an answer (or revoked with a Task not started) and handles them. */
  sweep(): Promise<number>;
  /** Resolves once the changes handed to the listener so far have been handled (for tests). */
  idle(): Promise<void>;
  close(): void;
}

export function startOrderWorkflow(deps: {
  ctx: FhirContext;
  analyze: AnalyzeDeps;
  changes?: ChangeFeed;
  sweepMs?: number;
}): OrderWorkflow {
  const { ctx, analyze } = deps;
  const log = analyze.log;
  let closed = false;
  let chain = Promise.resolve();
  const handle = (id: string) => handleOrder(ctx, analyze, id);
  const safely = (id: string) =>
    handle(id).catch((e) =>
      log("warn", "order not handled; the sweep tries again", { order: id, error: String(e) })
    );
  // Handled one after another, off the feed's own loop (other listeners do not wait for it).
  const off = deps.changes?.subscribe((batch) => {
    const ids = [
      ...new Set(batch.filter((c) => c.type === "ServiceRequest" && !c.deleted).map((c) => c.id)),
    ];
    if (ids.length) {
      chain = chain.then(async () => {
        for (const id of ids) if (!closed) await safely(id);
      });
    }
  });
  const sweep = async (): Promise<number> => {
    let n = 0;
    for (const id of await unanswered(ctx)) {
      await safely(id);
      n++;
    }
    return n;
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  const tick = () => {
    timer = undefined;
    if (closed) return;
    sweep().catch((e) => log("warn", "order sweep failed", { error: String(e) })).finally(() => {
      if (closed) return;
      Deno.unrefTimer(timer = setTimeout(tick, deps.sweepMs ?? ORDER_SWEEP_MS));
    });
  };
  Deno.unrefTimer(timer = setTimeout(tick, 0));
  return {
    handle,
    sweep,
    idle: () => chain,
    close() {
      closed = true;
      off?.();
      if (timer !== undefined) clearTimeout(timer);
    },
  };
}

/** Reads `Type/id`; undefined when it does not exist (404, 410). */
async function readOrNull<T extends Resource>(
  ctx: FhirContext,
  type: string,
  id: string,
): Promise<T | undefined> {
  try {
    return (await interact(ctx, { method: "GET", path: [type, id], query: [] })).body as T;
  } catch (e) {
    if (e instanceof FhirError && (e.status === 404 || e.status === 410)) return undefined;
    throw e;
  }
}

/** The Task that answers order `id`, if there is one. */
async function orderTask(ctx: FhirContext, id: string): Promise<Task | undefined> {
  const found = await interact(ctx, {
    method: "GET",
    path: ["Task"],
    query: [["identifier", `${ORDER_TASK_SYSTEM}|${id}`]],
  });
  return (found.body as Bundle<Task>).entry?.[0]?.resource;
}

/** What the order asks now: start, reject, cancel, or nothing. */
export async function handleOrder(
  ctx: FhirContext,
  deps: AnalyzeDeps,
  id: string,
): Promise<OrderOutcome> {
  const sr = await readOrNull<ServiceRequest>(ctx, "ServiceRequest", id);
  if (!sr || !isAnalysisOrder(sr)) return "ignored";
  if (sr.status === "revoked" || sr.status === "entered-in-error") {
    return await cancelTask(ctx, deps, sr);
  }
  if (sr.status !== "active") return "ignored";
  const task = await orderTask(ctx, id);
  // A `requested` Task may have lost its job: requestAnalysis queues it again when it is old.
  if (task && task.status !== "requested") return "answered";
  const order = readOrder(sr);
  if (!order.ok) return await reject(ctx, deps, sr, order.reason);
  const study = await readOrNull<ImagingStudy>(ctx, "ImagingStudy", order.studyId);
  if (!study) {
    return await reject(ctx, deps, sr, `ImagingStudy/${order.studyId} does not exist`);
  }
  if (order.subject && study.subject?.reference && order.subject !== study.subject.reference) {
    return await reject(
      ctx,
      deps,
      sr,
      `The order is for ${order.subject}, ImagingStudy/${study.id} is of ${study.subject.reference}`,
    );
  }
  const [model, version] = (order.model ?? "").split("@");
  const installed = model ? deps.models().find((m) => m.name === model) : undefined;
  if (version && installed && installed.version !== version) {
    return await reject(
      ctx,
      deps,
      sr,
      `Model ${model} ${version} is not installed (installed: ${installed.version})`,
    );
  }
  try {
    const { created } = await requestAnalysis(ctx, deps, study.id!, {
      ...(model ? { model } : {}),
      priority: order.priority,
      order: { id, requester: order.requester, performers: order.performers },
    });
    if (created) deps.log("info", "analysis started by order", { order: id, study: study.id });
    return created ? "started" : "answered";
  } catch (e) {
    if (!(e instanceof FhirError) || ![400, 404, 410, 422].includes(e.status)) throw e;
    // Images still to come (an order usually precedes its images): the sweep looks again.
    if (e.status === 422 && /no instances/.test(e.message)) return "waiting";
    return await reject(ctx, deps, sr, e.message);
  }
}

/** The order's Task, `rejected` with the reason (one per order, like the Task that runs it). */
async function reject(
  ctx: FhirContext,
  deps: AnalyzeDeps,
  sr: ServiceRequest,
  reason: string,
): Promise<OrderOutcome> {
  const now = new Date().toISOString();
  const task: Task = {
    resourceType: "Task",
    identifier: [{ system: ORDER_TASK_SYSTEM, value: sr.id! }],
    basedOn: [{ reference: `ServiceRequest/${sr.id}` }],
    status: "rejected",
    statusReason: { text: reason.slice(0, 1000) },
    intent: "order",
    code: {
      coding: [{ system: TASK_CODE_SYSTEM, code: "analyze", display: "AI analysis" }],
      text: "AI analysis",
    },
    description: `AI analysis ordered by ServiceRequest/${sr.id}: not done`,
    ...(sr.subject ? { for: sr.subject } : {}),
    ...(sr.requester ? { requester: sr.requester } : {}),
    authoredOn: now,
    lastModified: now,
  };
  const made = await interact(ctx, {
    method: "POST",
    path: ["Task"],
    query: [],
    body: task,
    ifNoneExist: `identifier=${ORDER_TASK_SYSTEM}|${sr.id}`,
  });
  if (made.status !== 201) return "answered";
  deps.log("warn", "order rejected", { order: sr.id, reason });
  return "rejected";
}

/** A revoked order: its Task `cancelled` unless a worker has started it (retried on a 412). */
async function cancelTask(
  ctx: FhirContext,
  deps: AnalyzeDeps,
  sr: ServiceRequest,
): Promise<OrderOutcome> {
  for (let attempt = 1;; attempt++) {
    const task = await orderTask(ctx, sr.id!);
    if (!task || !NOT_STARTED.has(task.status)) return "ignored";
    const { meta, ...rest } = task;
    const now = new Date().toISOString();
    try {
      await interact(ctx, {
        method: "PUT",
        path: ["Task", task.id!],
        query: [],
        body: {
          ...rest,
          status: "cancelled",
          statusReason: { text: `The order ServiceRequest/${sr.id} was ${sr.status}` },
          lastModified: now,
        },
        ifMatch: meta?.versionId,
      });
      deps.log("info", "order revoked; its Task cancelled", { order: sr.id, taskId: task.id });
      return "cancelled";
    } catch (e) {
      if (!(e instanceof FhirError && e.status === 412) || attempt >= 3) throw e;
    }
  }
}

/**
 * Orders of the last week that want something done: active without a Task or with one still
 * `requested`, revoked with a Task not started.
 */
async function unanswered(ctx: FhirContext): Promise<string[]> {
  const since = new Date(Date.now() - ORDER_LOOKBACK_MS).toISOString();
  let query: [string, string][] | undefined = [
    ["code", ORDER_CODE_TOKEN],
    ["status", "active,revoked"],
    ["_lastUpdated", `ge${since}`],
    ["_revinclude", "Task:based-on"],
    ["_count", "100"],
  ];
  const out: string[] = [];
  for (let page = 0; query && page < 100; page++) {
    const bundle = (await interact(ctx, { method: "GET", path: ["ServiceRequest"], query }))
      .body as Bundle;
    const tasks = new Map<string, Task>();
    for (const { resource: r } of bundle.entry ?? []) {
      if (r?.resourceType !== "Task") continue;
      const of = r.identifier?.find((i) => i.system === ORDER_TASK_SYSTEM)?.value;
      if (of) tasks.set(of, r);
    }
    for (const { resource: r } of bundle.entry ?? []) {
      if (r?.resourceType !== "ServiceRequest" || !r.id) continue;
      const task = tasks.get(r.id);
      const due = r.status === "active"
        ? !task || task.status === "requested"
        : !!task && NOT_STARTED.has(task.status);
      if (due) out.push(r.id);
    }
    const next = bundle.link?.find((l) => l.relation === "next")?.url;
    query = next ? [...new URL(next).searchParams.entries()] : undefined;
  }
  return out;
}
