/**
 * @module Scale-out benchmark: the same service with 1 and 2 API processes behind HAProxy, and
 * with 1 and 2 sidecars, on the real Postgres (and Redis, and S3 when S3_ENDPOINT is set).
 *
 *   deno run -A bench/scale.ts [--seconds 5] [--warmup 1] [--connections 32[,64]]
 *     [--resources 5000] [--studies 4] [--slices 100] [--size 512] [--sidecars 1,2]
 *     [--model lung-nodule-demo] [--models-dir sidecar/models] [--no-wait]
 *     [--skip-fhir] [--skip-inference]
 *
 * Needs DATABASE_URL, REDIS_URL (a free database 1–15 is claimed), S3_ENDPOINT and its keys
 * (else objects go to a temp folder) and Debian's haproxy. It starts two API processes on a fresh
 * database (`tests/scale/_cluster.ts`, AUTH=off, the audit trail on as by default) behind one
 * HAProxy with two frontends: one sends to the first API only, the other round-robins over both.
 *
 * 1. FHIR: loads `--resources` Patients and Observations (1 : 7) in transaction Bundles, runs
 *    VACUUM ANALYZE, then per connection count and scenario (read Patient/{id},
 *    Patient?family, Observation?subject&code) runs autocannon for `--seconds` (after
 *    `--warmup`) against the first API directly, through HAProxy to it alone, and through
 *    HAProxy to both; requests/s, p50/p95/p99 from every response, and the CPU (in cores) of
 *    the APIs, Postgres, HAProxy and the bench meanwhile.
 * 2. Inference: per `--sidecars` count, that many sidecars (INFERENCE_THREADS = cores ÷ sidecars)
 *    reach the API through HAProxy (both APIs); `--studies` new synthetic CT studies are stored,
 *    one 8-slice warm-up study per sidecar analysed, then `$analyze` is asked for every study at
 *    once: slices/s and studies/min from the first request to the last Task's completing write.
 *
 * Before each measurement it waits (up to 3 minutes) for the host to be ≥ 85% idle, unless
 * `--no-wait`.
 */
import { flagsOf, positive } from "./_args.ts";
import { haproxyBinary } from "../tests/scale/_haproxy.ts";
import { type Cluster, startCluster } from "../tests/scale/_cluster.ts";
import { cpuIdle, machine, waitForQuiet } from "./_host.ts";
import {
  imagingStudies,
  jobTimes,
  requestAnalysis,
  stowStudy,
  waitForTasks,
} from "./_inference_fhir.ts";
import { makeStudies } from "./_inference_pipeline.ts";
import { cpuMeter, type CpuShare, fmt, loadResources, measure, type Measured } from "./_scale.ts";
import { databaseSize } from "./_server.ts";
import { FAMILY, LOINC, pick } from "./_synthetic.ts";

interface Options {
  seconds: number;
  warmup: number;
  connections: number[];
  resources: number;
  studies: number;
  slices: number;
  size: number;
  sidecars: number[];
  model: string;
  modelsDir: string;
  noWait: boolean;
  fhir: boolean;
  inference: boolean;
}

const USAGE = "deno run -A bench/scale.ts [--seconds 5] [--warmup 1] [--connections 32[,64]] " +
  "[--resources 5000] [--studies 4] [--slices 100] [--size 512] [--sidecars 1,2] " +
  "[--model lung-nodule-demo] [--models-dir sidecar/models] [--no-wait] [--skip-fhir] " +
  "[--skip-inference]";

