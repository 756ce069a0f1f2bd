/**
 * @module Faults of the AI pipeline, one test each. With sidecars as separate processes on Redis
 * (the API a process too): a sidecar SIGKILLed in the middle of a job (another takes the job over
 * after the visibility timeout and exactly one report is filed), one killed after its report was
 * committed but before the ack (the redelivery files nothing more), and every sidecar that takes
 * a job dying (dead-lettered, its Task failed). "In the middle" is made certain by a proxy between
 * the sidecar and the API that holds the sidecar's WADO-RS retrieve (or the answer to its report).
 * In process (the embedded default, and the real services when DATABASE_URL, S3_ENDPOINT and
 * REDIS_URL are set): a model whose `run` throws (the Task fails with the reason, the job is
 * dead-lettered), Redis down when `$analyze` is asked (503 with an OperationOutcome, no Task left
 * behind), an instance's object missing from the store (the Task fails with the reason) and a job
 * whose consumer vanished on its last attempt. Variants that need a service are ignored, by name,
 * without it.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { createApp } from "../../app.ts";
import { loadConfig } from "../../platform/config.ts";
import { stowInstances } from "../../dicom/synth/stow.ts";
import { JOB_KEY_SYSTEM } from "../../queue/jobs.ts";
import { redisQueueKeys } from "../../queue/redis_queue.ts";
import { createServices, type Services } from "../../services.ts";
import {
  type Child,
  claimRedisDb,
  createDatabase,
  createProxy,
  fhir,
  freePort,
  missingServices,
  modelsDir,
  redisCommand,
  s3Bucket,
  s3Env,
  sidecarHealth,
  sleep,
  startApi,
  startSidecar,
  type TestModel,
  until,
} from "./_process.ts";
import { smallStudy } from "./_study.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

const VISIBILITY_MS = 2_000;
const DEAD_STREAM = redisQueueKeys("imaging:jobs").dead;

/** Stores the study with STOW-RS at `origin`; answers its ImagingStudy. */
async function storeStudy(origin: string, study: ReturnType<typeof smallStudy>): Promise<Json> {
  const stow = await stowInstances(`${origin}/dicomweb`, study.instances);
  assert.equal(stow.status, 200, JSON.stringify(stow));
  const uid = study.plan.study.studyInstanceUid;
  const query = `ImagingStudy?identifier=${encodeURIComponent(`urn:dicom:uid|urn:oid:${uid}`)}`;
  return await until("the ImagingStudy", async () => {
    const found = (await fhir(origin, "GET", query)).body.entry?.[0]?.resource;
    return found?.numberOfInstances === study.instances.length ? found : undefined;
  });
}

function analyze(origin: string, imagingStudyId: string, model: string) {
  return fhir(origin, "POST", `ImagingStudy/${imagingStudyId}/$analyze`, {
    resourceType: "Parameters",
    parameter: [{ name: "model", valueString: model }],
  });
}

async function taskWhen(origin: string, id: string, status: string, ms = 30_000): Promise<Json> {
  return await until(`Task/${id} to be ${status}`, async () => {
    const task = (await fhir(origin, "GET", `Task/${id}`)).body;
    const final = ["completed", "failed", "cancelled"];
    if (final.includes(task.status) && task.status !== status) {
      throw new Error(`Task/${id} is ${task.status}: ${task.statusReason?.text ?? ""}`);
    }
    return task.status === status ? task : undefined;
  }, ms);
}

