/**
 * @module Rate limits per caller and per route class (read, write, upload), counted in Redis when
 * REDIS_URL is set (so every API replica shares them) and in memory on the embedded default. The
 * window slides: the count of the current minute plus the previous minute's, weighted by how much
 * of it still falls within the last 60 s. Over the limit the answer is 429 with Retry-After. If
 * Redis does not answer, requests are let through (and logged): a limiter must not take the API
 * down with it.
 */
import type { Logger } from "../platform/log.ts";
import { createSharedLink, type SharedLink, withTimeout } from "../platform/redis_link.ts";
import { FhirError, outcome } from "../platform/outcome.ts";

/** Request classes, and `login`: password logins per client address (the token endpoint's). */
export type RouteClass = "read" | "write" | "upload" | "login";

export interface RateLimitConfig {
  /** Requests per minute per caller; 0: unlimited. */
  read: number;
  write: number;
  upload: number;
  /** Password logins per minute per address (absent or 0: unlimited). */
  login?: number;
}

/** 429: answered as an OperationOutcome (code throttled) with Retry-After. */
export class RateLimited extends FhirError {
  readonly headers: Record<string, string>;
  constructor(routeClass: RouteClass, limit: number, retryAfter: number) {
    super(
      429,
      outcome(
        "error",
        "throttled",
        `More than ${limit} ${routeClass} requests a minute from this caller; retry in ${retryAfter} s`,
      ),
    );
    this.headers = { "Retry-After": String(retryAfter) };
  }
}

export interface RateLimiter {
  /** Counts one request of `caller` in `routeClass`; throws RateLimited over the limit. */
  check(caller: string, routeClass: RouteClass): Promise<void>;
  close(): Promise<void>;
}

/** The class of a request: uploads (STOW-RS, files), other writes, and reads. */
export function routeClassOf(method: string, path: string): RouteClass {
  const m = method.toUpperCase();
  if (m === "GET" || m === "HEAD") return "read";
  if (path.startsWith("/dicomweb/") || path.startsWith("/uploads/")) return "upload";
  return "write";
}

export function createRateLimiter(options: {
  limits: RateLimitConfig;
  redisUrl?: string;
  prefix?: string;
  log: Logger;
  now?: () => number;
}): RateLimiter {
  const now = options.now ?? Date.now;
  const counter = options.redisUrl
    ? redisCounter(options.redisUrl, `${options.prefix ?? "imaging"}:ratelimit`, options.log)
    : memoryCounter();
  return {
    async check(caller, routeClass) {
      const limit = options.limits[routeClass] ?? 0;
      if (!limit) return;
      const t = now();
      const minute = Math.floor(t / 60_000);
      const counts = await counter.incr(`${routeClass}:${caller}`, minute);
      if (!counts) return; // the store did not answer: let it through
      const elapsed = (t % 60_000) / 60_000;
      const estimate = counts.previous * (1 - elapsed) + counts.current;
      if (estimate > limit) {
        // When enough of the previous minute has slid out (or the next minute starts).
        const needed = (estimate - limit) / Math.max(1, counts.previous);
        const wait = counts.previous > 0 && elapsed + needed < 1 ? needed * 60 : 60 - elapsed * 60;
        throw new RateLimited(routeClass, limit, Math.max(1, Math.ceil(wait)));
      }
    },
    close: () => counter.close(),
  };
}

interface Counter {
  /** Adds one to `key`'s count for `minute`; answers it and the previous minute's. */
  incr(key: string, minute: number): Promise<{ current: number; previous: number } | undefined>;
  close(): Promise<void>;
}

function memoryCounter(): Counter {
  const counts = new Map<string, { minute: number; current: number; previous: number }>();
  return {
    incr(key, minute) {
      let c = counts.get(key);
      if (!c) counts.set(key, c = { minute, current: 0, previous: 0 });
      if (c.minute !== minute) {
        c.previous = c.minute === minute - 1 ? c.current : 0;
        c.current = 0;
        c.minute = minute;
      }
      c.current++;
      if (counts.size > 100_000) {
        for (const [k, v] of counts) if (v.minute < minute - 1) counts.delete(k);
      }
      return Promise.resolve({ current: c.current, previous: c.previous });
    },
    close: () => Promise.resolve(),
  };
}

function redisCounter(url: string, prefix: string, log: Logger): Counter {
  const link: SharedLink = createSharedLink({
    url,
    connectTimeoutMs: 1000,
    onError: () => {},
  });
  let warned = 0;
  return {
    async incr(key, minute) {
      try {
        const conn = await link.get();
        const cur = `${prefix}:${key}:${minute}`;
        const prev = `${prefix}:${key}:${minute - 1}`;
        const tx = conn.multi();
        tx.addCommand(["INCR", cur]);
        tx.addCommand(["EXPIRE", cur, "120"]);
        tx.addCommand(["GET", prev]);
        const [current, , previous] = await withTimeout(tx.exec(), 500, () => {});
        return { current: Number(current), previous: Number(previous ?? 0) };
      } catch (e) {
        if (Date.now() - warned > 60_000) {
          warned = Date.now();
          log("warn", "rate limits not counted: Redis did not answer", { error: String(e) });
        }
        return undefined;
      }
    },
    close: () => link.close(),
  };
}
