/**
 * @module Picks the job queue: Redis Streams when a Redis URL is configured, otherwise the
 * in-process queue (the embedded default). Both keep the `JobQueue` contract of `queue.ts`.
 */
import type { InferenceConfig } from "../platform/config.ts";
import { createMemoryQueue } from "./memory_queue.ts";
import type { JobQueue, QueueOptions } from "./queue.ts";
import { createRedisQueue, type RedisQueueOptions } from "./redis_queue.ts";

export type JobQueueConfig =
  & { redisUrl: string }
  & QueueOptions
  & Pick<RedisQueueOptions, "prefix" | "group" | "connectTimeoutMs" | "onError">;

/** The queue's key prefix under the configured Redis key prefix: `<REDIS_KEY_PREFIX>:jobs`. */
export function queuePrefix(c: Pick<InferenceConfig, "redisKeyPrefix">): string {
  return `${c.redisKeyPrefix}:jobs`;
}

/** The queue settings of the configuration (`REDIS_URL`, `REDIS_KEY_PREFIX`, `JOB_*`). */
export function queueSettings(
  c: InferenceConfig,
): { redisUrl: string; prefix: string } & QueueOptions {
  return {
    redisUrl: c.redisUrl,
    prefix: queuePrefix(c),
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
