/**
 * @module Request statistics in bounded memory: count, errors and latency percentiles per route
 * class and overall for the last hour and the last day (for `GET /admin/stats`), and cumulative
 * counters and latency histograms in the Prometheus text format (for `GET /metrics`).
 *
 * Each route class keeps two rings of time slots: 60 one-minute slots (the hour window) and 144
 * ten-minute slots (the day window). A slot holds a count, errors (status ≥ 500), client errors
 * (400–499), min, max and a fixed 352-bin latency histogram (see `histogram.ts`); a window's
 * percentiles come from summing its slots' histograms and are within 2% of the exact nearest-rank
 * percentiles for latencies from 0.05 ms to 60 s. The hour window is the current minute and the 59
 * before it (59 to 60 minutes of traffic); the day window is the current ten-minute slot and the
 * 143 before it (23 h 50 min to 24 h). Ten-minute slots for the day (rather than 1440 one-minute
 * slots) keep a route class busy in every minute of the day at about 340 KB (60 + 144 slots of
 * about 1.4 KB) instead of about 2 MB; slot histograms are allocated on a slot's first sample, so
 * quiet route classes cost far less. At most `maxRoutes` classes (default 200) are tracked, in the
 * order first seen; samples of any further class are counted under `"other"`. The worst case is
 * thus about 70 MB at the default cap (measured: 67 MiB for 201 classes with every slot in use),
 * whatever the traffic; with this server's few dozen route classes it is a few MB.
 *
 * `record()` is O(1) and allocates nothing once its route class, method and slot have been seen;
 * `snapshot()` sums at most (maxRoutes + 1) × 204 histograms, over the bins each slot used.
 */
import { BIN_COUNT, binOf, percentilesOf } from "./histogram.ts";
import { normalizeMethod } from "./route_class.ts";

export { normalizeMethod, pathClass, routeClass } from "./route_class.ts";
export { MAX_MS, MIN_MS, RELATIVE_ERROR } from "./histogram.ts";

/** One finished request. */
export interface RequestSample {
  /** The route class, from {@link routeClass}: e.g. `"GET /fhir/{type}/{id}"`. */
  routeClass: string;
  /** The HTTP method (a method outside the standard set is counted as `OTHER`). */
  method: string;
  /** The response status. */
  status: number;
  /** The time from request to response, in milliseconds (NaN, negative or infinite counts as 0). */
  ms: number;
  /** When it finished, epoch milliseconds; default now. */
  at?: number;
}

/** The statistics of one window, for one route class or overall. */
export interface WindowStats {
  /** Requests. */
  count: number;
  /** Requests answered with a status of 500 or above. */
  errors: number;
  /** Requests answered with a status from 400 to 499. */
  clientErrors: number;
  /** errors / count; 0 when there were none. */
  errorRate: number;
  /** The median latency (ms, nearest rank), within 2% for latencies from 0.05 ms to 60 s. */
  p50: number;
  /** The 95th percentile latency (ms), within 2% likewise. */
  p95: number;
  /** The 99th percentile latency (ms), within 2% likewise. */
  p99: number;
  /** The slowest request (ms, exact). */
  maxMs: number;
}

/** The statistics of one window: overall and per route class (classes with traffic only). */
export interface WindowReport {
  overall: WindowStats;
  routes: Record<string, WindowStats>;
}

/** What `GET /admin/stats` shows. */
export interface StatsSnapshot {
  /** When it was taken (ISO 8601). */
  generatedAt: string;
  windows: { hour: WindowReport; day: WindowReport };
}

/** The statistics of a server's requests. */
export interface RequestStats {
  /** Counts one finished request. Cheap: O(1), no allocation in the steady state. */
  record(sample: RequestSample): void;
  /** The hour and day windows as of `now` (default: the clock given at creation). */
  snapshot(now?: number): StatsSnapshot;
  /** Cumulative metrics in the Prometheus text format 0.0.4 ({@link PROMETHEUS_CONTENT_TYPE}). */
  prometheus(): string;
}

/** Options of {@link createRequestStats}. */
export interface RequestStatsOptions {
  /** The clock, epoch milliseconds (default `Date.now`). */
  now?: () => number;
  /** Route classes tracked separately (default 200); samples of any other count as `"other"`. */
  maxRoutes?: number;
}

/** The Content-Type of {@link RequestStats.prometheus}'s text. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** The route class that samples beyond the `maxRoutes` cap are counted under. */
export const OVERFLOW_ROUTE = "other";

/** The `le` bounds (seconds) of `http_request_duration_seconds`, before `+Inf`. */
export const DURATION_BUCKETS: readonly number[] = [
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
];

const MINUTE_MS = 60_000;
const HOUR_SLOTS = 60;
const DAY_SLOT_MS = 10 * MINUTE_MS;
const DAY_SLOTS = 144;
const PERCENTS = [50, 95, 99] as const;
const STATUS_CLASSES = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"] as const;