function parseArgs(args: string[]): Options {
  const opts: Options = {
    seconds: 5,
    warmup: 1,
    connections: [32],
    resources: 5000,
    studies: 4,
    slices: 100,
    size: 512,
    sidecars: [1, 2],
    model: "lung-nodule-demo",
    modelsDir: new URL("../sidecar/models", import.meta.url).pathname,
    noWait: false,
    fhir: true,
    inference: true,
  };
  for (const [flag, value] of flagsOf(args)) {
    switch (flag) {
      case "--seconds":
      case "--resources":
      case "--studies":
      case "--slices":
      case "--size":
        opts[flag.slice(2) as "seconds"] = positive(flag, value());
        break;
      case "--warmup": {
        const n = Number(value());
        if (!(n >= 0)) throw new Error(`--warmup needs a number ≥ 0`);
        opts.warmup = n;
        break;
      }
      case "--connections":
        opts.connections = value().split(",").map((c) => positive(flag, c.trim()));
        break;
      case "--sidecars":
        opts.sidecars = value().split(",").map((c) => positive(flag, c.trim()));
        break;
      case "--model":
        opts.model = value();
        break;
      case "--models-dir":
        opts.modelsDir = value();
        break;
      case "--no-wait":
        opts.noWait = true;
        break;
      case "--skip-fhir":
        opts.fhir = false;
        break;
      case "--skip-inference":
        opts.inference = false;
        break;
      case "--help":
      case "-h":
        console.log(USAGE);
        Deno.exit(0);
        break;
      default:
        throw new Error(`Unknown option ${flag}\n${USAGE}`);
    }
  }
  return opts;
}

interface FhirRow {
  scenario: string;
  setup: string;
  connections: number;
  idle: number;
  m: Measured;
}

interface InferenceRow {
  sidecars: number;
  threads: number;
  idle: number;
  jobs: number;
  failed: number;
  seconds: number;
  slicesPerSecond: number;
  studiesPerMinute: number;
  perSidecar: number[];
  cpu: CpuShare;
}

function cpuCells(c: CpuShare): string {
  return `${fmt(c.apis, 2)} | ${fmt(c.postgres, 2)} | ${fmt(c.haproxy, 2)} | ${fmt(c.bench, 2)}`;
}

