/**
 * @module Request statistics over time: the hour and day windows (samples leave them as time
 * passes, a reused ring slot drops what it held), per route and overall, error rates, and the cap
 * on route classes (past it, counted under "other").
 */
import assert from "node:assert/strict";
import {
  createRequestStats,
  OVERFLOW_ROUTE,
  RELATIVE_ERROR,
  type WindowStats,
} from "../../observability/stats.ts";
import { clock, exact, HOUR, MINUTE, sample, T0 } from "./_stats.ts";

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
