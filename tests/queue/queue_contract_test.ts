/**
 * @module The job queue contract, run against both implementations: the in-process queue always,
 * the Redis Streams queue when REDIS_URL is set (each test on its own key prefix, deleted at the
 * end); otherwise the Redis variants are reported as ignored, by name.
 */
import assert from "node:assert/strict";
import { createClient } from "redis";
import type { AnalysisJob, Priority } from "../../queue/jobs.ts";
import { createMemoryQueue } from "../../queue/memory_queue.ts";
import type { JobQueue, QueueOptions } from "../../queue/queue.ts";
import { createRedisQueue, redisQueueKeys } from "../../queue/redis_queue.ts";
import { createJobQueue, queueSettings } from "../../queue/factory.ts";
import { ConfigError, loadConfig } from "../../platform/config.ts";

const REDIS_URL = Deno.env.get("REDIS_URL") ?? "";
const OPTIONS: QueueOptions = {
  visibilityMs: 300,
  maxAttempts: 3,
  backoffBaseMs: 150,
  backoffMaxMs: 1000,
};

type Kind = "memory" | "redis";

interface Subject {
  queue: JobQueue;
  /** Another handle on the same queue: a second sidecar (Redis), the same object (memory). */
  peer(): Promise<JobQueue>;
}

async function open(kind: Kind, options: QueueOptions, run: (s: Subject) => Promise<void>) {
  if (kind === "memory") {
    const queue = createMemoryQueue(options);
    try {
      await run({ queue, peer: () => Promise.resolve(queue) });
    } finally {
      await queue.close();
    }
    return;
  }
  const prefix = `test:jobs:${crypto.randomUUID().slice(0, 8)}`;
  const queues: JobQueue[] = [];
  const openOne = async () => {
    const queue = await createRedisQueue(REDIS_URL, { ...options, prefix });
    queues.push(queue);
    return queue;
  };
  try {
    await run({ queue: await openOne(), peer: openOne });
  } finally {
    for (const queue of queues) await queue.close();
    const client = createClient({ url: REDIS_URL, RESP: 2 });
    client.on("error", () => {});
    await client.connect();
    await client.sendCommand(["DEL", ...Object.values(redisQueueKeys(prefix))]);
    await client.close();
  }
}

/** Registers `fn` once per implementation (`only` restricts it to one). */
function contract(
  name: string,
  fn: (s: Subject) => Promise<void>,
  settings: { options?: Partial<QueueOptions>; only?: Kind } = {},
) {
  for (const kind of ["memory", "redis"] as const) {
    if (settings.only && settings.only !== kind) continue;
    const skipped = kind === "redis" && !REDIS_URL;
    Deno.test({
      name: `JobQueue [${kind}]: ${name}${skipped ? " [redis: skipped, REDIS_URL not set]" : ""}`,
      ignore: skipped,
      fn: () => open(kind, { ...OPTIONS, ...settings.options }, fn),
    });
  }
}

