/**
 * The fault suite: the API as a process (`main.ts`) under client load while a dependency fails,
 * one test per fault, each on servers of its own (a private Postgres, Redis and Ceph RGW on free
 * ports, `_servers.ts` and `tests/_private_postgres.ts`), so that restarting them disturbs no other
 * test running beside it:
 * - Postgres restarted under FHIR read, write and transaction load and STOW-RS + WADO-RS;
 * - Postgres paused (SIGSTOP for 10 s: a stalled network, not a closed one);
 * - Redis restarted, and paused, with analysis jobs queued and `$analyze` asked; after the restart a
 *   sidecar runs every queued job;
 * - the S3 server (RGW) restarted, and paused, under STOW-RS and WADO-RS load.
 * (The folder store's full disk: `tests/dicom/stow_faults_test.ts`; a sidecar killed mid-job:
 * `tests/sidecar/faults_test.ts`.)
 * For each: the process lives, every answer is a success, 503 or 507 (never a 500, never a dropped
 * connection), every acknowledged write is there afterwards, every listed instance has its bytes
 * and no object is left without its row. Each prints its figures (requests failed, seconds to
 * recover, readiness) as a table row; FAULT_REPORT=<file> appends them as JSON lines
 * (docs/OPERATIONS.md quotes a run).
 */
import assert from "node:assert/strict";
import { JOB_KEY_SYSTEM } from "../../queue/jobs.ts";
import { createObjectStore } from "../../services.ts";
import { loadConfig } from "../../platform/config.ts";
import { stowInstances } from "../../dicom/synth/stow.ts";
import { postgresBin, type PrivatePostgres, startPrivatePostgres } from "../_private_postgres.ts";
import {
  type Child,
  createProxy,
  fhir,
  modelsDir,
  sleep,
  startApi,
  startSidecar,
  until,
} from "../sidecar/_process.ts";
import { smallStudy, sphereStudy } from "../sidecar/_study.ts";
import {
  assertAcknowledged,
  assertAnswered,
  assertInstances,
  type FaultFigures,
  figures,
  type Kind,
  startLoad,
  table,
  watchReadiness,
} from "./_load.ts";
import {
  commandExists,
  type PrivateServer,
  rgwAvailable,
  startPrivateRedis,
  startPrivateRgw,
} from "./_servers.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

const REPORT = Deno.env.get("FAULT_REPORT");

async function report(f: FaultFigures): Promise<void> {
  console.log(table([f]));
  if (REPORT) await Deno.writeTextFile(REPORT, JSON.stringify(f) + "\n", { append: true });
}

interface Stack {
  api: Child;
  pg: PrivatePostgres;
  /** The folder of the folder store (absent on S3). */
  objects?: string;
}

/** A private Postgres, the API on it with `env`; `fn`, then everything stopped and removed. */
async function withStack(
  env: Record<string, string>,
  fn: (s: Stack) => Promise<void>,
): Promise<void> {
  const pg = await startPrivatePostgres();
  const objects = env.S3_ENDPOINT ? undefined : await Deno.makeTempDir({ prefix: "objects-" });
  let api: Child | undefined;
  try {
    api = await startApi({
      DATABASE_URL: pg.url,
      DATABASE_POOL_SIZE: "10",
      REDIS_URL: "",
      S3_ENDPOINT: "",
      ...(objects ? { OBJECT_DIR: objects } : {}),
      INFERENCE_WORKER: "off",
      ANALYSIS_RULES: "",
      DICOM_STABLE_SECONDS: "60",
      LOG_LEVEL: "warn",
      ACCESS_LOG: "off",
      ...env,
    });
    await fn({ api, pg, objects });
    // The process lived through it, and never threw past its handlers.
    assert.equal((await fetch(`${api.origin}/health/live`)).status, 200);
    assert.ok(!api.lines.some((l) => /Uncaught|panicked/.test(l)), api.tail());
  } catch (e) {
    if (api) console.error(api.tail(30));
    throw e;
  } finally {
    await api?.stop();
    await pg.close();
    if (objects) await Deno.remove(objects, { recursive: true }).catch(() => {});
  }
}

