/**
 * @module The in-process job queue, the embedded default when no REDIS_URL is set: the same
 * semantics as the Redis Streams queue (stat before routine, visibility timeout and takeover,
 * retries with backoff, dead letters) kept in this process's memory, so lost on restart.
 */
import type { AnalysisJob, Priority } from "./jobs.ts";
import type { DeadLetter, Delivery, JobQueue, QueueDepth, QueueOptions } from "./queue.ts";
import {
  backoffMs,
  checkOptions,
  copyJob,
  DEAD_LETTER_CAP,
  DEAD_LETTER_DEFAULT_LIMIT,
  isFinalFailure,
  reportExpired,
  timeoutReason,
} from "./_common.ts";

const PRIORITIES: readonly Priority[] = ["stat", "routine"];

interface Entry {
  id: string;
  job: AnalysisJob;
  /** The attempt of its first delivery; each takeover adds one. */
  attempt: number;
  deliveries: number;
}

interface Lease {
  entry: Entry;
  consumer: string;
  /** When it was delivered or last extended (ms). */
  since: number;
}

/** The in-process queue. `close()` wakes every waiting `next` with null and clears its timers. */
export function createMemoryQueue(options: QueueOptions): JobQueue {
  checkOptions(options);
  const waiting: Record<Priority, Entry[]> = { stat: [], routine: [] };
  /** In delivery order, like a consumer group's pending entries list. */
  const pending = new Map<string, Lease>();
  const delayed: { job: AnalysisJob; attempt: number; due: number }[] = [];
  const dead: DeadLetter[] = [];
  const waiters = new Set<() => void>();
  let sequence = 0;
  let closed = false;

  const newId = () => String(++sequence);
  const wakeAll = () => [...waiters].forEach((wake) => wake());

  function addDead(job: AnalysisJob, error: string, attempts: number): void {
    dead.push({ id: newId(), job, error, attempts, failedAt: new Date().toISOString() });
    if (dead.length > DEAD_LETTER_CAP) dead.splice(0, dead.length - DEAD_LETTER_CAP);
  }

  function promoteDue(now: number): void {
    delayed.sort((a, b) => a.due - b.due);
    while (delayed.length && delayed[0].due <= now) {
      const { job, attempt } = delayed.shift()!;
      waiting[job.priority].push({ id: newId(), job, attempt, deliveries: 0 });
    }
  }

  function takeOver(priority: Priority, consumer: string, now: number): Delivery | null {
    for (const [id, lease] of pending) {
      if (lease.entry.job.priority !== priority || now - lease.since < options.visibilityMs) {
        continue;
      }
      const entry = lease.entry;
      entry.deliveries++;
      const attempt = entry.attempt + entry.deliveries - 1;
      if (attempt > options.maxAttempts) {
        pending.delete(id);
        addDead(entry.job, timeoutReason(options), attempt - 1);
        reportExpired(options, entry.job);
        continue;
      }
      // Re-inserted so the map stays in (re)delivery order.
      pending.delete(id);
      pending.set(id, { entry, consumer, since: now });
      return { id, job: copyJob(entry.job), attempt };
    }
    return null;
  }

  function take(consumer: string): Delivery | null {
    const now = Date.now();
    promoteDue(now);
    for (const priority of PRIORITIES) {
      const taken = takeOver(priority, consumer, now);
      if (taken) return taken;
      const entry = waiting[priority].shift();
      if (entry) {
        entry.deliveries = 1;
        pending.set(entry.id, { entry, consumer, since: now });
        return { id: entry.id, job: copyJob(entry.job), attempt: entry.attempt };
      }
    }
    return null;
  }

  /** Milliseconds until a delayed retry falls due or a lease expires (Infinity when none). */
  function nextChangeIn(now: number): number {
    let at = Infinity;
    for (const d of delayed) at = Math.min(at, d.due);
    for (const lease of pending.values()) at = Math.min(at, lease.since + options.visibilityMs);
    return Math.max(1, at - now);
  }

  function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        waiters.delete(wake);
        resolve();
      };
      // Not unref'd: a waiting next() is real work that keeps the process alive; close() clears it.
      const timer = setTimeout(wake, ms);
      waiters.add(wake);
    });
  }

  function assertOpen(): void {
    if (closed) throw new Error("the job queue is closed");
  }

  return {
    enqueue(job) {
      assertOpen();
      const id = newId();
      waiting[job.priority].push({ id, job: copyJob(job), attempt: 1, deliveries: 0 });
      wakeAll();
      return Promise.resolve(id);
    },

    async next(consumer, blockMs) {
      const deadline = Date.now() + blockMs;
      while (!closed) {
        const delivery = take(consumer);
        if (delivery) return delivery;
        const now = Date.now();
        if (now >= deadline) return null;
        await sleep(Math.min(deadline - now, nextChangeIn(now)));
      }
      return null;
    },

    extend(consumer, delivery) {
      const lease = pending.get(delivery.id);
      if (lease && lease.consumer === consumer) lease.since = Date.now();
      return Promise.resolve();
    },

    ack(delivery) {
      pending.delete(delivery.id);
      return Promise.resolve();
    },

    fail(delivery, error, fatal = false) {
      assertOpen();
      pending.delete(delivery.id);
      const job = copyJob(delivery.job);
      if (isFinalFailure(options, delivery.attempt, fatal)) {
        addDead(job, error, delivery.attempt);
        return Promise.resolve("dead");
      }
      const due = Date.now() + backoffMs(options, delivery.attempt);
      delayed.push({ job, attempt: delivery.attempt + 1, due });
      wakeAll();
      return Promise.resolve("retry");
    },

    depth(): Promise<QueueDepth> {
      return Promise.resolve({
        stat: waiting.stat.length,
        routine: waiting.routine.length,
        pending: pending.size,
        delayed: delayed.length,
        dead: dead.length,
      });
    },

    deadLetters(limit = DEAD_LETTER_DEFAULT_LIMIT) {
      const newest = dead.slice(-Math.max(0, limit)).reverse();
      return Promise.resolve(
        limit > 0 ? newest.map((d) => ({ ...d, job: copyJob(d.job) })) : [],
      );
    },

    ping: () => Promise.resolve(!closed),

    close() {
      closed = true;
      wakeAll();
      return Promise.resolve();
    },
  };
}
