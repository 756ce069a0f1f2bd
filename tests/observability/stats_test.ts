/**
 * @module Request statistics: hour and day windows, per route and overall, error rates, the route
 * cap, route classes, bounded memory, percentile accuracy, the Prometheus text and record()'s cost.
 */
import assert from "node:assert/strict";
import { binOf, percentilesOf } from "../../observability/histogram.ts";
import {
  createRequestStats,
  DURATION_BUCKETS,
  escapeLabel,
  MAX_MS,
  MIN_MS,
  OVERFLOW_ROUTE,
  RELATIVE_ERROR,
  type RequestSample,
  routeClass,
  type WindowStats,
} from "../../observability/stats.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
/** A fixed "now", 30 s into a minute. */
const T0 = Date.UTC(2025, 5, 1, 12, 34, 30);

/** A clock the test moves. */
function clock(start = T0) {
  const c = { t: start, now: () => c.t };
  return c;
}

/** A seeded PRNG (mulberry32), so that every run sees the same samples. */
function rng(seed: number): () => number {
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
function normal(r: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

/** Exact nearest-rank percentiles, the definition the statistics estimate. */
function exact(values: number[]): { p50: number; p95: number; p99: number; max: number } {
  const s = [...values].sort((a, b) => a - b);
  const at = (p: number) => s[Math.max(1, Math.ceil((p * s.length) / 100)) - 1];
  return { p50: at(50), p95: at(95), p99: at(99), max: s[s.length - 1] };
}

const sample = (
  routeClass: string,
  status: number,
  ms: number,
  at?: number,
): RequestSample => ({ routeClass, method: routeClass.split(" ")[0], status, ms, at });

Deno.test("windows: 61 minutes ago is in the day but not the hour; 25 hours ago in neither", () => {
  const c = clock();
  const stats = createRequestStats({ now: c.now });
  const route = "GET /fhir/Patient/{id}";
  stats.record(sample(route, 200, 10)); // now (at defaults to the clock)
  stats.record(sample(route, 200, 20, T0 - 59 * MINUTE));
  stats.record(sample(route, 200, 30, T0 - 61 * MINUTE));
  stats.record(sample(route, 200, 40, T0 - 23 * HOUR));
  stats.record(sample(route, 200, 50, T0 - 25 * HOUR));
  const snap = stats.snapshot();
  assert.equal(snap.generatedAt, new Date(T0).toISOString());
  assert.equal(snap.windows.hour.overall.count, 2);
  assert.equal(snap.windows.hour.overall.maxMs, 20);
  assert.equal(snap.windows.day.overall.count, 4);
  assert.equal(snap.windows.day.overall.maxMs, 40);
  assert.equal(snap.windows.hour.routes[route].count, 2);
  assert.equal(snap.windows.day.routes[route].count, 4);

  // As time passes, samples leave the windows without any further record().
  assert.equal(stats.snapshot(T0 + 2 * MINUTE).windows.hour.overall.count, 1);
  assert.equal(stats.snapshot(T0 + HOUR).windows.hour.overall.count, 0);
  assert.deepEqual(stats.snapshot(T0 + HOUR).windows.hour.routes, {});
  assert.equal(stats.snapshot(T0 + 2 * HOUR).windows.day.overall.count, 3);
  assert.equal(stats.snapshot(T0 + 25 * HOUR).windows.day.overall.count, 0);

  // A ring slot reused for a newer minute drops what it held; a sample older than the slot's
  // current minute is not counted in the windows (it still counts in the Prometheus totals).
  c.t = T0 + 60 * MINUTE; // same hour-ring slot as T0
  stats.record(sample(route, 200, 60));
  stats.record(sample(route, 200, 70, T0)); // too old for that slot now
  const later = stats.snapshot();
  assert.equal(later.windows.hour.overall.count, 1);
  assert.equal(later.windows.hour.overall.maxMs, 60);
  // 10, 20, 30, 60 and 70; 40 (23 h before T0) is now 24 h old.
  assert.equal(later.windows.day.overall.count, 5);
});

Deno.test("overall sums the routes; per-route stats are each route's own", () => {
  const stats = createRequestStats({ now: () => T0 });
  const a = "GET /fhir/Patient/{id}";
  const b = "POST /fhir/Observation";
  const msA = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const msB = [100, 200, 300, 400, 500];
  for (const ms of msA) stats.record(sample(a, 200, ms));
  for (const ms of msB) stats.record(sample(b, 201, ms));
  const { overall, routes } = stats.snapshot().windows.hour;
  assert.deepEqual(Object.keys(routes), [a, b]);
  assert.equal(routes[a].count, 10);
  assert.equal(routes[b].count, 5);
  assert.equal(overall.count, 15);
  assert.equal(routes[a].maxMs, 10);
  assert.equal(routes[b].maxMs, 500);
  assert.equal(overall.maxMs, 500);
  const close = (got: number, want: number) =>
    assert.ok(Math.abs(got - want) <= RELATIVE_ERROR * want, `${got} vs ${want}`);
  close(routes[a].p50, exact(msA).p50);
  close(routes[b].p50, exact(msB).p50);
  close(overall.p50, exact([...msA, ...msB]).p50);
  close(overall.p95, exact([...msA, ...msB]).p95);
  assert.deepEqual(stats.snapshot().windows.day.overall, overall);
});

Deno.test("error rate: 5xx are errors, 4xx client errors; an empty window is all zeros", () => {
  const stats = createRequestStats({ now: () => T0 });
  const route = "GET /fhir/Patient";
  for (const status of [200, 201, 304, 400, 404, 429, 500, 502, 503, 200]) {
    stats.record(sample(route, status, 5));
  }
  const w = stats.snapshot().windows.hour.overall;
  assert.equal(w.count, 10);
  assert.equal(w.errors, 3);
  assert.equal(w.clientErrors, 3);
  assert.equal(w.errorRate, 0.3);
  assert.equal(stats.snapshot().windows.hour.routes[route].errorRate, 0.3);

  const empty: WindowStats = {
    count: 0,
    errors: 0,
    clientErrors: 0,
    errorRate: 0,
    p50: 0,
    p95: 0,
    p99: 0,
    maxMs: 0,
  };
  const none = createRequestStats({ now: () => T0 }).snapshot();
  assert.deepEqual(none.windows.hour, { overall: empty, routes: {} });
  assert.deepEqual(none.windows.day, { overall: empty, routes: {} });
});

Deno.test('maxRoutes: route classes past the cap are counted under "other"', () => {
  const stats = createRequestStats({ now: () => T0, maxRoutes: 5 });
  for (let i = 0; i < 12; i++) stats.record(sample(`GET /route${i}`, 200, 1));
  stats.record(sample("GET /route0", 500, 1)); // an admitted route still counts separately
  const { overall, routes } = stats.snapshot().windows.day;
  assert.deepEqual(Object.keys(routes), [
    "GET /route0",
    "GET /route1",
    "GET /route2",
    "GET /route3",
    "GET /route4",
    OVERFLOW_ROUTE,
  ]);
  assert.equal(routes[OVERFLOW_ROUTE].count, 7);
  assert.equal(routes["GET /route0"].count, 2);
  assert.equal(routes["GET /route0"].errors, 1);
  assert.equal(overall.count, 13);
  const text = stats.prometheus();
  assert.match(text, /http_requests_total\{route="other",method="GET",status_class="2xx"\} 7\n/);
  assert.doesNotMatch(text, /route5/);

  // The default cap is 200.
  const dflt = createRequestStats({ now: () => T0 });
  for (let i = 0; i < 250; i++) dflt.record(sample(`GET /r${i}`, 200, 1));
  const classes = Object.keys(dflt.snapshot().windows.hour.routes);
  assert.equal(classes.length, 201);
  assert.equal(dflt.snapshot().windows.hour.routes[OVERFLOW_ROUTE].count, 50);
});

const HEX64 = "a3".repeat(32);
const ROUTE_TABLE: [string, string, string][] = [
  ["GET", "/fhir/Patient/123/_history/4", "GET /fhir/Patient/{id}/_history/{vid}"],
  ["GET", "/fhir/Patient/123/_history", "GET /fhir/Patient/{id}/_history"],
  ["GET", "/fhir/Patient/123", "GET /fhir/Patient/{id}"],
  ["PUT", "/fhir/Observation/abc-1.2", "PUT /fhir/Observation/{id}"],
  ["GET", "/fhir/Patient?name=smith&_count=10", "GET /fhir/Patient"],
  ["POST", "/fhir/Patient", "POST /fhir/Patient"],
  ["POST", "/fhir/Patient/_search", "POST /fhir/Patient/_search"],
  ["GET", "/fhir/Task/_history?_since=2025-01-01", "GET /fhir/Task/_history"],
  ["GET", "/fhir/_history", "GET /fhir/_history"],
  ["POST", "/fhir/ImagingStudy/1.2.840/$analyze", "POST /fhir/ImagingStudy/{id}/$analyze"],
  ["POST", "/fhir/ImagingStudy/1/$made-up-op", "POST /fhir/ImagingStudy/{id}/{op}"],
  ["POST", "/fhir/ImagingStudy/1/%24analyze", "POST /fhir/ImagingStudy/{id}/$analyze"],
  ["GET", "/fhir/Patient/$everything", "GET /fhir/Patient/$everything"],
  ["GET", "/fhir/Xyzzy/1", "GET /fhir/{type}/{id}"],
  ["GET", "/fhir/patient/1", "GET /fhir/{type}/{id}"],
  ["GET", "/fhir/<script>/1", "GET /fhir/{type}/{id}"],
  ["POST", "/fhir", "POST /fhir"],
  ["POST", "/fhir/", "POST /fhir"],
  ["GET", "/fhir/metadata", "GET /fhir/metadata"],
  ["HEAD", "/fhir/metadata?_format=json", "HEAD /fhir/metadata"],
  ["GET", "/fhir/.well-known/smart-configuration", "GET /fhir/.well-known/smart-configuration"],
  ["GET", "/fhir/Patient/1/_history/2/extra", "GET {other}"],
  ["GET", "/fhir/Patient/1/Observation", "GET {other}"],
  ["POST", "/fhir/ImagingStudy/1/$analyze/x", "POST {other}"],
  ["GET", "/fhir/$export", "GET /fhir/$export"],
  [
    "GET",
    "/dicomweb/studies/1.2.3/series/4.5/instances/6.7/frames/1,2",
    "GET /dicomweb/studies/{study}/series/{series}/instances/{instance}/frames/{frames}",
  ],
  [
    "GET",
    "/dicomweb/studies/1.2.3/series/4.5/instances/6.7/frames/3/rendered",
    "GET /dicomweb/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/rendered",
  ],
  [
    "GET",
    "/dicomweb/studies/1.2.3/series/4.5/instances/6.7/bulkdata/7FE00010/1",
    "GET /dicomweb/studies/{study}/series/{series}/instances/{instance}/bulkdata/{path}",
  ],
  [
    "GET",
    "/dicomweb/studies/1.2.3/series/4.5/metadata",
    "GET /dicomweb/studies/{study}/series/{series}/metadata",
  ],
  ["GET", "/dicomweb/studies?PatientID=7", "GET /dicomweb/studies"],
  ["GET", "/dicomweb/studies/1.2.3/instances", "GET /dicomweb/studies/{study}/instances"],
  ["POST", "/dicomweb/studies/1.2.3", "POST /dicomweb/studies/{study}"],
  ["DELETE", "/dicomweb/studies/1.2.3", "DELETE /dicomweb/studies/{study}"],
  ["GET", "/dicomweb/studies/1.2.3/frames/1", "GET {other}"],
  ["GET", "/dicomweb/studies/1/studies/2", "GET {other}"],
  ["GET", "/dicomweb", "GET {other}"],
  ["PUT", `/uploads/results/${HEX64}/mask.nii.gz`, "PUT /uploads/results/{key}/{name}"],
  ["GET", `/uploads/results/${HEX64}/summary.json`, "GET /uploads/results/{key}/{name}"],
  ["POST", "/uploads/nifti?patient=Patient/1", "POST /uploads/nifti"],
  [
    "GET",
    "/uploads/nifti/0b3c9c4e-8a0c-4b59-9d0f-0d0a3d7e6f11",
    "GET /uploads/nifti/{id}",
  ],
  ["GET", "/reports/r-17/findings.xlsx", "GET /reports/{id}/findings.xlsx"],
  ["GET", "/reports/r-17/findings.json", "GET /reports/{id}/findings.json"],
  ["GET", "/reports/r-17/findings.csv", "GET {other}"],
  ["GET", "/auth/users/42", "GET /auth/users/{id}"],
  ["PATCH", "/auth/users/42", "PATCH /auth/users/{id}"],
  ["PUT", "/auth/clients/my-app", "PUT /auth/clients/{id}"],
  ["GET", "/auth/users", "GET /auth/users"],
  ["POST", "/auth/token", "POST /auth/token"],
  ["GET", "/.well-known/jwks.json", "GET /.well-known/jwks.json"],
  ["GET", "/events?types=Task", "GET /events"],
  ["GET", "/health", "GET /health"],
  ["GET", "/health/live", "GET /health/live"],
  ["GET", "/metrics", "GET /metrics"],
  ["GET", "/admin/stats", "GET /admin/stats"],
  ["get", "/admin/stats#top", "GET /admin/stats"],
  ["GET", "http://localhost:8080/fhir/Patient/9?x=1", "GET /fhir/Patient/{id}"],
  ["GET", "/", "GET {other}"],
  ["GET", "/wp-admin/setup-config.php", "GET {other}"],
  ["GET", "/admin/stats/../../etc/passwd", "GET {other}"],
  ["BREW", "/fhir/Patient/1", "OTHER /fhir/Patient/{id}"],
  ["GET", `/fhir/${"a/".repeat(40)}`, "GET {other}"],
];

Deno.test(`routeClass: ${ROUTE_TABLE.length} paths map to bounded classes`, () => {
  for (const [method, path, want] of ROUTE_TABLE) {
    assert.equal(routeClass(method, path), want, `${method} ${path}`);
  }
});

Deno.test("memory bound: 1 000 000 samples over 1000 raw paths stay in a few route classes", () => {
  const r = rng(7);
  const raw: [string, string][] = [];
  for (let i = 0; i < 1000; i++) {
    const id = Math.floor(r() * 1e9).toString(36);
    const uid = `1.2.840.${i}.${Math.floor(r() * 1e6)}`;
    const hex = Array.from({ length: 64 }, () => "0123456789abcdef"[Math.floor(r() * 16)]).join(
      "",
    );
    const paths: [string, string][] = [
      ["GET", `/fhir/Patient/${id}`],
      ["GET", `/fhir/Observation/${id}/_history/${i}`],
      ["GET", `/fhir/Madeup${id}/${id}`], // made-up types: {type}
      ["POST", `/fhir/ImagingStudy/${id}/$op${i}`], // made-up operations: {op}
      ["GET", `/dicomweb/studies/${uid}/series/${uid}.1/instances/${uid}.2/frames/${i % 9 + 1}`],
      ["PUT", `/uploads/results/${hex}/file${i}.json`],
      ["GET", `/reports/${id}/findings.xlsx?download=${i}`],
      ["GET", `/scan/${id}/${i}.php`], // junk: {other}
      [["GET", "POST", "PROPFIND", "X-" + id][i % 4], `/auth/users/${id}`],
      ["GET", `/events?focus=ImagingStudy/${id}`],
    ];
    raw.push(paths[i % paths.length]);
  }
  assert.equal(new Set(raw.map(([m, p]) => `${m} ${p}`)).size, 1000);
  const classes = raw.map(([m, p]) => ({ cls: routeClass(m, p), method: m }));
  const distinct = new Set(classes.map((c) => c.cls));
  assert.ok(distinct.size <= 14, [...distinct].join("\n"));

  const c = clock();
  const stats = createRequestStats({ now: c.now });
  // Two days of traffic, so that both rings wrap around many times.
  const span = 2 * 24 * HOUR;
  for (let i = 0; i < 1_000_000; i++) {
    const { cls, method } = classes[i % 1000];
    c.t = T0 + Math.floor((i / 1_000_000) * span);
    stats.record({ routeClass: cls, method, status: 200 + (i % 4) * 100, ms: 1 + (i % 500) });
  }
  const snap = stats.snapshot();
  assert.equal(Object.keys(snap.windows.day.routes).length, distinct.size);
  assert.ok(snap.windows.day.overall.count < 1_000_000 / 2 + 1000);
  assert.ok(snap.windows.hour.overall.count > 0);
  const text = stats.prometheus();
  const series = text.split("\n").filter((l) =>
    l.startsWith("http_request_duration_seconds_count")
  );
  // One series per route class and normalized method (PROPFIND and X-… are both OTHER).
  assert.ok(series.length <= distinct.size + 2, series.join("\n"));
  assert.ok(!text.includes("PROPFIND") && !text.includes("X-"));
  console.log(`  ${distinct.size} route classes, ${series.length} Prometheus series`);
});

Deno.test("histogram: every bin's value is within the stated relative error", () => {
  const r = rng(1);
  const one = (v: number) => {
    const bins = new Float64Array(400);
    bins[binOf(v)] = 1;
    // Unclamped (min 0, max ∞): the bin's own representative value.
    return percentilesOf(bins, 1, [50], 0, Infinity)[0];
  };
  let worst = 0;
  for (let i = 0; i < 200_000; i++) {
    const v = MIN_MS * Math.pow(MAX_MS / MIN_MS, r()) * 0.99999;
    const err = Math.abs(one(v) - v) / v;
    worst = Math.max(worst, err);
    assert.ok(err <= RELATIVE_ERROR + 1e-12, `${v}: ${one(v)}`);
  }
  for (const v of [MIN_MS, 0.1, 1, 10, 100, 1000, 10_000, 59_999]) {
    assert.ok(Math.abs(one(v) - v) <= RELATIVE_ERROR * v + 1e-12, `${v}: ${one(v)}`);
  }
  // Below MIN_MS: within MIN_MS absolutely. NaN and negatives count as 0.
  for (const v of [0, 0.001, 0.02, 0.0499]) assert.ok(Math.abs(one(v) - v) <= MIN_MS);
  assert.equal(binOf(NaN), 0);
  assert.equal(binOf(-5), 0);
  assert.equal(binOf(Infinity), binOf(10 * MAX_MS));
  console.log(`  worst relative error over 200 000 values: ${(worst * 100).toFixed(3)}%`);
});

Deno.test("percentiles within 2% of exact: uniform, log-normal, bimodal, single value", () => {
  const r = rng(42);
  const n = 20_000;
  const distributions: Record<string, () => number> = {
    "uniform 1–1000 ms": () => 1 + r() * 999,
    "uniform 0.05–2 ms": () => 0.05 + r() * 1.95,
    "log-normal (median 20 ms, σ 1)": () => 20 * Math.exp(normal(r)),
    "bimodal (90% ~5 ms, 10% ~800 ms)": () =>
      r() < 0.9 ? Math.max(0.1, 5 + normal(r)) : Math.max(1, 800 + 100 * normal(r)),
    "exponential (mean 50 ms)": () => -50 * Math.log(1 - r()),
    "single value 42.7 ms": () => 42.7,
    "heavy tail (Pareto α 1.2, 1 ms up)": () => Math.min(50_000, Math.pow(1 - r(), -1 / 1.2)),
  };
  for (const [name, draw] of Object.entries(distributions)) {
    const stats = createRequestStats({ now: () => T0 });
    const values: number[] = [];
    for (let i = 0; i < n; i++) {
      const ms = draw();
      values.push(ms);
      // Spread over the last 50 minutes and two routes: the window sums slots and routes.
      stats.record(sample(i % 2 ? "GET /a" : "GET /b", 200, ms, T0 - (i % 50) * MINUTE));
    }
    const want = exact(values);
    for (const window of ["hour", "day"] as const) {
      const got = stats.snapshot().windows[window].overall;
      assert.equal(got.count, n);
      assert.equal(got.maxMs, want.max, `${name}: max`);
      for (const p of ["p50", "p95", "p99"] as const) {
        const err = Math.abs(got[p] - want[p]) / want[p];
        assert.ok(err <= RELATIVE_ERROR, `${name} ${window} ${p}: ${got[p]} vs ${want[p]}`);
      }
    }
    const got = stats.snapshot().windows.hour.overall;
    console.log(
      `  ${name}: p50 ${got.p50.toFixed(3)} (exact ${want.p50.toFixed(3)}), p95 ` +
        `${got.p95.toFixed(3)} (${want.p95.toFixed(3)}), p99 ${got.p99.toFixed(3)} ` +
        `(${want.p99.toFixed(3)})`,
    );
  }
  // A single value comes back exactly (clamped to the window's min and max).
  const single = createRequestStats({ now: () => T0 });
  for (let i = 0; i < 10; i++) single.record(sample("GET /a", 200, 42.7));
  const w = single.snapshot().windows.hour.overall;
  assert.deepEqual([w.p50, w.p95, w.p99, w.maxMs], [42.7, 42.7, 42.7, 42.7]);
  // Past 60 s, the window's maximum.
  const slow = createRequestStats({ now: () => T0 });
  slow.record(sample("GET /a", 200, 90_000));
  slow.record(sample("GET /a", 200, 120_000));
  assert.equal(slow.snapshot().windows.hour.overall.p99, 120_000);
});

interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * A strict little parser of the text exposition format 0.0.4: HELP and TYPE comments, samples
 * with escaped label values; throws on anything else.
 */
function parseProm(text: string): { types: Map<string, string>; samples: PromSample[] } {
  assert.ok(text.endsWith("\n"), "ends with a newline");
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const samples: PromSample[] = [];
  const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
  for (const line of text.slice(0, -1).split("\n")) {
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
      assert.ok(m, `bad comment: ${line}`);
      if (m[1] === "TYPE") {
        assert.ok(!types.has(m[2]), `second TYPE for ${m[2]}`);
        assert.ok(["counter", "gauge", "histogram", "summary", "untyped"].includes(m[3]));
        types.set(m[2], m[3]);
      } else {
        assert.ok(!helps.has(m[2]), `second HELP for ${m[2]}`);
        helps.add(m[2]);
      }
      continue;
    }
    const name = NAME.exec(line)?.[0];
    assert.ok(name, `bad sample: ${line}`);
    let i = name.length;
    const labels: Record<string, string> = {};
    if (line[i] === "{") {
      i++;
      while (line[i] !== "}") {
        const ln = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(i))?.[0];
        assert.ok(ln && line.slice(i + ln.length, i + ln.length + 2) === '="', `label: ${line}`);
        i += ln.length + 2;
        let value = "";
        for (;;) {
          const ch = line[i++];
          assert.ok(ch !== undefined, `unterminated label value: ${line}`);
          if (ch === '"') break;
          if (ch === "\\") {
            const e = line[i++];
            assert.ok(e === "\\" || e === '"' || e === "n", `bad escape: ${line}`);
            value += e === "n" ? "\n" : e;
          } else value += ch;
        }
        assert.ok(!(ln in labels), `repeated label ${ln}`);
        labels[ln] = value;
        if (line[i] === ",") i++;
        else assert.equal(line[i], "}", `label list: ${line}`);
      }
      i++;
    }
    const rest = line.slice(i);
    const m = /^ (\S+)$/.exec(rest);
    assert.ok(m, `bad value: ${line}`);
    const value = m[1] === "+Inf" ? Infinity : m[1] === "-Inf" ? -Infinity : Number(m[1]);
    assert.ok(!Number.isNaN(value) || m[1] === "NaN", `bad number: ${line}`);
    const family = name.replace(/_(bucket|sum|count)$/, "");
    assert.ok(types.has(name) || types.get(family) === "histogram", `no TYPE before ${name}`);
    samples.push({ name, labels, value });
  }
  return { types, samples };
}

