/**
 * @module The job queue on Redis Streams with a consumer group: one stream per priority, due
 * retries in a sorted set, dead letters in their own stream. Taking a job is one Lua script
 * (promote due retries, take over expired deliveries, read a new entry, stat first); waiting
 * for work is a blocking XREAD on a connection of its own, used only as a wake-up.
 */
import type { AnalysisJob } from "./jobs.ts";
import type { DeadLetter, Delivery, JobQueue, QueueDepth, QueueOptions } from "./queue.ts";
import {
  backoffMs,
  checkOptions,
  DEAD_LETTER_CAP,
  DEAD_LETTER_DEFAULT_LIMIT,
  isFinalFailure,
  reportExpired,
  takeoverPollMs,
  timeoutReason,
} from "./_common.ts";
import {
  createBlockingLinks,
  createSharedLink,
  type LinkOptions,
  type RedisLink,
  withTimeout,
} from "../platform/redis_link.ts";
import { createQueueScripts } from "./_redis_scripts.ts";

export interface RedisQueueOptions extends QueueOptions {
  /** Key prefix; default "imaging:jobs" (the service passes `<REDIS_KEY_PREFIX>:jobs`). */
  prefix?: string;
  /** Consumer group; default "sidecars". */
  group?: string;
  /** Bound on opening a connection (so a call while Redis is down fails fast); default 1500. */
  connectTimeoutMs?: number;
  /** Bound on an ordinary command; a connection that misses it is dropped. Default 2000. */
  commandTimeoutMs?: number;
  /** Told of connection errors (they never throw out of the client). */
  onError?: (error: Error) => void;
}

/** The keys of a queue: `<prefix>:stat`, `<prefix>:routine`, `<prefix>:delayed`, `<prefix>:dead`. */
export function redisQueueKeys(prefix: string) {
  return {
    stat: `${prefix}:stat`,
    routine: `${prefix}:routine`,
    delayed: `${prefix}:delayed`,
    dead: `${prefix}:dead`,
  };
}

type TakeReply =
  | [string, string, string, number, string[]]
  | [null, string, string, string, string[]];

/**
 * Opens the queue. It resolves even while Redis is down (each call then fails within about
 * `connectTimeoutMs`, and `ping()` answers false), so the API can start and answer 503s.
 */