/**
 * Runs `kinds` of load against the API, `inject`s the fault after 1.5 s, keeps the load on until
 * every kind has succeeded again after it (and 1 s more), and checks the answers.
 */
async function underLoad(
  api: Child,
  fault: string,
  kinds: Kind[],
  inject: () => Promise<void>,
  extra: { instances?: Uint8Array[]; analyzeStudy?: string } = {},
) {
  const seed = await fhir(api.origin, "POST", "Patient", { resourceType: "Patient" });
  assert.equal(seed.status, 201);
  const series = extra.instances ? seriesOf(extra.instances) : undefined;
  const load = startLoad(api.origin, { kinds, seedPatient: seed.body.id, ...extra, series });
  const ready = watchReadiness(api.origin, load.now);
  try {
    await sleep(1_500);
    const from = load.now();
    await inject();
    const to = load.now();
    await until(
      `every kind of request to succeed again after ${fault}`,
      () =>
        kinds.every((k) =>
          load.samples.some((s) =>
            s.kind === k && s.start > to && s.status >= 200 && s.status < 300
          )
        ),
      60_000,
    );
    await sleep(1_000);
    await load.stop();
    await ready.stop();
    const f = figures(fault, load.samples, { from, to }, ready.seen);
    await report(f);
    assertAnswered(load.samples);
    await assertAcknowledged(api.origin, load);
    if (series) await assertInstances(api.origin, series.studyUid, load.sops);
    return { f, load, series };
  } finally {
    await load.stop();
    await ready.stop();
  }
}

let poolSeed = 900;

function seriesOf(instances: Uint8Array[]) {
  const plan = pools.get(instances);
  if (!plan) throw new Error("not an instance pool of this file");
  return plan;
}
const pools = new Map<Uint8Array[], { studyUid: string; seriesUid: string }>();
/** 300 small instances of one new series, for STOW-RS load. */
function newPool() {
  const seed = poolSeed++;
  const study = sphereStudy({ seed, rows: 32, cols: 32, slices: 300, spheres: [] });
  pools.set(study.instances, {
    studyUid: study.plan.study.studyInstanceUid,
    seriesUid: study.plan.study.seriesInstanceUid,
  });
  return study.instances;
}

/** Files in the folder store, or objects in the bucket: as many as the rows, eventually. */
async function assertNoOrphans(count: () => Promise<number>, rows: number): Promise<void> {
  let objects = -1;
  const end = Date.now() + 30_000;
  while (Date.now() < end) {
    objects = await count();
    if (objects === rows) return;
    await sleep(500);
  }
  assert.equal(objects, rows, "objects without their rows were left behind");
}

async function filesIn(dir: string): Promise<number> {
  let n = 0;
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      if (e.isDirectory) await walk(`${d}/${e.name}`);
      else if (!e.name.startsWith(".tmp-") && d !== dir) n++;
    }
  };
  await walk(`${dir}/dicom`).catch(() => {});
  return n;
}

const noPostgres = !postgresBin();
const noRedis = noPostgres || !commandExists("redis-server");
const noRgw = noPostgres || !rgwAvailable();

function faultTest(name: string, ignore: boolean, fn: () => Promise<void>): void {
  Deno.test({ name, ignore, sanitizeOps: false, sanitizeResources: false, fn });
}

faultTest(
  "fault: Postgres restarted under FHIR read/write/transaction and STOW/WADO load",
  noPostgres,
  () =>
    withStack({}, async ({ api, pg, objects }) => {
      const instances = newPool();
      const { series } = await underLoad(
        api,
        "Postgres restarted (pg_ctl restart -m fast)",
        ["fhir-write", "fhir-read", "fhir-transaction", "stow", "wado"],
        () => pg.restart(),
        { instances },
      );
      const rows = await assertInstances(api.origin, series!.studyUid, []);
      await assertNoOrphans(() => filesIn(objects!), rows);
    }),
);

