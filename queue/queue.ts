/**
 * @module The job queue contract. Two implementations pass the same contract tests: Redis
 * Streams with a consumer group (`redis_queue.ts`) and an in-process queue (`memory_queue.ts`,
 * the embedded default). At-least-once delivery: a job is acked only after its results are
 * committed; a delivery whose consumer died is taken over after the visibility timeout; a failed
 * job is retried with exponential backoff up to `maxAttempts`, then dead-lettered. `stat` jobs
 * are delivered before `routine` ones.
 */
import type { AnalysisJob } from "./jobs.ts";

export interface Delivery {
  /** The message id (a Redis stream id, or a sequence for the in-process queue). */
  id: string;
  job: AnalysisJob;
  /** 1 on the first delivery, then counts retries and takeovers. */
  attempt: number;
}

export interface QueueDepth {
  stat: number;
  routine: number;
  /** Delivered, not yet acked. */
  pending: number;
  /** Waiting for their retry backoff. */
  delayed: number;
  dead: number;
}

export interface DeadLetter {
  id: string;
  job: AnalysisJob;
  error: string;
  attempts: number;
  failedAt: string;
}

export interface QueueOptions {
  /** A delivery not acked or extended for this long is given to another consumer. */
  visibilityMs: number;
  /** Deliveries before a failing job is dead-lettered. */
  maxAttempts: number;
  /** Backoff before retry n is baseMs × 2^(n−1), capped at maxMs. */
  backoffBaseMs: number;
  backoffMaxMs: number;
  /**
   * Told of each job dead-lettered because its last allowed delivery was never acked (every
   * consumer that took it died or hung), by the consumer whose `next` found it expired: no one
   * else is left to mark its Task failed.
   */
  onExpired?: (job: AnalysisJob, error: string) => void;
}

export interface JobQueue {
  /** Adds a job; resolves when it is durably queued. */
  enqueue(job: AnalysisJob): Promise<string>;
  /**
   * The next delivery for `consumer`: stat before routine, due retries and deliveries of dead
   * consumers included; waits up to `blockMs`, then null.
   */
  next(consumer: string, blockMs: number): Promise<Delivery | null>;
  /** Resets the visibility timeout of a delivery still being worked on. */
  extend(consumer: string, delivery: Delivery): Promise<void>;
  /** Done: the results are committed. */
  ack(delivery: Delivery): Promise<void>;
  /** Failed: retried after a backoff, or dead-lettered after maxAttempts (or when `fatal`). */
  fail(delivery: Delivery, error: string, fatal?: boolean): Promise<"retry" | "dead">;
  depth(): Promise<QueueDepth>;
  deadLetters(limit?: number): Promise<DeadLetter[]>;
  /** True when the backing service answers (for /health and 503s). */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}
