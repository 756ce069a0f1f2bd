/**
 * @module Rules both job queues share, so the Redis and in-process queues cannot drift apart: the
 * retry backoff, the dead-letter decision, the wait between polls and the reason recorded when
 * a delivery runs out of attempts by timing out.
 */
import type { AnalysisJob } from "./jobs.ts";
import type { QueueOptions } from "./queue.ts";

/** The wait before retry `attempt + 1` of a job whose attempt `attempt` failed. */
export function backoffMs(options: QueueOptions, attempt: number): number {
  const exponent = Math.max(0, attempt - 1);
  return Math.min(options.backoffMaxMs, options.backoffBaseMs * 2 ** exponent);
}

/** A failed delivery is dead-lettered when fatal or when it was the last attempt allowed. */
export function isFinalFailure(options: QueueOptions, attempt: number, fatal: boolean): boolean {
  return fatal || attempt >= options.maxAttempts;
}

/**
 * How long a blocked `next` may sleep before it looks again for deliveries to take over: a
 * quarter of the visibility timeout, between 20 ms and 1 s.
 */
export function takeoverPollMs(options: QueueOptions): number {
  return Math.max(20, Math.min(1000, Math.floor(options.visibilityMs / 4)));
}

/** The error recorded when a job is dead-lettered because its last delivery was never acked. */
export function timeoutReason(options: QueueOptions): string {
  return `not acknowledged within the visibility timeout (${options.visibilityMs} ms) ` +
    `on each of ${options.maxAttempts} attempts`;
}

/** Tells `options.onExpired` (if any) of a job dead-lettered by timeout; never throws. */
export function reportExpired(options: QueueOptions, job: AnalysisJob | string): void {
  if (!options.onExpired) return;
  try {
    options.onExpired(
      typeof job === "string" ? JSON.parse(job) : copyJob(job),
      timeoutReason(options),
    );
  } catch {
    // a listener's failure is its own business; the job is dead-lettered either way
  }
}

/** A copy that has been through JSON, as a job read back from Redis would be. */
export function copyJob(job: AnalysisJob): AnalysisJob {
  return JSON.parse(JSON.stringify(job));
}

/** Rejects options that would make the queue misbehave (zero attempts, negative waits). */
export function checkOptions(options: QueueOptions): void {
  const bad: string[] = [];
  if (!(options.visibilityMs > 0)) bad.push(`visibilityMs ${options.visibilityMs}`);
  if (!Number.isInteger(options.maxAttempts) || options.maxAttempts < 1) {
    bad.push(`maxAttempts ${options.maxAttempts}`);
  }
  if (!(options.backoffBaseMs >= 0)) bad.push(`backoffBaseMs ${options.backoffBaseMs}`);
  if (!(options.backoffMaxMs >= options.backoffBaseMs)) {
    bad.push(`backoffMaxMs ${options.backoffMaxMs}`);
  }
  if (bad.length) throw new RangeError(`invalid queue options: ${bad.join(", ")}`);
}

/** Dead letters kept (older ones are trimmed): enough to inspect, bounded so they cannot grow. */
export const DEAD_LETTER_CAP = 10_000;

/** How many dead letters `deadLetters()` returns when no limit is given. */
export const DEAD_LETTER_DEFAULT_LIMIT = 50;
