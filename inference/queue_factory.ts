/**
 * @module Picks the job queue: Redis Streams when a Redis URL is configured, otherwise the
 * in-process queue (the embedded default). Both keep the `JobQueue` contract of `queue.ts`.
 */
import type { InferenceConfig } from "../config.ts";
import { createMemoryQueue } from "./memory_queue.ts";
import type { JobQueue, QueueOptions } from "./queue.ts";
import { createRedisQueue, type RedisQueueOptions } from "./redis_queue.ts";

export type JobQueueConfig =
  & { redisUrl: string }
  & QueueOptions
  & Pick<RedisQueueOptions, "prefix" | "group" | "connectTimeoutMs" | "onError">;

/** The queue settings of the configuration (`REDIS_URL`, `JOB_*`). */
export function queueSettings(c: InferenceConfig): { redisUrl: string } & QueueOptions {
  return {
    redisUrl: c.redisUrl,
    visibilityMs: c.visibilityMs,
    maxAttempts: c.maxAttempts,
    backoffBaseMs: c.backoffBaseMs,
    backoffMaxMs: c.backoffMaxMs,
  };
}

/** Redis when `redisUrl` is non-empty, else in memory. Resolves even while Redis is down. */
export function createJobQueue(config: JobQueueConfig): Promise<JobQueue> {
  const { redisUrl, ...options } = config;
  if (redisUrl) return createRedisQueue(redisUrl, options);
  return Promise.resolve(createMemoryQueue(options));
}