Deno.test("prometheus: the text parses, counts match, totals are cumulative", () => {
  const c = clock();
  const stats = createRequestStats({ now: c.now });
  const recorded = [
    { path: "/fhir/Patient/1", method: "GET", status: 200, ms: 3 },
    { path: "/fhir/Patient/2", method: "GET", status: 200, ms: 30 },
    { path: "/fhir/Patient/3", method: "GET", status: 404, ms: 2 },
    { path: "/fhir/Patient", method: "POST", status: 201, ms: 120 },
    { path: "/fhir/Patient", method: "POST", status: 500, ms: 7000 },
    { path: "/fhir/Patient", method: "POST", status: 422, ms: 11_000 },
    { path: "/metrics", method: "GET", status: 200, ms: 0.4 },
  ];
  for (const s of recorded) {
    stats.record({ routeClass: routeClass(s.method, s.path), ...s });
  }
  // A route class with characters that must be escaped (classes not made by routeClass()).
  const odd = 'GET /odd"quote\\back\nline';
  stats.record({ routeClass: odd, method: "GET", status: 200, ms: 1 });
  // Two days later: the windows have forgotten, the counters have not.
  c.t = T0 + 48 * HOUR + 5000;
  stats.record({
    routeClass: routeClass("GET", "/fhir/Patient/9"),
    method: "GET",
    status: 200,
    ms: 4,
  });
  assert.equal(stats.snapshot().windows.day.overall.count, 1);

  const text = stats.prometheus();
  const { types, samples } = parseProm(text);
  assert.equal(types.get("http_requests_total"), "counter");
  assert.equal(types.get("http_request_duration_seconds"), "histogram");
  assert.equal(types.get("process_uptime_seconds"), "gauge");
  const find = (name: string, labels: Record<string, string>) =>
    samples.filter((s) =>
      s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)
    );
  const value = (name: string, labels: Record<string, string>) => {
    const found = find(name, labels);
    assert.equal(found.length, 1, `${name} ${JSON.stringify(labels)}`);
    return found[0].value;
  };
  const req = "http_requests_total";
  const id = { route: "/fhir/Patient/{id}", method: "GET" };
  assert.equal(value(req, { ...id, status_class: "2xx" }), 3);
  assert.equal(value(req, { ...id, status_class: "4xx" }), 1);
  const type = { route: "/fhir/Patient", method: "POST" };
  assert.equal(value(req, { ...type, status_class: "2xx" }), 1);
  assert.equal(value(req, { ...type, status_class: "4xx" }), 1);
  assert.equal(value(req, { ...type, status_class: "5xx" }), 1);
  assert.equal(value(req, { route: "/metrics", method: "GET", status_class: "2xx" }), 1);
  assert.equal(value(req, { route: '/odd"quote\\back\nline', method: "GET" }), 1);
  const total = find(req, {}).reduce((n, s) => n + s.value, 0);
  assert.equal(total, recorded.length + 2);

  // Histogram: cumulative buckets in order, +Inf equals _count, _sum is the seconds recorded.
  const h = "http_request_duration_seconds";
  const buckets = find(`${h}_bucket`, type);
  assert.deepEqual(buckets.map((b) => b.labels.le), [...DURATION_BUCKETS.map(String), "+Inf"]);
  assert.deepEqual(
    buckets.map((b) => b.value),
    DURATION_BUCKETS.map((le) => [0.12, 7, 11].filter((s) => s <= le).length).concat(3),
  );
  assert.equal(value(`${h}_count`, type), 3);
  assert.ok(Math.abs(value(`${h}_sum`, type) - (0.12 + 7 + 11)) < 1e-9);
  assert.equal(value(`${h}_count`, id), 4);
  assert.ok(Math.abs(value(`${h}_sum`, id) - 0.039) < 1e-9);
  assert.equal(value(`${h}_bucket`, { ...id, le: "0.005" }), 3); // 3, 2 and 4 ms
  for (const s of find(`${h}_count`, {})) {
    const inf = value(`${h}_bucket`, {
      route: s.labels.route,
      method: s.labels.method,
      le: "+Inf",
    });
    assert.equal(inf, s.value);
  }
  assert.equal(value("process_uptime_seconds", {}), 48 * 3600 + 5);
  // HELP and TYPE come before each family's samples.
  assert.ok(
    text.indexOf("# TYPE http_requests_total counter") < text.indexOf("http_requests_total{"),
  );
  assert.equal(escapeLabel('a"b\\c\nd'), 'a\\"b\\\\c\\nd');

  // Nothing recorded: the families are still declared, and the uptime is there.
  const empty = parseProm(createRequestStats({ now: () => T0 }).prometheus());
  assert.deepEqual(empty.samples.map((s) => s.name), ["process_uptime_seconds"]);
});