async function reportsOfJob(origin: string, key: string): Promise<Json[]> {
  const q = `DiagnosticReport?identifier=${encodeURIComponent(`${JOB_KEY_SYSTEM}|${key}`)}`;
  const res = await fhir(origin, "GET", `${q}&_total=accurate`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return (res.body.entry ?? []).map((e: Json) => e.resource);
}

async function total(origin: string, query: string): Promise<number> {
  const res = await fhir(origin, "GET", `${query}&_total=accurate`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.total;
}

// ---------------------------------------------------------------------------------------------
// Sidecars as processes, SIGKILLed.

interface ProcessStack {
  api: Child;
  redisUrl: string;
  children: Child[];
  sidecarEnv(apiUrl: string, extra?: Record<string, string>): Record<string, string>;
}

/**
 * The API as a process on Redis (and Postgres and S3 when set, else PGlite and a folder), the
 * fixture model, a short visibility timeout; `fn` starts its sidecars into `children`.
 */
async function withProcessStack(fn: (s: ProcessStack) => Promise<void>): Promise<void> {
  const cleanups: (() => Promise<unknown>)[] = [];
  const children: Child[] = [];
  try {
    const redis = await claimRedisDb(Deno.env.get("REDIS_URL")!);
    cleanups.push(redis.release);
    const models = await modelsDir(["threshold-demo"]);
    cleanups.push(() => Deno.remove(models, { recursive: true }));
    const env: Record<string, string> = {
      REDIS_URL: redis.url,
      MODELS_DIR: models,
      INFERENCE_WORKER: "off",
      JOB_VISIBILITY_MS: String(VISIBILITY_MS),
      DICOM_STABLE_SECONDS: "1",
      ANALYSIS_RULES: "",
    };
    if (Deno.env.get("DATABASE_URL")) {
      const database = await createDatabase(Deno.env.get("DATABASE_URL")!);
      cleanups.push(database.drop);
      env.DATABASE_URL = database.url;
    } else {
      Object.assign(env, { DATABASE_URL: "", PGLITE_DIR: "memory" });
    }
    if (Deno.env.get("S3_ENDPOINT")) {
      const bucket = s3Bucket();
      cleanups.push(bucket.remove);
      Object.assign(env, s3Env(), { S3_BUCKET: bucket.bucket });
    } else {
      const dir = await Deno.makeTempDir({ prefix: "objects-" });
      cleanups.push(() => Deno.remove(dir, { recursive: true }));
      Object.assign(env, { S3_ENDPOINT: "", OBJECT_DIR: dir });
    }
    const api = await startApi(env);
    children.push(api);
    await fn({
      api,
      redisUrl: redis.url,
      children,
      sidecarEnv: (apiUrl, extra = {}) => ({
        REDIS_URL: redis.url,
        MODELS_DIR: models,
        SIDECAR_API_URL: apiUrl,
        JOB_VISIBILITY_MS: String(VISIBILITY_MS),
        JOB_MAX_ATTEMPTS: "3",
        DATABASE_URL: "",
        S3_ENDPOINT: "",
        S3_ACCESS_KEY_ID: "",
        S3_SECRET_ACCESS_KEY: "",
        ...extra,
      }),
    });
  } catch (e) {
    for (const c of children) console.error(c.tail(30));
    throw e;
  } finally {
    for (const c of children.reverse()) await c.stop();
    for (const clean of cleanups.reverse()) {
      await clean().catch((e) => console.error(`cleanup: ${e}`));
    }
  }
}

const noRedis = missingServices(["REDIS_URL"]).length > 0;

function processTest(name: string, fn: () => Promise<void>): void {
  Deno.test({
    name: noRedis ? `${name} [skipped: REDIS_URL not set]` : name,
    ignore: noRedis,
    sanitizeOps: false,
    sanitizeResources: false,
    fn,
  });
}

processTest(
  "a sidecar SIGKILLed in the middle of a job: another sidecar takes it over after the visibility timeout and exactly one report is filed",
  () =>
    withProcessStack(async ({ api, children, sidecarEnv }) => {
      const study = smallStudy(7101);
      const imagingStudy = await storeStudy(api.origin, study);
      // Sidecar A reaches the API through a proxy that holds its WADO-RS retrieve of the series:
      // the Task is in progress, the pixels are on their way, nothing is filed yet.
      const proxy = createProxy(api.origin);
      try {
        const retrieve = proxy.holdNext(
          "request",
          (method, path) =>
            method === "GET" && /\/dicomweb\/studies\/[^/]+\/series\/[^/]+$/.test(path),
        );
        const a = await startSidecar("sidecar-a", sidecarEnv(proxy.origin));
        children.push(a);
        const asked = await analyze(api.origin, imagingStudy.id, "threshold-demo");
        assert.equal(asked.status, 202, JSON.stringify(asked.body));
        const key = asked.body.identifier[0].value;
        await retrieve;
        const heldAt = performance.now();
        assert.equal(
          (await fhir(api.origin, "GET", `Task/${asked.body.id}`)).body.status,
          "in-progress",
        );

        // B starts while A is alive: A's heartbeats keep the job A's past the visibility timeout.
        const b = await startSidecar("sidecar-b", sidecarEnv(api.origin));
        children.push(b);
        await sleep(Math.max(0, heldAt + VISIBILITY_MS + 1_000 - performance.now()));
        assert.equal((await sidecarHealth(b)).jobs.current, null, "B took a job A still holds");
        assert.equal((await sidecarHealth(a)).jobs.current?.taskId, asked.body.id);

        a.kill("SIGKILL");
        const status = await a.status;
        assert.equal(status.signal, "SIGKILL");
        const killedAt = performance.now();

        const done = await taskWhen(api.origin, asked.body.id, "completed", 20_000);
        const takeoverMs = performance.now() - killedAt;
        const started = b.logged("job started");
        assert.equal(started.length, 1, b.tail());
        assert.equal(started[0].taskId, asked.body.id);
        assert.equal(started[0].attempt, 2);
        const health = await sidecarHealth(b);
        assert.deepEqual(
          { done: health.jobs.done, failed: health.jobs.failed, skipped: health.jobs.skipped },
          { done: 1, failed: 0, skipped: 0 },
        );
        assert.equal(health.queue.pending, 0);

        const reports = await reportsOfJob(api.origin, key);
        assert.equal(reports.length, 1);
        assert.equal(done.output[0].valueReference.reference, `DiagnosticReport/${reports[0].id}`);
        assert.equal(reports[0].result.length, 3); // the study decision and two spheres
        assert.equal(
          await total(api.origin, `Observation?derived-from=ImagingStudy/${imagingStudy.id}`),
          3,
        );
        console.log(`taken over and filed ${Math.round(takeoverMs)} ms after the SIGKILL`);
      } finally {
        await proxy.close();
      }
    }),
);

processTest(
  "a sidecar SIGKILLed after its report was committed, before the ack: the redelivery files nothing more",
  () =>
    withProcessStack(async ({ api, children, sidecarEnv }) => {
      const study = smallStudy(7102);
      const imagingStudy = await storeStudy(api.origin, study);
      const proxy = createProxy(api.origin);
      try {
        // The transaction reaches the API and commits; its answer is held from sidecar A.
        const filed = proxy.holdNext(
          "response",
          (method, path) => method === "POST" && path.replace(/\/+$/, "") === "/fhir",
        );
        const a = await startSidecar("sidecar-a", sidecarEnv(proxy.origin));
        children.push(a);
        const asked = await analyze(api.origin, imagingStudy.id, "threshold-demo");
        assert.equal(asked.status, 202, JSON.stringify(asked.body));
        const key = asked.body.identifier[0].value;
        assert.equal((await filed).upstreamStatus, 200);
        a.kill("SIGKILL");
        await a.status;
        assert.equal(
          (await fhir(api.origin, "GET", `Task/${asked.body.id}`)).body.status,
          "completed",
        );

        const b = await startSidecar("sidecar-b", sidecarEnv(api.origin));
        children.push(b);
        await until("B to take the job over and skip it", async () =>
          (await sidecarHealth(b)).jobs.skipped === 1, 20_000);
        const health = await sidecarHealth(b);
        assert.equal(health.jobs.done, 0);
        assert.equal(health.queue.pending, 0);
        assert.match(String(b.logged("job skipped")[0]?.reason), /is already completed/);
        const reports = await reportsOfJob(api.origin, key);
        assert.equal(reports.length, 1);
        assert.equal(
          await total(api.origin, `Observation?derived-from=ImagingStudy/${imagingStudy.id}`),
          reports[0].result.length,
        );
      } finally {
        await proxy.close();
      }
    }),
);

processTest(
  "every sidecar that takes a job dies: the job is dead-lettered after JOB_MAX_ATTEMPTS, its Task fails with the reason, and asking again starts a new Task",
  () =>
    withProcessStack(async ({ api, redisUrl, children, sidecarEnv }) => {
      const imagingStudy = await storeStudy(api.origin, smallStudy(7103));
      const proxy = createProxy(api.origin);
      try {
        const retrieve = proxy.holdNext(
          "request",
          (method, path) =>
            method === "GET" && /\/dicomweb\/studies\/[^/]+\/series\/[^/]+$/.test(path),
        );
        const oneAttempt = { JOB_MAX_ATTEMPTS: "1" };
        const a = await startSidecar("sidecar-a", sidecarEnv(proxy.origin, oneAttempt));
        children.push(a);
        const asked = await analyze(api.origin, imagingStudy.id, "threshold-demo");
        assert.equal(asked.status, 202, JSON.stringify(asked.body));
        await retrieve;
        a.kill("SIGKILL");
        await a.status;

        // B finds the delivery expired on its last attempt: dead-lettered, and the Task failed.
        const b = await startSidecar("sidecar-b", sidecarEnv(api.origin, oneAttempt));
        children.push(b);
        const failed = await taskWhen(api.origin, asked.body.id, "failed", 20_000);
        assert.match(
          failed.statusReason.text,
          /not acknowledged within the visibility timeout \(2000 ms\) on each of 1 attempts/,
        );
        const dead = await redisCommand<[string, string[]][]>(
          redisUrl,
          ["XRANGE", DEAD_STREAM, "-", "+"],
        );
        assert.deepEqual(
          dead.map(([, f]) => JSON.parse(f[f.indexOf("job") + 1]).taskId),
          [asked.body.id],
        );
        assert.equal(b.logged("job started").length, 0);

        // The failed Task no longer stands for the analysis: the same request starts a new one.
        const again = await analyze(api.origin, imagingStudy.id, "threshold-demo");
        assert.equal(again.status, 202, JSON.stringify(again.body));
        assert.notEqual(again.body.id, asked.body.id);
        await taskWhen(api.origin, again.body.id, "completed", 20_000);
      } finally {
        await proxy.close();
      }
    }),
);

// ---------------------------------------------------------------------------------------------
// In process: the app and its in-process worker, on the embedded default or the real services.

type Variant = "embedded" | "services";

interface Stack {
  variant: Variant;
  services: Services;
  origin: string;
  /** The Redis URL of the queue (the services variant). */
  redisUrl?: string;
  /** Starts the in-process worker (when `withStack` was told not to). */
  startWorker(): Promise<void>;
}

/**
 * The app on a free port with its worker: `embedded` is PGlite, a folder and the in-process
 * queue; `services` is a Postgres schema, a unique S3 bucket and a Redis database of its own.
 * `env` adds to (or overrides) the configuration; `worker: false` leaves the worker to the test.
 */
async function withStack(
  variant: Variant,
  models: TestModel[],
  env: Record<string, string>,
  fn: (s: Stack) => Promise<void>,
  options: { worker?: boolean } = {},
): Promise<void> {
  const cleanups: (() => Promise<unknown>)[] = [];
  let services: Services | undefined;
  let server: Deno.HttpServer | undefined;
  let schema: string | undefined;
  try {
    const port = freePort();
    const dir = await modelsDir(models);
    cleanups.push(() => Deno.remove(dir, { recursive: true }));
    const objects = await Deno.makeTempDir({ prefix: "objects-" });
    cleanups.push(() => Deno.remove(objects, { recursive: true }));
    const base: Record<string, string> = {
      PORT: String(port),
      PUBLIC_URL: `http://127.0.0.1:${port}`,
      PGLITE_DIR: "memory",
      OBJECT_DIR: objects,
      MODELS_DIR: dir,
      DICOM_STABLE_SECONDS: "1",
      JOB_MAX_ATTEMPTS: "2",
      JOB_BACKOFF_BASE_MS: "50",
      JOB_BACKOFF_MAX_MS: "100",
      LOG_LEVEL: "error",
      INFERENCE_PROVIDERS: "cpu",
      AUTH: "off",
    };
    let redisUrl: string | undefined;
    if (variant === "services") {
      schema = `t_${Date.now().toString(36)}_${crypto.randomUUID().slice(0, 8)}`;
      const bucket = s3Bucket();
      cleanups.push(bucket.remove);
      const redis = await claimRedisDb(Deno.env.get("REDIS_URL")!);
      cleanups.push(redis.release);
      redisUrl = redis.url;
      Object.assign(base, s3Env(), {
        DATABASE_URL: Deno.env.get("DATABASE_URL")!,
        S3_BUCKET: bucket.bucket,
        REDIS_URL: redis.url,
        INFERENCE_WORKER: "on",
      });
    }
    services = await createServices(loadConfig({ ...base, ...env }), { schema });
    const app = createApp(services);
    server = Deno.serve({ port, hostname: "127.0.0.1", onListen: () => {} }, app.fetch);
    const startWorker = () => services!.startWorker((request) => app.fetch(request));
    if (options.worker !== false) await startWorker();
    await fn({
      variant,
      services,
      origin: `http://127.0.0.1:${port}`,
      redisUrl: env.REDIS_URL ?? redisUrl,
      startWorker,
    });
  } finally {
    // The server, then the services, then what they used.
    await server?.shutdown().catch(() => {});
    // Close first (its change feed and senders stop), then drop the schema on a connection of
    // its own, so nothing polls tables that are gone.
    await services?.close().catch((e) => console.error(`close: ${e}`));
    if (schema) {
      const sql = postgres(Deno.env.get("DATABASE_URL")!, { max: 1, onnotice: () => {} });
      await sql.unsafe(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
      await sql.end();
    }
    for (const clean of cleanups.reverse()) {
      await clean().catch((e) => console.error(`cleanup: ${e}`));
    }
  }
}

const missingForServices = missingServices();

function stackTest(name: string, fn: (variant: Variant) => Promise<void>): void {
  for (const variant of ["embedded", "services"] as const) {
    const missing = variant === "services" ? missingForServices : [];
    Deno.test({
      name: missing.length
        ? `${name} [services: skipped, ${missing.join(", ")} not set]`
        : `${name} [${variant}]`,
      ignore: missing.length > 0,
      sanitizeOps: false,
      sanitizeResources: false,
      fn: () => fn(variant),
    });
  }
}

stackTest(
  "a model whose run throws: the Task fails with the reason and the job is dead-lettered",
  (variant) =>
    withStack(variant, ["threshold-demo", "broken-demo"], {}, async (s) => {
      const imagingStudy = await storeStudy(s.origin, smallStudy(7201));
      const asked = await analyze(s.origin, imagingStudy.id, "broken-demo");
      assert.equal(asked.status, 202, JSON.stringify(asked.body));
      const failed = await taskWhen(s.origin, asked.body.id, "failed");
      const reason = failed.statusReason.text as string;
      assert.match(reason, /invalid dimensions for input: image/i);
      assert.match(reason, /Got: 5 Expected: 3/);

      // Retried (not fatal), then dead-lettered after JOB_MAX_ATTEMPTS with the same reason.
      const dead = (await s.services.analysis.queue.deadLetters()).filter((d) =>
        d.job.taskId === asked.body.id
      );
      assert.equal(dead.length, 1);
      assert.equal(dead[0].error, reason);
      assert.equal(dead[0].attempts, 2);
      assert.equal(dead[0].job.model, "broken-demo");
      if (s.redisUrl) {
        const entries = await redisCommand<[string, string[]][]>(
          s.redisUrl,
          ["XRANGE", DEAD_STREAM, "-", "+"],
        );
        const jobs = entries.map(([, f]) => JSON.parse(f[f.indexOf("job") + 1]));
        assert.deepEqual(jobs.map((j) => j.taskId), [asked.body.id]);
      }
      assert.equal(
        await total(s.origin, `DiagnosticReport?imaging-study=ImagingStudy/${imagingStudy.id}`),
        0,
      );
    }),
);

stackTest(
  "an instance's object missing from the store: the Task fails with the reason",
  (variant) =>
    withStack(variant, ["threshold-demo"], {}, async (s) => {
      const study = smallStudy(7301);
      const imagingStudy = await storeStudy(s.origin, study);
      const sop = study.plan.sopInstanceUids[5];
      const [row] = await s.services.db.query<{ object_key: string }>(
        `SELECT object_key FROM dicom_instance WHERE sop_uid = $1`,
        [sop],
      );
      await s.services.store.delete(row.object_key);
      assert.equal(await s.services.store.head(row.object_key), null);

      const asked = await analyze(s.origin, imagingStudy.id, "threshold-demo");
      assert.equal(asked.status, 202, JSON.stringify(asked.body));
      const failed = await taskWhen(s.origin, asked.body.id, "failed");
      assert.match(
        failed.statusReason.text,
        new RegExp(
          `WADO-RS returned only part of series [0-9.]+ \\(206 Partial Content\\): .*` +
            `1 of 12 instances are missing from the object store.*Instance ${
              sop.replaceAll(".", "\\.")
            } is missing`,
        ),
      );
      const dead = (await s.services.analysis.queue.deadLetters()).filter((d) =>
        d.job.taskId === asked.body.id
      );
      assert.equal(dead.length, 1);
      assert.equal(dead[0].attempts, 1, "fatal: not retried");
      assert.equal(
        await total(s.origin, `DiagnosticReport?imaging-study=ImagingStudy/${imagingStudy.id}`),
        0,
      );
    }),
);

stackTest(
  "Redis down: $analyze answers 503 with an OperationOutcome and leaves no Task; a rule on a stable study leaves none either",
  (variant) =>
    withStack(variant, ["threshold-demo"], {
      REDIS_URL: `redis://127.0.0.1:${freePort()}`, // nothing listens there
      INFERENCE_WORKER: "off",
      ANALYSIS_RULES: JSON.stringify([{ modality: "CT", model: "threshold-demo" }]),
    }, async (s) => {
      const imagingStudy = await storeStudy(s.origin, smallStudy(7401));
      const started = performance.now();
      const asked = await analyze(s.origin, imagingStudy.id, "threshold-demo");
      const ms = performance.now() - started;
      assert.equal(asked.status, 503);
      assert.match(asked.headers.get("content-type") ?? "", /^application\/fhir\+json/);
      assert.equal(asked.body.resourceType, "OperationOutcome");
      assert.equal(asked.body.issue[0].severity, "error");
      assert.equal(asked.body.issue[0].code, "transient");
      assert.match(asked.body.issue[0].diagnostics, /analysis queue is unavailable/);
      assert.ok(ms < 5_000, `answered in ${Math.round(ms)} ms`);

      await sleep(2_000); // the study has become stable and the rule has been tried
      assert.equal(await total(s.origin, `Task?focus=ImagingStudy/${imagingStudy.id}`), 0);
      const [tasks] = await s.services.db.query<{ live: number; deleted: number }>(
        `SELECT count(*) FILTER (WHERE NOT deleted)::int AS live,
                count(*) FILTER (WHERE deleted)::int AS deleted
         FROM resource WHERE type = 'Task'`,
      );
      assert.equal(tasks.live, 0, "no orphan Task");
    }),
);

stackTest(
  "a job whose consumer dies on its last attempt: the worker that finds it expired fails its Task with the reason",
  (variant) =>
    withStack(variant, ["threshold-demo"], {
      INFERENCE_WORKER: "on",
      JOB_MAX_ATTEMPTS: "1",
      JOB_VISIBILITY_MS: "300",
    }, async (s) => {
      const imagingStudy = await storeStudy(s.origin, smallStudy(7501));
      const asked = await analyze(s.origin, imagingStudy.id, "threshold-demo");
      assert.equal(asked.status, 202, JSON.stringify(asked.body));
      // A consumer takes the job and is never heard of again.
      const ghost = await s.services.analysis.queue.next("ghost", 2_000);
      assert.equal(ghost?.job.taskId, asked.body.id);
      await s.startWorker();
      const failed = await taskWhen(s.origin, asked.body.id, "failed", 10_000);
      assert.match(
        failed.statusReason.text,
        /not acknowledged within the visibility timeout \(300 ms\) on each of 1 attempts/,
      );
      const dead = (await s.services.analysis.queue.deadLetters()).filter((d) =>
        d.job.taskId === asked.body.id
      );
      assert.equal(dead.length, 1);
      assert.equal(dead[0].attempts, 1);
    }, { worker: false }),
);