faultTest(
  "fault: Postgres paused 10 s (SIGSTOP) under FHIR and STOW/WADO load: readiness 503, no request lost",
  noPostgres,
  () =>
    withStack({}, async ({ api, pg, objects }) => {
      const instances = newPool();
      const { f, series } = await underLoad(
        api,
        "Postgres paused 10 s (SIGSTOP)",
        ["fhir-write", "fhir-read", "fhir-transaction", "stow", "wado"],
        async () => {
          await pg.pause();
          await sleep(10_000);
          await pg.resume();
        },
        { instances },
      );
      // Readiness notices within a few seconds (each check gives up after 2 s) and recovers.
      assert.ok(f.notReadyAfterSeconds !== null && f.notReadyAfterSeconds <= 5, JSON.stringify(f));
      assert.ok(f.readyAgainSeconds !== null && f.readyAgainSeconds <= 5, JSON.stringify(f));
      const rows = await assertInstances(api.origin, series!.studyUid, []);
      await assertNoOrphans(() => filesIn(objects!), rows);
    }),
);

/** Three studies stored and their analyses queued (no sidecar yet); a fourth to ask for later. */
async function queuedStudies(api: Child): Promise<{ tasks: string[]; fourth: string }> {
  const ids: string[] = [];
  for (const seed of [301, 302, 303, 304]) {
    const study = smallStudy(seed);
    const stow = await stowInstances(`${api.origin}/dicomweb`, study.instances);
    assert.equal(stow.status, 200);
    const uid = study.plan.study.studyInstanceUid;
    const q = `ImagingStudy?identifier=${encodeURIComponent(`urn:dicom:uid|urn:oid:${uid}`)}`;
    ids.push(
      await until("the ImagingStudy", async () => {
        const found = (await fhir(api.origin, "GET", q)).body.entry?.[0]?.resource;
        return found?.numberOfInstances === study.instances.length ? found.id : undefined;
      }),
    );
  }
  const tasks: string[] = [];
  for (const id of ids.slice(0, 3)) {
    const r = await fhir(api.origin, "POST", `ImagingStudy/${id}/$analyze`, {
      resourceType: "Parameters",
      parameter: [{ name: "model", valueString: "threshold-demo" }],
    });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    tasks.push(r.body.id);
  }
  return { tasks, fourth: ids[3] };
}

async function withRedisStack(
  fn: (s: Stack, redis: PrivateServer, models: string) => Promise<void>,
) {
  const redis = await startPrivateRedis();
  const models = await modelsDir(["threshold-demo"]);
  try {
    await withStack({ ...redis.env, MODELS_DIR: models }, (s) => fn(s, redis, models));
  } finally {
    await redis.close();
    await Deno.remove(models, { recursive: true }).catch(() => {});
  }
}

faultTest(
  "fault: Redis restarted with jobs queued and running and $analyze asked: 503 while down, every job done once",
  noRedis,
  () =>
    withRedisStack(async ({ api }, redis, models) => {
      const { tasks, fourth } = await queuedStudies(api);
      // A sidecar at work through the restart: jobs queued before it, one running while Redis goes
      // away (held at its WADO-RS retrieve by a proxy, so its heartbeats and ack meet the outage),
      // and more asked for before, during and after.
      const proxy = createProxy(api.origin);
      const retrieve = proxy.holdNext(
        "request",
        (method, path) =>
          method === "GET" && /\/dicomweb\/studies\/[^/]+\/series\/[^/]+$/.test(path),
      );
      const sidecar = await startSidecar("sidecar", {
        ...redis.env,
        MODELS_DIR: models,
        SIDECAR_API_URL: proxy.origin,
        JOB_VISIBILITY_MS: "3000",
        DATABASE_URL: "",
        S3_ENDPOINT: "",
      });
      try {
        const { load } = await underLoad(
          api,
          "Redis restarted, down 3 s (append-only file), a job running",
          ["fhir-write", "fhir-read", "analyze"],
          async () => {
            const held = await retrieve;
            await redis.restart(3_000);
            held.release();
          },
          { analyzeStudy: fourth },
        );
        assert.ok(load.samples.some((s) => s.kind === "analyze" && s.status === 503));
        // Every accepted Task completes, with exactly one report.
        for (const id of [...tasks, ...load.tasks]) {
          const task: Json = await until(`Task/${id} completed`, async () => {
            const t: Json = (await fhir(api.origin, "GET", `Task/${id}`)).body;
            assert.notEqual(t.status, "failed", JSON.stringify(t.statusReason));
            return t.status === "completed" ? t : undefined;
          }, 90_000);
          const key = task.identifier[0].value;
          const q = `DiagnosticReport?identifier=${
            encodeURIComponent(`${JOB_KEY_SYSTEM}|${key}`)
          }&_total=accurate`;
          assert.equal((await fhir(api.origin, "GET", q)).body.total, 1, `Task/${id}`);
        }
      } catch (e) {
        console.error(sidecar.tail(30));
        throw e;
      } finally {
        await sidecar.stop();
        await proxy.close();
      }
    }),
);

