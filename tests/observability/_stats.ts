/**
 * @module Helpers of the request statistics tests (tests/observability/stats_*_test.ts), not a
 * test file itself: a fixed "now" and a clock the test moves, a seeded PRNG and normal variates,
 * exact nearest-rank percentiles, and a sample to record.
 */
import type { RequestSample } from "../../observability/stats.ts";

export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;
/** A fixed "now", 30 s into a minute. */
export const T0 = Date.UTC(2025, 5, 1, 12, 34, 30);

/** A clock the test moves. */
export function clock(start = T0) {
  const c = { t: start, now: () => c.t };
  return c;
}

/** A seeded PRNG (mulberry32), so that every run sees the same samples. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A standard normal variate (Box–Muller). */
export function normal(r: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

/** Exact nearest-rank percentiles, the definition the statistics estimate. */
export function exact(values: number[]): { p50: number; p95: number; p99: number; max: number } {
  const s = [...values].sort((a, b) => a - b);
  const at = (p: number) => s[Math.max(1, Math.ceil((p * s.length) / 100)) - 1];
  return { p50: at(50), p95: at(95), p99: at(99), max: s[s.length - 1] };
}

export const sample = (
  routeClass: string,
  status: number,
  ms: number,
  at?: number,
): RequestSample => ({ routeClass, method: routeClass.split(" ")[0], status, ms, at });
