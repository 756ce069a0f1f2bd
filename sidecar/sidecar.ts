/**
 * @module The sidecar's work loop: take a delivery from the queue, keep it (extend its visibility
 * every visibilityMs / 3) while `analyze` runs, ack it once the results are committed, or fail it
 * (fatal for errors that will not go away) and, when the queue dead-letters it, mark the Task
 * failed with the reason. `stop()` lets the current job finish within a grace period; past it the
 * job is abandoned unacked, so the queue hands it to another sidecar after the visibility timeout.
 */
import { inSpan } from "../observability/tracing.ts";
import type { ApiClient } from "./api_client.ts";
import { type AnalysisOutcome, analyze, type LoadedModel } from "./analysis.ts";
import { classify } from "./errors.ts";
import type { AnalysisJob } from "../queue/jobs.ts";
import type { Logger } from "../platform/log.ts";
import type { Delivery, JobQueue } from "../queue/queue.ts";
import { markTaskFailed } from "./task_client.ts";

export interface SidecarDeps {
  queue: JobQueue;
  api: ApiClient;
  models: ReadonlyMap<string, LoadedModel>;
  log: Logger;
  visibilityMs: number;
  /** The consumer name in the queue (default: sidecar-<host>-<pid>-<random>). */
  consumer?: string;
  /** How long one `queue.next` waits (default 2000 ms): bounds how quickly `stop()` returns. */
  blockMs?: number;
  /** How long `stop()` waits for the current job before abandoning it (default 30 s). */
  stopGraceMs?: number;
  /** Replaces `analyze` (tests). */
  analyze?: (job: AnalysisJob, signal: AbortSignal) => Promise<AnalysisOutcome>;
}

export interface SidecarStats {
  done: number;
  /** Dead-lettered (their Task marked failed). */
  failed: number;
  /** Failed and handed back for a retry. */
  retried: number;
  skipped: number;
  current?: { jobId: string; taskId: string; attempt: number; since: string };
}

export interface Sidecar {
  readonly consumer: string;
  readonly stats: Readonly<SidecarStats>;
  start(): void;
  stop(): Promise<void>;
}

export function createSidecar(deps: SidecarDeps): Sidecar {
  const { queue, log } = deps;
  const consumer = deps.consumer ?? defaultConsumer();
  const blockMs = deps.blockMs ?? 2000;
  const graceMs = deps.stopGraceMs ?? 30_000;
  const run = deps.analyze ??
    ((job: AnalysisJob, signal: AbortSignal) =>
      analyze({ api: deps.api, models: deps.models, log }, job, signal));
  const stats: SidecarStats = { done: 0, failed: 0, retried: 0, skipped: 0 };
  let stopping = false;
  let loop: Promise<void> | undefined;
  let current: { delivery: Delivery; abort: AbortController; finished: Promise<void> } | undefined;

  async function handle(delivery: Delivery, abort: AbortController): Promise<void> {
    const { job } = delivery;
    const ctx = { jobId: job.jobId, taskId: job.taskId, requestId: job.requestId, consumer };
    const heartbeat = setInterval(() => {
      queue.extend(consumer, delivery).catch((e) =>
        log("warn", "could not extend the delivery", { ...ctx, error: String(e) })
      );
    }, Math.max(50, Math.floor(deps.visibilityMs / 3)));
    stats.current = {
      jobId: job.jobId,
      taskId: job.taskId,
      attempt: delivery.attempt,
      since: new Date().toISOString(),
    };
    log("info", "job started", { ...ctx, model: job.model, attempt: delivery.attempt });
    try {
      // One span per job, in the trace of the request that queued it (when tracing is on).
      const outcome = await inSpan("analysis job", job.traceparent, {
        "job.id": job.jobId,
        "task.id": job.taskId,
        "job.model": job.model,
        "job.attempt": delivery.attempt,
      }, () => run(job, abort.signal));
      await queue.ack(delivery);
      if (outcome.kind === "skipped") {
        stats.skipped++;
        log("info", "job skipped", { ...ctx, reason: outcome.reason });
      } else {
        stats.done++;
        log("info", "job done", { ...ctx, ...outcome });
      }
    } catch (e) {
      if (abort.signal.aborted) {
        log("warn", "job abandoned at shutdown; another sidecar takes it over", ctx);
        return;
      }
      const { reason, fatal } = classify(e);
      log("error", "job failed", { ...ctx, reason, fatal, attempt: delivery.attempt });
      let result: "retry" | "dead";
      try {
        result = await queue.fail(delivery, reason, fatal);
      } catch (qe) {
        log("error", "could not report the failure to the queue", { ...ctx, error: String(qe) });
        return;
      }
      if (result === "retry") {
        stats.retried++;
        return;
      }
      stats.failed++;
      try {
        await markTaskFailed(deps.api, job, reason);
      } catch (te) {
        log("error", "could not mark the Task failed", { ...ctx, error: String(te) });
      }
    } finally {
      clearInterval(heartbeat);
      stats.current = undefined;
    }
  }

  async function work(): Promise<void> {
    while (!stopping) {
      let delivery: Delivery | null;
      try {
        delivery = await queue.next(consumer, blockMs);
      } catch (e) {
        if (stopping) break;
        log("error", "queue unavailable; retrying in 1 s", { consumer, error: String(e) });
        await new Promise((r) => setTimeout(r, 1000));
        continue;
      }
      if (!delivery) continue;
      const abort = new AbortController();
      const finished = handle(delivery, abort);
      current = { delivery, abort, finished };
      await finished;
      current = undefined;
    }
  }

  return {
    consumer,
    get stats() {
      return stats;
    },
    start() {
      if (loop) return;
      stopping = false;
      log("info", "sidecar started", { consumer, models: [...deps.models.keys()] });
      loop = work();
    },
    async stop() {
      stopping = true;
      if (current) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const late = new Promise<"late">((r) => timer = setTimeout(() => r("late"), graceMs));
        const result = await Promise.race([current.finished.then(() => "done" as const), late]);
        clearTimeout(timer);
        if (result === "late") current?.abort.abort();
      }
      await loop;
      loop = undefined;
      log("info", "sidecar stopped", { consumer, ...stats, current: undefined });
    },
  };
}

function defaultConsumer(): string {
  let host = "local";
  try {
    host = Deno.hostname();
  } catch {
    // no --allow-sys
  }
  return `sidecar-${host}-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
}