faultTest(
  "fault: Redis paused 10 s (SIGSTOP): $analyze answers 503 within seconds, FHIR unaffected",
  noRedis,
  () =>
    withRedisStack(async ({ api }, redis) => {
      const { fourth } = await queuedStudies(api);
      const { load } = await underLoad(
        api,
        "Redis paused 10 s (SIGSTOP)",
        ["fhir-write", "fhir-read", "analyze"],
        async () => {
          await redis.pause();
          await sleep(10_000);
          await redis.resume();
        },
        { analyzeStudy: fourth },
      );
      // Nothing waits on the stalled queue: its calls give up after 2 s.
      const analyze = load.samples.filter((s) => s.kind === "analyze");
      assert.ok(analyze.some((s) => s.status === 503), "no $analyze met the paused queue");
      assert.ok(Math.max(...analyze.map((s) => s.end - s.start)) < 8_000);
      const fhirFailed = load.samples.filter((s) => s.kind !== "analyze" && s.status >= 300);
      assert.deepEqual(fhirFailed, [], "FHIR requests failed while only Redis was paused");
    }),
);

let rgw: Promise<PrivateServer> | undefined;

async function withRgwStack(fn: (s: Stack, rgw: PrivateServer, bucket: string) => Promise<void>) {
  const server = await (rgw ??= startPrivateRgw());
  const bucket = `faults-${Date.now().toString(36)}`;
  await withStack({
    ...server.env,
    S3_BUCKET: bucket,
    // A stalled server fails a request after 3 s (three attempts) rather than holding it.
    S3_TIMEOUT_SECONDS: "3",
  }, (s) => fn(s, server, bucket));
}

/** The objects in `bucket` of the private RGW. */
function bucketCount(env: Record<string, string>, bucket: string) {
  return async () => {
    const store = createObjectStore(loadConfig({ ...env, S3_BUCKET: bucket }));
    try {
      return (await Array.fromAsync(store.list("dicom/"))).length;
    } finally {
      await store.close();
    }
  };
}

faultTest(
  "fault: S3 (Ceph RGW) restarted under STOW-RS and WADO-RS load",
  noRgw,
  () =>
    withRgwStack(async ({ api }, server, bucket) => {
      const { series } = await underLoad(
        api,
        "S3 (RGW) restarted",
        ["stow", "wado", "fhir-read"],
        () => server.restart(),
        { instances: newPool() },
      );
      const rows = await assertInstances(api.origin, series!.studyUid, []);
      await assertNoOrphans(bucketCount(server.env, bucket), rows);
    }),
);

faultTest(
  "fault: S3 (Ceph RGW) paused 10 s (SIGSTOP) under STOW-RS and WADO-RS load",
  noRgw,
  async () => {
    try {
      await withRgwStack(async ({ api }, server, bucket) => {
        const { series } = await underLoad(
          api,
          "S3 (RGW) paused 10 s (SIGSTOP)",
          ["stow", "wado", "fhir-read"],
          async () => {
            await server.pause();
            await sleep(10_000);
            await server.resume();
          },
          { instances: newPool() },
        );
        const rows = await assertInstances(api.origin, series!.studyUid, []);
        await assertNoOrphans(bucketCount(server.env, bucket), rows);
      });
    } finally {
      await (await rgw)?.close();
    }
  },
);