let serial = 0;
function job(priority: Priority = "routine", tag = String(++serial)): AnalysisJob {
  return {
    jobId: `job-${tag}`,
    taskId: `task-${tag}`,
    imagingStudyId: `study-${tag}`,
    studyInstanceUid: `1.2.826.0.1.3680043.8.498.${tag}`,
    patient: "Patient/p1",
    model: "chest-xray",
    modelVersion: "1.0.0",
    profile: "standard",
    threshold: 0.5,
    priority,
    idempotencyKey: `key-${tag}`,
    enqueuedAt: new Date().toISOString(),
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const ZERO = { stat: 0, routine: 0, pending: 0, delayed: 0, dead: 0 };

contract("next() delivers FIFO within a priority", async ({ queue }) => {
  const jobs = [job(), job(), job(), job(), job()];
  for (const j of jobs) await queue.enqueue(j);
  for (const j of jobs) {
    const d = await queue.next("c1", 0);
    assert.deepEqual(d?.job, j);
    assert.equal(d?.attempt, 1);
  }
  assert.equal(await queue.next("c1", 0), null);
});

contract("next() delivers stat before routine enqueued earlier", async ({ queue }) => {
  const [r1, r2, s1, s2] = [job("routine"), job("routine"), job("stat"), job("stat")];
  for (const j of [r1, r2, s1, s2]) await queue.enqueue(j);
  const order = [];
  for (let i = 0; i < 4; i++) order.push((await queue.next("c1", 0))?.job.jobId);
  assert.deepEqual(order, [s1, s2, r1, r2].map((j) => j.jobId));
});

contract("next() returns a job enqueued while it waits", async ({ queue, peer }) => {
  const producer = await peer();
  const started = performance.now();
  const waiting = queue.next("c1", 3000);
  await sleep(100);
  const j = job("stat");
  await producer.enqueue(j);
  const d = await waiting;
  assert.equal(d?.job.jobId, j.jobId);
  assert.ok(performance.now() - started < 1000, "woken by the enqueue, not by the timeout");
});

contract("next() returns null after blockMs when the queue is empty", async ({ queue }) => {
  const started = performance.now();
  assert.equal(await queue.next("c1", 250), null);
  const elapsed = performance.now() - started;
  assert.ok(elapsed >= 240 && elapsed < 1000, `waited ${elapsed} ms`);
});

contract("ack() removes the delivery for good", async ({ queue, peer }) => {
  await queue.enqueue(job());
  const d = await queue.next("c1", 0);
  assert.ok(d);
  await queue.ack(d);
  assert.deepEqual(await queue.depth(), ZERO);
  await sleep(OPTIONS.visibilityMs + 50);
  assert.equal(await (await peer()).next("c2", 0), null);
});

contract("a delivery whose consumer died is taken over with attempt 2", async ({ queue, peer }) => {
  const other = await peer();
  const j = job();
  await queue.enqueue(j);
  const first = await queue.next("dies", 0);
  const delivered = performance.now();
  assert.equal(first?.attempt, 1);
  assert.equal(await other.next("survivor", 0), null, "not before the visibility timeout");
  const second = await other.next("survivor", 2000);
  assert.ok(performance.now() - delivered >= OPTIONS.visibilityMs - 20);
  assert.equal(second?.id, first?.id);
  assert.deepEqual(second?.job, j);
  assert.equal(second?.attempt, 2);
  await other.ack(second!);
  assert.deepEqual(await queue.depth(), ZERO);
});

contract("extend() keeps a long job from being taken over", async ({ queue, peer }) => {
  const other = await peer();
  await queue.enqueue(job());
  const d = await queue.next("slow", 0);
  assert.ok(d);
  for (let elapsed = 0; elapsed < 2.5 * OPTIONS.visibilityMs; elapsed += 100) {
    await sleep(100);
    await queue.extend("slow", d);
    assert.equal(await other.next("thief", 0), null);
  }
  await queue.ack(d);
  assert.deepEqual(await queue.depth(), ZERO);
});

contract("fail() retries after the backoff, then dead-letters after maxAttempts", async (s) => {
  const { queue } = s;
  const j = job();
  await queue.enqueue(j);
  let d = await queue.next("c1", 0);
  for (let attempt = 1; attempt < OPTIONS.maxAttempts; attempt++) {
    assert.equal(d?.attempt, attempt);
    const failed = performance.now();
    assert.equal(await queue.fail(d!, `boom ${attempt}`), "retry");
    assert.deepEqual(await queue.depth(), { ...ZERO, delayed: 1 });
    assert.equal(await queue.next("c1", 0), null, "not before the backoff");
    d = await queue.next("c1", 2000);
    const waited = performance.now() - failed;
    const backoff = OPTIONS.backoffBaseMs * 2 ** (attempt - 1);
    assert.ok(waited >= backoff - 5, `retry ${attempt} after ${waited} ms, backoff ${backoff}`);
    assert.deepEqual(d?.job, j);
  }
  assert.equal(d?.attempt, OPTIONS.maxAttempts);
  assert.equal(await queue.fail(d!, "boom 3"), "dead");
  assert.deepEqual(await queue.depth(), { ...ZERO, dead: 1 });
  const [dead] = await queue.deadLetters();
  assert.deepEqual(dead.job, j);
  assert.equal(dead.error, "boom 3");
  assert.equal(dead.attempts, OPTIONS.maxAttempts);
  assert.ok(!Number.isNaN(Date.parse(dead.failedAt)));
  assert.equal(await queue.next("c1", 200), null, "nothing is delivered after the dead letter");
});

contract("fail(..., fatal) dead-letters at once", async ({ queue }) => {
  await queue.enqueue(job());
  const d = await queue.next("c1", 0);
  assert.equal(await queue.fail(d!, "unsupported modality", true), "dead");
  assert.deepEqual(await queue.depth(), { ...ZERO, dead: 1 });
  const [dead] = await queue.deadLetters();
  assert.equal(dead.error, "unsupported modality");
  assert.equal(dead.attempts, 1);
});

contract("a job whose every delivery timed out is dead-lettered", async ({ queue, peer }) => {
  const other = await peer();
  await queue.enqueue(job());
  assert.equal((await queue.next("a", 0))?.attempt, 1);
  assert.equal((await other.next("b", 1000))?.attempt, 2);
  assert.equal(await queue.next("c", 800), null);
  assert.deepEqual(await queue.depth(), { ...ZERO, dead: 1 });
  const [dead] = await queue.deadLetters();
  assert.equal(dead.attempts, 2);
  assert.match(dead.error, /visibility timeout/);
}, { options: { maxAttempts: 2 } });

contract("concurrent consumers get every job exactly once", async ({ queue, peer }) => {
  const queues = [queue, queue, await peer(), await peer()];
  const jobs = Array.from({ length: 50 }, (_, i) => job(i % 5 ? "routine" : "stat"));
  const seen: string[] = [];
  const consume = async (q: JobQueue, name: string) => {
    for (let d = await q.next(name, 500); d; d = await q.next(name, 200)) {
      seen.push(d.job.jobId);
      await q.ack(d);
    }
  };
  const consumers = queues.map((q, i) => consume(q, `c${i}`));
  await Promise.all(jobs.map((j) => queue.enqueue(j)));
  await Promise.all(consumers);
  assert.equal(seen.length, jobs.length);
  assert.deepEqual([...seen].sort(), jobs.map((j) => j.jobId).sort());
  assert.deepEqual(await queue.depth(), ZERO);
});

contract("depth() counts waiting, pending, delayed and dead jobs", async ({ queue }) => {
  for (const p of ["stat", "stat", "routine", "routine", "routine"] as const) {
    await queue.enqueue(job(p));
  }
  assert.deepEqual(await queue.depth(), { ...ZERO, stat: 2, routine: 3 });
  const first = await queue.next("c1", 0);
  assert.deepEqual(await queue.depth(), { ...ZERO, stat: 1, routine: 3, pending: 1 });
  await queue.fail(first!, "transient");
  assert.deepEqual(await queue.depth(), { ...ZERO, stat: 1, routine: 3, delayed: 1 });
  const second = await queue.next("c1", 0);
  assert.equal(second?.job.priority, "stat");
  await queue.fail(second!, "fatal", true);
  assert.deepEqual(await queue.depth(), { ...ZERO, routine: 3, delayed: 1, dead: 1 });
});

contract("deadLetters() lists the newest first, up to the limit", async ({ queue }) => {
  for (const error of ["e1", "e2", "e3"]) {
    await queue.enqueue(job());
    await queue.fail((await queue.next("c1", 0))!, error, true);
  }
  assert.deepEqual((await queue.deadLetters(2)).map((d) => d.error), ["e3", "e2"]);
  assert.deepEqual((await queue.deadLetters()).map((d) => d.error), ["e3", "e2", "e1"]);
});

contract("ping() answers true while open, false after close()", async ({ queue }) => {
  assert.equal(await queue.ping(), true);
  await queue.close();
  assert.equal(await queue.ping(), false);
});

contract("close() wakes a waiting next() with null", async ({ queue }) => {
  const waiting = queue.next("c1", 5000);
  await sleep(50);
  const started = performance.now();
  await queue.close();
  assert.equal(await waiting, null);
  assert.ok(performance.now() - started < 500);
});

Deno.test("createJobQueue() on a closed Redis port: ping() false, enqueue() rejects fast", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const queue = await createJobQueue({ ...OPTIONS, redisUrl: `redis://127.0.0.1:${port}` });
  try {
    assert.equal(await queue.ping(), false);
    const started = performance.now();
    await assert.rejects(queue.enqueue(job()));
    assert.ok(performance.now() - started < 2000);
  } finally {
    await queue.close();
  }
});

Deno.test("REDIS_KEY_PREFIX: default imaging, validated, reported with the other problems", () => {
  assert.equal(loadConfig({}).inference.redisKeyPrefix, "imaging");
  assert.equal(queueSettings(loadConfig({}).inference).prefix, "imaging:jobs");
  assert.equal(
    queueSettings(loadConfig({ REDIS_KEY_PREFIX: "site-a:{imaging}" }).inference).prefix,
    "site-a:{imaging}:jobs",
  );
  for (const bad of ["imaging:", ":imaging", "a::b", "has space", "ümlaut"]) {
    assert.throws(
      () => loadConfig({ REDIS_KEY_PREFIX: bad, PORT: "x" }),
      (e: unknown) =>
        e instanceof ConfigError && e.problems.length === 2 &&
        e.problems.some((p) => p.startsWith(`REDIS_KEY_PREFIX=${bad}:`)),
      bad,
    );
  }
});

Deno.test({
  name: `two deployments on one Redis with different REDIS_KEY_PREFIX never see each other's jobs${
    REDIS_URL ? "" : " [redis: skipped, REDIS_URL not set]"
  }`,
  ignore: !REDIS_URL,
  async fn() {
    const run = crypto.randomUUID().slice(0, 8);
    const settings = (site: string) =>
      queueSettings(
        loadConfig({
          REDIS_URL,
          REDIS_KEY_PREFIX: `test-${run}:${site}`,
          JOB_VISIBILITY_MS: "300",
          JOB_BACKOFF_BASE_MS: "50",
        }).inference,
      );
    // Each deployment: its API's queue and a sidecar's, both from the same configuration.
    const [apiA, sidecarA, apiB, sidecarB] = await Promise.all([
      createJobQueue(settings("a")),
      createJobQueue(settings("a")),
      createJobQueue(settings("b")),
      createJobQueue(settings("b")),
    ]);
    const client = createClient({ url: REDIS_URL, RESP: 2 });
    client.on("error", () => {});
    try {
      const [a, b] = [job("routine"), job("stat")];
      await apiA.enqueue(a);
      await apiB.enqueue(b);
      assert.deepEqual(await sidecarA.depth(), { ...ZERO, routine: 1 });
      assert.deepEqual(await sidecarB.depth(), { ...ZERO, stat: 1 });
      const gotA = await sidecarA.next("sidecar-a", 0);
      const gotB = await sidecarB.next("sidecar-b", 0);
      assert.equal(gotA?.job.jobId, a.jobId);
      assert.equal(gotB?.job.jobId, b.jobId);
      assert.equal(await sidecarA.next("sidecar-a", 0), null, "b's job is not a's");
      assert.equal(await sidecarB.next("sidecar-b", 0), null, "a's job is not b's");
      // A fatal failure in one deployment dead-letters there only.
      await sidecarA.fail(gotA!, "boom", true);
      assert.deepEqual((await apiA.deadLetters()).map((d) => d.job.jobId), [a.jobId]);
      assert.deepEqual(await apiB.deadLetters(), []);
      await sidecarB.ack(gotB!);
      // Every key either made is under its own prefix.
      await client.connect();
      const keys = (await client.sendCommand(["KEYS", `test-${run}:*`]) as string[]).sort();
      assert.deepEqual(keys, [
        `test-${run}:a:jobs:dead`,
        `test-${run}:a:jobs:routine`,
        `test-${run}:a:jobs:stat`,
        `test-${run}:b:jobs:routine`,
        `test-${run}:b:jobs:stat`,
      ]);
    } finally {
      for (const q of [apiA, sidecarA, apiB, sidecarB]) await q.close();
      if (!client.isOpen) await client.connect();
      for (const site of ["a", "b"]) {
        await client.sendCommand([
          "DEL",
          ...Object.values(redisQueueKeys(`test-${run}:${site}:jobs`)),
        ]);
      }
      await client.close();
    }
  },
});
