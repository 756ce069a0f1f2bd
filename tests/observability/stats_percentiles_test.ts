/**
 * @module Request statistics' latency percentiles: each histogram bin's value is within the
 * stated relative error, and the percentiles of the windows are within 2% of exact for uniform,
 * log-normal, bimodal, exponential, heavy-tailed and single-valued samples.
 */
import assert from "node:assert/strict";
import { binOf, percentilesOf } from "../../observability/histogram.ts";
import { createRequestStats, MAX_MS, MIN_MS, RELATIVE_ERROR } from "../../observability/stats.ts";
import { exact, MINUTE, normal, rng, sample, T0 } from "./_stats.ts";

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
