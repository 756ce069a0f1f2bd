/**
 * @module SIDECAR_JOBS: a sidecar works on several jobs at once (each acked once, the stats and
 * `running` list kept right), while `exclusive` lets one job at a time through a model.
 */
import assert from "node:assert/strict";
import { exclusive, type LoadedModel } from "../../inference/analysis.ts";
import { createApiClient } from "../../inference/api_client.ts";
import type { AnalysisJob } from "../../inference/jobs.ts";
import { createMemoryQueue } from "../../inference/memory_queue.ts";
import { createSidecar } from "../../inference/sidecar.ts";

const job = (n: number): AnalysisJob => ({
  jobId: `job-${n}`,
  taskId: `task-${n}`,
  imagingStudyId: `study-${n}`,
  studyInstanceUid: `2.25.${n}`,
  patient: "Patient/p",
  model: "m",
  modelVersion: "1",
  profile: "standard",
  threshold: 0.5,
  priority: "routine",
  idempotencyKey: `key-${n}`,
  enqueuedAt: new Date().toISOString(),
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("a sidecar with jobs: 2 works on two jobs at once, and never on a third", async () => {
  const queue = createMemoryQueue({
    visibilityMs: 5_000,
    maxAttempts: 2,
    backoffBaseMs: 10,
    backoffMaxMs: 10,
  });
  let inFlight = 0, most = 0;
  const seen: string[] = [];
  const sidecar = createSidecar({
    queue,
    api: createApiClient({ baseUrl: "http://unused.invalid", token: "" }),
    models: new Map(),
    log: () => {},
    visibilityMs: 5_000,
    blockMs: 20,
    jobs: 2,
    analyze: async (j) => {
      inFlight++;
      most = Math.max(most, inFlight);
      seen.push(j.jobId);
      await sleep(150);
      inFlight--;
      return { kind: "skipped", reason: "test" };
    },
  });
  try {
    for (let n = 0; n < 5; n++) await queue.enqueue(job(n));
    sidecar.start();
    await sleep(60);
    assert.equal(sidecar.stats.running.length, 2, "two jobs in hand");
    const end = Date.now() + 5_000;
    while (sidecar.stats.skipped < 5 && Date.now() < end) await sleep(20);
    assert.equal(sidecar.stats.skipped, 5);
    assert.equal(most, 2);
    assert.deepEqual([...seen].sort(), [0, 1, 2, 3, 4].map((n) => `job-${n}`));
    assert.deepEqual(sidecar.stats.running, []);
    assert.deepEqual(await queue.depth(), { stat: 0, routine: 0, pending: 0, delayed: 0, dead: 0 });
  } finally {
    await sidecar.stop();
    await queue.close();
  }
});

Deno.test("exclusive() lets one call at a time through a model, in order, even after a failure", async () => {
  const model = {} as LoadedModel, other = {} as LoadedModel;
  const events: string[] = [];
  const step = (name: string, ms: number, fail = false) => async () => {
    events.push(`${name} start`);
    await sleep(ms);
    events.push(`${name} end`);
    if (fail) throw new Error(name);
    return name;
  };
  const a = exclusive(model, step("a", 60, true));
  const b = exclusive(model, step("b", 10));
  const c = exclusive(other, step("c", 10));
  await assert.rejects(a, /a/);
  assert.equal(await b, "b");
  assert.equal(await c, "c");
  assert.deepEqual(events.filter((e) => e[0] !== "c"), ["a start", "a end", "b start", "b end"]);
  // Another model is not held up by the first.
  assert.ok(events.indexOf("c end") < events.indexOf("a end"));
});