/** One time slot of one route class. */
interface Slot {
  /** The slot's number since the epoch (minute or ten-minute); -1 when never used. */
  epoch: number;
  count: number;
  errors: number;
  clientErrors: number;
  min: number;
  max: number;
  /** The lowest and highest bins used (so that resets and sums touch only those). */
  lo: number;
  hi: number;
  bins: Uint32Array | null;
}

/** Cumulative Prometheus series of one route class and method. */
interface Series {
  method: string;
  byStatus: Float64Array;
  /** Non-cumulative counts per DURATION_BUCKETS bound (+Inf last); summed on output. */
  buckets: Float64Array;
  sum: number;
  count: number;
}

interface Route {
  key: string;
  /** The Prometheus `route` label: the class without its method. */
  label: string;
  hour: Slot[];
  day: Slot[];
  series: Map<string, Series>;
}

/** Sums of slots over a window. */
interface Accumulator {
  count: number;
  errors: number;
  clientErrors: number;
  min: number;
  max: number;
  bins: Float64Array;
}

/** Request statistics with the given clock and route-class cap. */
export function createRequestStats(options: RequestStatsOptions = {}): RequestStats {
  const now = options.now ?? Date.now;
  const maxRoutes = Math.max(0, Math.floor(options.maxRoutes ?? 200));
  const startedAt = now();
  const routes = new Map<string, Route>();
  let overflow: Route | undefined;

  const routeOf = (key: string): Route => {
    const known = routes.get(key);
    if (known) return known;
    if (key !== OVERFLOW_ROUTE && routes.size < maxRoutes + (overflow ? 1 : 0)) {
      const route = newRoute(key);
      routes.set(key, route);
      return route;
    }
    if (!overflow) {
      overflow = newRoute(OVERFLOW_ROUTE);
      routes.set(OVERFLOW_ROUTE, overflow);
    }
    return overflow;
  };

  return {
    record(sample: RequestSample): void {
      let at = sample.at ?? now();
      if (!Number.isFinite(at)) at = now();
      const ms = sample.ms > 0 && sample.ms < Infinity ? sample.ms : 0;
      const status = sample.status;
      const error = status >= 500;
      const clientError = status >= 400 && status < 500;
      const bin = binOf(ms);
      const route = routeOf(sample.routeClass);
      add(route.hour, Math.floor(at / MINUTE_MS), ms, bin, error, clientError);
      add(route.day, Math.floor(at / DAY_SLOT_MS), ms, bin, error, clientError);

      let series = route.series.get(sample.method);
      if (!series) {
        const method = normalizeMethod(sample.method);
        series = route.series.get(method);
        if (!series) {
          series = {
            method,
            byStatus: new Float64Array(STATUS_CLASSES.length),
            buckets: new Float64Array(DURATION_BUCKETS.length + 1),
            sum: 0,
            count: 0,
          };
          route.series.set(method, series);
        }
      }
      const sc = Math.floor(status / 100);
      series.byStatus[sc >= 1 && sc <= 5 ? sc - 1 : 5]++;
      const seconds = ms / 1000;
      let b = 0;
      while (b < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[b]) b++;
      series.buckets[b]++;
      series.sum += seconds;
      series.count++;
    },

    snapshot(at?: number): StatsSnapshot {
      const t = at ?? now();
      const minute = Math.floor(t / MINUTE_MS);
      const tenMinutes = Math.floor(t / DAY_SLOT_MS);
      return {
        generatedAt: new Date(t).toISOString(),
        windows: {
          hour: report(routes, (r) => r.hour, minute - HOUR_SLOTS, minute),
          day: report(routes, (r) => r.day, tenMinutes - DAY_SLOTS, tenMinutes),
        },
      };
    },

    prometheus(): string {
      const lines: string[] = [];
      const all = [...routes.values()].sort((a, b) => compare(a.label, b.label));
      const seriesOf = (r: Route) =>
        [...r.series.values()].sort((a, b) => compare(a.method, b.method));
      lines.push(
        "# HELP http_requests_total HTTP requests answered, by route, method and status class.",
        "# TYPE http_requests_total counter",
      );
      for (const r of all) {
        for (const s of seriesOf(r)) {
          const labels = `route="${escapeLabel(r.label)}",method="${escapeLabel(s.method)}"`;
          for (let i = 0; i < STATUS_CLASSES.length; i++) {
            if (s.byStatus[i] === 0) continue;
            lines.push(
              `http_requests_total{${labels},status_class="${STATUS_CLASSES[i]}"} ${s.byStatus[i]}`,
            );
          }
        }
      }
      lines.push(
        "# HELP http_request_duration_seconds Time from request to response, by route and method.",
        "# TYPE http_request_duration_seconds histogram",
      );
      for (const r of all) {
        for (const s of seriesOf(r)) {
          const labels = `route="${escapeLabel(r.label)}",method="${escapeLabel(s.method)}"`;
          let cumulative = 0;
          for (let i = 0; i <= DURATION_BUCKETS.length; i++) {
            cumulative += s.buckets[i];
            const le = i < DURATION_BUCKETS.length ? String(DURATION_BUCKETS[i]) : "+Inf";
            lines.push(`http_request_duration_seconds_bucket{${labels},le="${le}"} ${cumulative}`);
          }
          lines.push(`http_request_duration_seconds_sum{${labels}} ${s.sum}`);
          lines.push(`http_request_duration_seconds_count{${labels}} ${s.count}`);
        }
      }
      lines.push(
        "# HELP process_uptime_seconds Seconds since the statistics were created.",
        "# TYPE process_uptime_seconds gauge",
        `process_uptime_seconds ${Math.max(0, (now() - startedAt) / 1000)}`,
      );
      return lines.join("\n") + "\n";
    },
  };
}