Deno.test("record() is cheap: well under 1 µs per call on average", () => {
  const stats = createRequestStats();
  const r = rng(3);
  const classes = ROUTE_TABLE.map(([m, p]) => ({ cls: routeClass(m, p), method: m }));
  const now = Date.now();
  const samples: RequestSample[] = Array.from({ length: 100_000 }, (_, i) => {
    const { cls, method } = classes[i % classes.length];
    return {
      routeClass: cls,
      method,
      status: r() < 0.02 ? 500 : 200,
      ms: 20 * Math.exp(normal(r)),
      // Half with an explicit time over the last day, half stamped by the clock.
      at: i % 2 ? now - Math.floor(r() * 24 * HOUR) : undefined,
    };
  });
  for (const s of samples) stats.record(s); // warm up: slots allocated, code optimized
  const calls = 2_000_000;
  const t0 = performance.now();
  for (let i = 0; i < calls; i++) stats.record(samples[i % samples.length]);
  const nsPerCall = ((performance.now() - t0) * 1e6) / calls;

  const paths = ROUTE_TABLE.map(([m, p]) => [m, p]);
  const t1 = performance.now();
  let sink = 0;
  for (let i = 0; i < 200_000; i++) {
    const [m, p] = paths[i % paths.length];
    sink += routeClass(m, p).length;
  }
  const nsRouteClass = ((performance.now() - t1) * 1e6) / 200_000;
  const t2 = performance.now();
  const snap = stats.snapshot();
  const msSnapshot = performance.now() - t2;
  const t3 = performance.now();
  stats.prometheus();
  const msProm = performance.now() - t3;
  assert.ok(sink > 0 && snap.windows.day.overall.count > 0);
  console.log(
    `  record(): ${nsPerCall.toFixed(0)} ns/call; routeClass(): ${nsRouteClass.toFixed(0)} ` +
      `ns/call; snapshot() of ${Object.keys(snap.windows.day.routes).length} routes: ` +
      `${msSnapshot.toFixed(1)} ms; prometheus(): ${msProm.toFixed(1)} ms`,
  );
  assert.ok(nsPerCall < 1000, `record() took ${nsPerCall} ns per call`);
});