async function benchFhir(c: Cluster, opts: Options, quiet: () => Promise<number>) {
  const base = `${c.origins[1]}/fhir`;
  console.log(`Loading ${opts.resources} Patients and Observations (1 : 7) through both APIs`);
  const { patientIds, seconds } = await loadResources(base, opts.resources);
  console.log(
    `  ${(opts.resources / seconds).toFixed(0)} resources/s; database ${await databaseSize(
      c.databaseUrl,
    )} after VACUUM ANALYZE`,
  );
  const rand = Math.random;
  const id = () => patientIds[Math.floor(rand() * patientIds.length)];
  const scenarios: [string, () => string][] = [
    ["read Patient/{id}", () => `/fhir/Patient/${id()}`],
    ["search Patient?family", () => `/fhir/Patient?family=${pick(rand, FAMILY)}`],
    [
      "search Observation?subject&code",
      () =>
        `/fhir/Observation?subject=Patient/${id()}&code=${
          encodeURIComponent(`http://loinc.org|${pick(rand, LOINC)[0]}`)
        }`,
    ],
  ];
  const setups: [string, string][] = [
    ["1 API, direct", c.apis[0].origin],
    ["1 API via HAProxy", c.origins[0]],
    ["2 APIs via HAProxy", c.origins[1]],
  ];
  const pids = { apis: c.apis.map((a) => a.pid), haproxy: c.haproxy.pid };
  const rows: FhirRow[] = [];
  for (const connections of opts.connections) {
    for (const [scenario, next] of scenarios) {
      for (const [setup, origin] of setups) {
        const idle = await quiet();
        if (opts.warmup > 0) await measure(origin, next, connections, opts.warmup, pids);
        const m = await measure(origin, next, connections, opts.seconds, pids);
        console.log(
          `  [${connections} conn, ${idle.toFixed(0)}% idle before] ${scenario}, ${setup}: ` +
            `${m.rps.toFixed(0)} req/s, p50 ${fmt(m.p50)} p95 ${fmt(m.p95)} ms, errors ${m.errors}`,
        );
        rows.push({ scenario, setup, connections, idle, m });
      }
    }
  }
  return rows;
}

async function benchInference(
  c: Cluster,
  opts: Options,
  quiet: () => Promise<number>,
): Promise<InferenceRow[]> {
  const rows: InferenceRow[] = [];
  const base = `${c.origins[1]}/fhir`;
  const dicomweb = `${c.origins[1]}/dicomweb`;
  const cores = navigator.hardwareConcurrency;
  for (const [phase, n] of opts.sidecars.entries()) {
    const threads = Math.max(1, Math.floor(cores / n));
    console.log(`Inference with ${n} sidecar(s), INFERENCE_THREADS=${threads}`);
    const studies = makeStudies(8100 + phase * 100, opts.studies, opts.slices, opts.size);
    const warmup = makeStudies(8900 + phase * 100, n, 8, opts.size);
    for (const s of [...studies, ...warmup]) await stowStudy(dicomweb, s.instances, 10);
    const sidecars = [];
    for (let i = 0; i < n; i++) {
      sidecars.push(await c.startSidecar({ INFERENCE_THREADS: String(threads) }));
    }
    try {
      const ids = await imagingStudies(base);
      const idOf = (uid: string) => {
        const found = ids.get(uid);
        if (!found) throw new Error(`no ImagingStudy for ${uid}`);
        return found;
      };
      const warm = await Promise.all(
        warmup.map((s) => requestAnalysis(base, idOf(s.uid), opts.model)),
      );
      await waitForTasks(base, warm.map((t) => t.id!), { pollMs: 250, timeoutMs: 600_000 });
      const idle = await quiet();
      const done0 = await Promise.all(sidecars.map(async (s) => await jobsDone(s.origin)));
      const meter = await cpuMeter({
        apis: c.apis.map((a) => a.pid),
        sidecars: sidecars.map((s) => s.pid),
        haproxy: c.haproxy.pid,
      });
      const t0 = Date.now();
      const tasks = await Promise.all(
        studies.map((s) => requestAnalysis(base, idOf(s.uid), opts.model)),
      );
      const ended = await waitForTasks(base, tasks.map((t) => t.id!), {
        pollMs: 250,
        timeoutMs: 1_800_000,
      });
      const cpu = await meter.stop();
      const times = await Promise.all([...ended.values()].map((t) => jobTimes(base, t)));
      const filed = Math.max(...times.map((t) => t.filed));
      const seconds = (filed - t0) / 1000;
      const done1 = await Promise.all(sidecars.map(async (s) => await jobsDone(s.origin)));
      const row: InferenceRow = {
        sidecars: n,
        threads,
        idle,
        jobs: times.length,
        failed: times.filter((t) => t.status !== "completed").length,
        seconds,
        slicesPerSecond: (opts.studies * opts.slices) / seconds,
        studiesPerMinute: (opts.studies * 60) / seconds,
        perSidecar: done1.map((d, i) => d - done0[i]),
        cpu,
      };
      console.log(
        `  ${row.jobs} jobs in ${seconds.toFixed(1)} s: ${row.slicesPerSecond.toFixed(1)} ` +
          `slices/s, ${row.studiesPerMinute.toFixed(1)} studies/min (${idle.toFixed(0)}% idle ` +
          `before; failed ${row.failed})`,
      );
      rows.push(row);
    } finally {
      for (const s of sidecars) await s.stop(40_000);
    }
  }
  return rows;
}

async function jobsDone(origin: string): Promise<number> {
  const body = await (await fetch(`${origin}/health`)).json();
  return Number(body.jobs?.done ?? NaN);
}

async function main() {
  const opts = parseArgs(Deno.args);
  const command = `deno run -A bench/scale.ts ${Deno.args.join(" ")}`.trim();
  const missing = ["DATABASE_URL", "REDIS_URL"].filter((v) => !Deno.env.get(v));
  if (!haproxyBinary()) missing.push("haproxy (apt-get install haproxy)");
  if (missing.length) throw new Error(`bench/scale.ts needs ${missing.join(", ")}`);
  console.log(`Machine: ${await machine()}`);
  console.log(`Command: ${command}`);
  const quiet = opts.noWait ? () => cpuIdle(1000) : waitForQuiet;
  const c = await startCluster({
    apis: 2,
    frontends: [[0], [0, 1]],
    models: opts.modelsDir,
    readySeconds: 120,
    // The real model's jobs take seconds: the default visibility timeout, no redelivery.
    apiEnv: { JOB_VISIBILITY_MS: "60000" },
    sidecarEnv: { JOB_VISIBILITY_MS: "60000", LOG_LEVEL: "warn" },
  });
  let fhirRows: FhirRow[] = [];
  let inferenceRows: InferenceRow[] = [];
  try {
    console.log(
      `APIs ${c.apis.map((a) => `${a.name} pid ${a.pid}`).join(", ")}; HAProxy pid ` +
        `${c.haproxy.pid}: ${c.origins[0]} → api1, ${c.origins[1]} → api1 + api2`,
    );
    if (opts.fhir) fhirRows = await benchFhir(c, opts, quiet);
    if (opts.inference) inferenceRows = await benchInference(c, opts, quiet);
  } catch (e) {
    console.error(c.tails(20));
    throw e;
  } finally {
    await c.close();
  }

  console.log("");
  console.log(`Machine: ${await machine()}`);
  console.log(`Command: ${command}`);
  console.log(
    `Server: 2 API processes (main.ts, AUTH=off, audit on, DATABASE_POOL_SIZE=6 each) on a ` +
      `fresh database of ${new URL(Deno.env.get("DATABASE_URL")!).host}, Redis ` +
      `${Deno.env.get("S3_ENDPOINT") ? "and Ceph RGW (S3)" : "(objects in a temp folder)"}; ` +
      `HAProxy ${haproxyBinary()} round robin, health checks on /health/ready`,
  );
  if (fhirRows.length) {
    console.log(
      `\nFHIR: autocannon 8.0.0 in the bench process, ${opts.seconds} s per row after ` +
        `${opts.warmup} s warm-up; CPU in cores (2 = the whole machine)\n`,
    );
    console.log(
      "| Scenario | Setup | Conns | Requests/s | p50 ms | p95 ms | p99 ms | Errors | CPU APIs | " +
        "CPU Postgres | CPU HAProxy | CPU bench | Idle before |",
    );
    console.log(
      "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    );
    for (const r of fhirRows) {
      console.log(
        `| ${r.scenario} | ${r.setup} | ${r.connections} | ${r.m.rps.toFixed(0)} | ` +
          `${fmt(r.m.p50)} | ${fmt(r.m.p95)} | ${fmt(r.m.p99)} | ${r.m.errors} | ` +
          `${cpuCells(r.m.cpu)} | ${r.idle.toFixed(0)}% |`,
      );
    }
  }
  if (inferenceRows.length) {
    console.log(
      `\nInference: model ${opts.model}, CPU provider, ${opts.studies} studies × ` +
        `${opts.slices} slices of ${opts.size}² per row, through HAProxy to both APIs\n`,
    );
    console.log(
      "| Sidecars | Threads each | Jobs | Seconds | Slices/s | Studies/min | Jobs per sidecar | " +
        "CPU sidecars | CPU APIs | CPU Postgres | CPU S3 | Idle before |",
    );
    console.log(
      "| ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    );
    for (const r of inferenceRows) {
      console.log(
        `| ${r.sidecars} | ${r.threads} | ${r.jobs}${r.failed ? ` (${r.failed} failed)` : ""} | ` +
          `${fmt(r.seconds)} | ${fmt(r.slicesPerSecond)} | ${fmt(r.studiesPerMinute)} | ` +
          `${r.perSidecar.join(" / ")} | ${fmt(r.cpu.sidecars, 2)} | ${fmt(r.cpu.apis, 2)} | ` +
          `${fmt(r.cpu.postgres, 2)} | ${fmt(r.cpu.s3, 2)} | ${r.idle.toFixed(0)}% |`,
      );
    }
  }
  const bad = fhirRows.some((r) => r.m.errors > 0) || inferenceRows.some((r) => r.failed > 0);
  if (bad) Deno.exit(1);
}

if (import.meta.main) await main();