/** Escapes a label value per the text format: backslash, double quote and newline. */
export function escapeLabel(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === "\\" ? "\\\\" : c === '"' ? '\\"' : "\\n"));
}

function newRoute(key: string): Route {
  const space = key.indexOf(" ");
  // "GET /fhir/Patient" → "/fhir/Patient": the method is a label of its own.
  const label = space > 0 && normalizeMethod(key.slice(0, space)) === key.slice(0, space)
    ? key.slice(space + 1)
    : key;
  const slots = (n: number) =>
    Array.from({ length: n }, (): Slot => ({
      epoch: -1,
      count: 0,
      errors: 0,
      clientErrors: 0,
      min: Infinity,
      max: 0,
      lo: BIN_COUNT,
      hi: -1,
      bins: null,
    }));
  return { key, label, hour: slots(HOUR_SLOTS), day: slots(DAY_SLOTS), series: new Map() };
}

/** Counts a sample into the ring slot of `epoch`, unless the slot has moved on past it. */
function add(
  ring: Slot[],
  epoch: number,
  ms: number,
  bin: number,
  error: boolean,
  clientError: boolean,
): void {
  const n = ring.length;
  const slot = ring[((epoch % n) + n) % n];
  if (slot.epoch !== epoch) {
    if (slot.epoch > epoch) return; // older than anything the ring still holds
    slot.epoch = epoch;
    slot.count = 0;
    slot.errors = 0;
    slot.clientErrors = 0;
    slot.min = Infinity;
    slot.max = 0;
    if (slot.hi >= 0) slot.bins?.fill(0, slot.lo, slot.hi + 1);
    slot.lo = BIN_COUNT;
    slot.hi = -1;
  }
  slot.bins ??= new Uint32Array(BIN_COUNT);
  slot.bins[bin]++;
  if (bin < slot.lo) slot.lo = bin;
  if (bin > slot.hi) slot.hi = bin;
  slot.count++;
  if (error) slot.errors++;
  else if (clientError) slot.clientErrors++;
  if (ms < slot.min) slot.min = ms;
  if (ms > slot.max) slot.max = ms;
}

/** The window of slots with `after < epoch <= upTo`, per route and overall. */
function report(
  routes: Map<string, Route>,
  ring: (r: Route) => Slot[],
  after: number,
  upTo: number,
): WindowReport {
  const overall = accumulator();
  const out: Record<string, WindowStats> = {};
  const keys = [...routes.keys()].sort(compare);
  for (const key of keys) {
    const acc = accumulator();
    for (const slot of ring(routes.get(key)!)) {
      if (slot.epoch <= after || slot.epoch > upTo || !slot.count) continue;
      acc.count += slot.count;
      acc.errors += slot.errors;
      acc.clientErrors += slot.clientErrors;
      if (slot.min < acc.min) acc.min = slot.min;
      if (slot.max > acc.max) acc.max = slot.max;
      const bins = slot.bins!;
      for (let b = slot.lo; b <= slot.hi; b++) acc.bins[b] += bins[b];
    }
    if (!acc.count) continue;
    out[key] = statsOf(acc);
    overall.count += acc.count;
    overall.errors += acc.errors;
    overall.clientErrors += acc.clientErrors;
    if (acc.min < overall.min) overall.min = acc.min;
    if (acc.max > overall.max) overall.max = acc.max;
    for (let b = 0; b < BIN_COUNT; b++) overall.bins[b] += acc.bins[b];
  }
  return { overall: statsOf(overall), routes: out };
}

function accumulator(): Accumulator {
  return {
    count: 0,
    errors: 0,
    clientErrors: 0,
    min: Infinity,
    max: 0,
    bins: new Float64Array(BIN_COUNT),
  };
}

function statsOf(acc: Accumulator): WindowStats {
  const [p50, p95, p99] = percentilesOf(acc.bins, acc.count, PERCENTS, acc.min, acc.max);
  return {
    count: acc.count,
    errors: acc.errors,
    clientErrors: acc.clientErrors,
    errorRate: acc.count ? acc.errors / acc.count : 0,
    p50,
    p95,
    p99,
    maxMs: acc.count ? acc.max : 0,
  };
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