export async function createRedisQueue(
  url: string,
  options: RedisQueueOptions,
): Promise<JobQueue> {
  checkOptions(options);
  const keys = redisQueueKeys(options.prefix ?? "imaging:jobs");
  const group = options.group ?? "sidecars";
  const commandTimeoutMs = options.commandTimeoutMs ?? 2000;
  const scripts = await createQueueScripts();
  const ensureGroups = async (link: RedisLink) => {
    for (const key of [keys.stat, keys.routine]) {
      await link.sendCommand(["XGROUP", "CREATE", key, group, "0", "MKSTREAM"]).catch((e) => {
        if (!String(e?.message).startsWith("BUSYGROUP")) throw e;
      });
    }
  };
  const linkOptions: LinkOptions = {
    url,
    connectTimeoutMs: options.connectTimeoutMs ?? 1500,
    onConnect: ensureGroups,
    onError: options.onError,
  };
  const shared = createSharedLink(linkOptions);
  const blocking = createBlockingLinks(linkOptions);
  let closed = false;
  await shared.get().catch(() => {});

  /**
   * Runs `work` on the shared connection, dropping the connection when it stops answering. When
   * the consumer groups are gone (Redis restarted without persistence, or was flushed), they are
   * created again and `work` runs once more.
   */
  async function onShared<T>(work: (link: RedisLink) => Promise<T>, limitMs = commandTimeoutMs) {
    const link = await shared.get();
    const attempt = async () => {
      try {
        return await work(link);
      } catch (error) {
        if (!String((error as Error)?.message).includes("NOGROUP")) throw error;
        await ensureGroups(link);
        return await work(link);
      }
    };
    return await withTimeout(attempt(), limitMs, () => link.destroy());
  }

  const streamOf = (job: AnalysisJob) => job.priority === "stat" ? keys.stat : keys.routine;
  const settle = (multi: ReturnType<RedisLink["multi"]>, d: Delivery) => {
    multi.addCommand(["XACK", streamOf(d.job), group, d.id]);
    multi.addCommand(["XDEL", streamOf(d.job), d.id]);
    return multi.exec();
  };

  function take(consumer: string): Promise<TakeReply> {
    const run = (link: RedisLink) =>
      scripts.take.run<TakeReply>(link, [keys.stat, keys.routine, keys.delayed, keys.dead], [
        group,
        consumer,
        Date.now(),
        options.visibilityMs,
        options.maxAttempts,
        new Date().toISOString(),
        timeoutReason(options),
        DEAD_LETTER_CAP,
      ]);
    return onShared(run);
  }

  /** Waits until either stream has an entry newer than the ids given, or `ms` passes. */
  async function waitForEntries(statId: string, routineId: string, ms: number): Promise<void> {
    const link = await blocking.acquire();
    try {
      const block = String(Math.max(1, Math.ceil(ms)));
      const streams = [keys.stat, keys.routine, statId, routineId];
      const read = link.sendCommand(["XREAD", "COUNT", "1", "BLOCK", block, "STREAMS", ...streams]);
      await withTimeout(read, ms + commandTimeoutMs, () => link.destroy());
    } finally {
      blocking.release(link);
    }
  }

  async function next(consumer: string, blockMs: number): Promise<Delivery | null> {
    const deadline = Date.now() + blockMs;
    const pollMs = takeoverPollMs(options);
    while (!closed) {
      const reply = await take(consumer);
      for (const expired of reply[4] ?? []) reportExpired(options, expired);
      if (reply[0] !== null) return { id: reply[1], job: JSON.parse(reply[2]), attempt: reply[3] };
      const now = Date.now();
      if (now >= deadline) return null;
      let wait = Math.min(deadline - now, pollMs);
      if (reply[3] !== "") wait = Math.min(wait, Math.max(1, Number(reply[3]) - now));
      await waitForEntries(reply[1], reply[2], wait);
    }
    return null;
  }

  return {
    enqueue: (job) =>
      onShared((link) =>
        link.sendCommand<string>(
          ["XADD", streamOf(job), "*", "job", JSON.stringify(job), "attempt", "1"],
        )
      ),

    next: (consumer, blockMs) =>
      next(consumer, blockMs).catch((error) => {
        if (closed) return null;
        throw error;
      }),

    async extend(consumer, delivery) {
      await onShared((link) =>
        scripts.extend.run(link, [streamOf(delivery.job)], [group, consumer, delivery.id])
      );
    },

    async ack(delivery) {
      await onShared((link) => settle(link.multi(), delivery));
    },

    fail(delivery, error, fatal = false) {
      return onShared(async (link) => {
        const multi = link.multi();
        if (isFinalFailure(options, delivery.attempt, fatal)) {
          multi.addCommand([
            ...["XADD", keys.dead, "MAXLEN", "~", String(DEAD_LETTER_CAP), "*"],
            ...["job", JSON.stringify(delivery.job), "error", error],
            ...["attempts", String(delivery.attempt), "failedAt", new Date().toISOString()],
          ]);
          await settle(multi, delivery);
          return "dead";
        }
        const due = Date.now() + backoffMs(options, delivery.attempt);
        const member = `${delivery.job.priority} ${delivery.attempt + 1} ${
          JSON.stringify(delivery.job)
        }`;
        multi.addCommand(["ZADD", keys.delayed, String(due), member]);
        await settle(multi, delivery);
        return "retry";
      });
    },

    depth: () =>
      onShared(async (link): Promise<QueueDepth> => {
        const multi = link.multi();
        multi.addCommand(["XLEN", keys.stat]);
        multi.addCommand(["XLEN", keys.routine]);
        multi.addCommand(["XPENDING", keys.stat, group]);
        multi.addCommand(["XPENDING", keys.routine, group]);
        multi.addCommand(["ZCARD", keys.delayed]);
        multi.addCommand(["XLEN", keys.dead]);
        const [stat, routine, statPending, routinePending, delayed, dead] = await multi.exec();
        const sp = Number((statPending as [number])[0]);
        const rp = Number((routinePending as [number])[0]);
        return {
          stat: Number(stat) - sp,
          routine: Number(routine) - rp,
          pending: sp + rp,
          delayed: Number(delayed),
          dead: Number(dead),
        };
      }),

    async deadLetters(limit = DEAD_LETTER_DEFAULT_LIMIT): Promise<DeadLetter[]> {
      if (limit <= 0) return [];
      const entries = await onShared((link) =>
        link.sendCommand<[string, string[]][]>(
          ["XREVRANGE", keys.dead, "+", "-", "COUNT", String(limit)],
        )
      );
      return entries.map(([id, flat]) => {
        const f = Object.fromEntries(flat.flatMap((v, i) => i % 2 ? [] : [[v, flat[i + 1]]]));
        const attempts = Number(f.attempts);
        return { id, job: JSON.parse(f.job), error: f.error, attempts, failedAt: f.failedAt };
      });
    },

    ping: () =>
      withTimeout(onShared((link) => link.sendCommand<string>(["PING"])), 1000, () => {})
        .then((reply) => reply === "PONG", () => false),

    async close() {
      closed = true;
      blocking.close();
      await shared.close();
    },
  };
}
