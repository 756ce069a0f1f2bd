/**
 * @module STOW-RS ingest benchmark: this service against Orthanc, same files, same client, one run.
 *
 *   deno run -A bench/ingest.ts [--studies 8] [--slices 100] [--size 512] [--batch 10]
 *     [--clients 4] [--rounds 1] [--database-url postgres://…] | --matrix | --floor
 *
 * 1. Generates `--studies` seeded synthetic CT series (`dicom/synth/ct.ts`, `--slices` slices of
 *    `--size`² pixels, ≈ 0.5 MB per 512² instance) and packs them into multipart/related;
 *    type="application/dicom" bodies of `--batch` instances, once, in memory (not timed): both
 *    servers get byte-identical bodies.
 * 2. Per measured run, starts the server fresh: this service (`deno run -A main.ts` as a child
 *    process) on the recreated database `fhir_bench_ingest` of `--database-url` (default
 *    DATABASE_URL, else postgres://postgres@127.0.0.1:5432/postgres) with its objects in a new
 *    S3 bucket `bench-ingest-<random>` when S3_ENDPOINT, S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY
 *    are set, else in a temp folder; or Orthanc (`scripts/orthanc/start.sh`, a temp state folder,
 *    free ports). Waits until the host is ≥ 85% idle.
 * 3. `--clients` async workers share the queue of bodies and POST them to `<dicomweb>/studies` with
 *    `Accept: application/dicom+json`; every response must be 200 and list its instances in
 *    ReferencedSOPSequence. Then QIDO-RS `/studies` must give the studies and, summed over their
 *    NumberOfStudyRelatedInstances, every instance.
 * 4. Reports wall time, instances/s, MB/s of request bodies, p50/p95 latency per request and the
 *    server process's VmHWM (its peak resident memory since it started, hence the fresh start).
 *    With `--rounds 2+` the order alternates (ours first in odd rounds) and medians are reported.
 * 5. `--matrix` runs the shapes senders use instead (MATRIX: 100-, 1000- and 3000-instance studies,
 *    1 or 10 instances per request, 1 or 4 connections; 256² slices unless `--size`) once per
 *    server each, and prints the ratio to Orthanc and the server CPU per instance for each.
 * 6. `--floor` runs the same cases against a bare Deno HTTP server that only reads the body, and
 *    one that also writes it to a new file and fdatasyncs it (`_ingest_floor.ts`): the ceiling any
 *    server written in Deno has on this machine with this client, to read the matrix against.
 */
import { flagsOf, positive } from "./_args.ts";
import { buildBodies, type StowBodies } from "./_ingest_bodies.ts";
import { machine, waitForQuiet } from "./_host.ts";
import { cpuSeconds, memory, percentile, qidoCounts, stowAll } from "./_ingest_measure.ts";
import { startFloor } from "./_ingest_floor.ts";
import {
  BENCH_DATABASE,
  type S3Env,
  s3FromEnv,
  startOrthanc,
  startOurs,
  type Target,
} from "./_ingest_targets.ts";

const TARGET_RATIO = 1.5;

interface Options {
  /** Run MATRIX (each case once, ours and Orthanc) instead of one case. */
  matrix: boolean;
  /** Run MATRIX against the floor servers (`_ingest_floor.ts`) instead. */
  floor: boolean;
  studies: number;
  slices: number;
  size: number;
  batch: number;
  clients: number;
  rounds: number;
  databaseUrl: string;
}

const USAGE = "deno run -A bench/ingest.ts [--studies 8] [--slices 100] [--size 512] " +
  "[--batch 10] [--clients 4] [--rounds 1] [--database-url postgres://…] | --matrix [--size 256]" +
  " | --floor [--size 256]";

/**
 * The shapes PACS and modalities send (`--matrix`): small and large studies, 10 or 1 instance per
 * request (most forwarders and C-STORE bridges send one), 4 or 1 connections.
 */
const MATRIX: { studies: number; slices: number; batch: number; clients: number }[] = [
  { studies: 4, slices: 100, batch: 10, clients: 4 },
  { studies: 4, slices: 100, batch: 1, clients: 4 },
  { studies: 1, slices: 100, batch: 1, clients: 1 },
  { studies: 1, slices: 1000, batch: 1, clients: 4 },
  { studies: 1, slices: 1000, batch: 10, clients: 1 },
  { studies: 1, slices: 3000, batch: 1, clients: 4 },
  { studies: 1, slices: 3000, batch: 1, clients: 1 },
];

function parseArgs(args: string[]): Options {
  const opts: Options = {
    studies: 8,
    slices: 100,
    size: 512,
    batch: 10,
    clients: 4,
    rounds: 1,
    matrix: false,
    floor: false,
    databaseUrl: Deno.env.get("DATABASE_URL") || "postgres://postgres@127.0.0.1:5432/postgres",
  };
  for (const [flag, value] of flagsOf(args)) {
    switch (flag) {
      case "--studies":
      case "--slices":
      case "--size":
      case "--batch":
      case "--clients":
      case "--rounds":
        opts[flag.slice(2) as "studies"] = positive(flag, value());
        break;
      case "--database-url":
        opts.databaseUrl = value();
        break;
      case "--matrix":
        opts.matrix = true;
        break;
      case "--floor":
        opts.floor = true;
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

// ---------------------------------------------------------------------------------------------
// One measured run

interface Run {
  server: "ours" | "orthanc";
  instances: number;
  mb: number;
  seconds: number;
  instancesPerSecond: number;
  mbPerSecond: number;
  p50: number;
  p95: number;
  peakMiB: number;
  cpuSeconds: number;
  idleBefore: number;
  ok: boolean;
}

async function measureRun(
  server: Run["server"],
  start: () => Promise<Target>,
  data: StowBodies,
  opts: Options,
): Promise<Run> {
  const target = await start();
  console.log(`  ${target.name}: pid ${target.pid}, DICOMweb ${target.dicomweb}`);
  try {
    const idleBefore = await waitForQuiet();
    const memBefore = await memory(target.pid);
    const cpuBefore = await cpuSeconds(target.pid);
    const r = await stowAll(target.dicomweb, data, opts.clients);
    const mem = await memory(target.pid);
    const cpu = (await cpuSeconds(target.pid)) - cpuBefore;
    const expected = opts.studies * opts.slices;
    const qido = await qidoCounts(target.dicomweb);
    const ok = r.non200 === 0 && r.failed === 0 && r.stored === expected &&
      qido.studies === opts.studies && qido.instances === expected && !qido.problem;
    const run: Run = {
      server,
      instances: r.stored,
      mb: data.bodyBytes / 1e6,
      seconds: r.seconds,
      instancesPerSecond: r.stored / r.seconds,
      mbPerSecond: data.bodyBytes / 1e6 / r.seconds,
      p50: percentile(r.latencies, 0.5),
      p95: percentile(r.latencies, 0.95),
      peakMiB: mem.peakMiB,
      cpuSeconds: cpu,
      idleBefore,
      ok,
    };
    console.log(
      `  ${target.name} (host ${idleBefore.toFixed(0)}% idle before): ${r.requests} requests in ` +
        `${fmt(r.seconds, 2)} s, ${fmt(run.instancesPerSecond)} instances/s, ` +
        `${fmt(run.mbPerSecond)} MB/s, p50 ${fmt(run.p50)} ms, p95 ${fmt(run.p95)} ms; ` +
        `peak RSS ${fmt(mem.peakMiB)} MiB (before ${fmt(memBefore.rssMiB)}, peak before ` +
        `${fmt(memBefore.peakMiB)}, after ${fmt(mem.rssMiB)}); server CPU ${fmt(cpu)} s`,
    );
    console.log(
      `    responses: ${r.requests - r.non200} × 200, ${r.non200} other; stored ${r.stored}, ` +
        `failed ${r.failed} (expected ${expected}); QIDO: ${qido.studies} studies, ` +
        `${qido.instances} instances${qido.problem ? ` (${qido.problem})` : ""} ` +
        `${ok ? "ok" : "MISMATCH"}`,
    );
    for (const p of r.problems) console.log(`    ${p}`);
    const errors = await target.errors();
    if (errors.length) {
      run.ok = false;
      console.log(
        `    the server logged ${errors.length} errors; the first: ${errors[0].slice(0, 500)}`,
      );
    }
    return run;
  } finally {
    await target.stop();
    console.log(`    log: ${target.logFile}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Report

function fmt(n: number, digits = 1): string {
  return Number.isFinite(n) ? n.toFixed(digits) : "-";
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const NUMERIC = [
  "instances",
  "mb",
  "seconds",
  "instancesPerSecond",
  "mbPerSecond",
  "p50",
  "p95",
  "peakMiB",
  "cpuSeconds",
] as const;

function medianRun(runs: Run[]): Run {
  const out = { ...runs[0], ok: runs.every((r) => r.ok) };
  for (const k of NUMERIC) out[k] = median(runs.map((r) => r[k]));
  return out;
}

function row(label: string, r: Run): string {
  return `| ${label} | ${r.instances} | ${fmt(r.mb)} | ${fmt(r.seconds, 2)} | ` +
    `${fmt(r.instancesPerSecond)} | ${fmt(r.mbPerSecond)} | ${fmt(r.p50)} | ${fmt(r.p95)} | ` +
    `${fmt(r.peakMiB)} |`;
}

// ---------------------------------------------------------------------------------------------
// Main

/** `--matrix`: each case once per server; a table of rates, ratios and CPU per instance. */
async function matrix(opts: Options) {
  const s3: S3Env | undefined = s3FromEnv();
  console.log(`Machine: ${await machine()}`);
  const lines: string[] = [];
  let failed = 0;
  for (const c of MATRIX) {
    const o = { ...opts, ...c, size: opts.size === 512 ? 256 : opts.size };
    const label = `${c.studies} × ${c.slices}, ${c.batch}/request, ${c.clients} conn.`;
    console.log(`\nCase: ${label} (${o.size}²)`);
    const data = buildBodies(o);
    const ours = await measureRun("ours", () => startOurs(opts.databaseUrl, s3), data, o);
    const orthanc = await measureRun("orthanc", () => startOrthanc(), data, o);
    if (!ours.ok || !orthanc.ok) failed++;
    const perInstance = (r: Run) => fmt(1000 * r.cpuSeconds / r.instances, 2);
    lines.push(
      `| ${label} | ${fmt(ours.instancesPerSecond)} | ${fmt(orthanc.instancesPerSecond)} | ` +
        `${fmt(ours.instancesPerSecond / orthanc.instancesPerSecond, 2)}× | ${
          perInstance(ours)
        } | ` +
        `${perInstance(orthanc)} |${ours.ok && orthanc.ok ? "" : " MISMATCH"}`,
    );
  }
  console.log("");
  console.log(`Machine: ${await machine()}`);
  console.log(
    `This service: Postgres ${new URL(opts.databaseUrl).host}, objects in ${
      s3 ? `S3 ${s3.endpoint}` : "a local folder"
    }; Orthanc: SQLite and storage in a temp folder; synthetic CT, 16-bit`,
  );
  console.log("");
  console.log(
    "| Case | This service inst/s | Orthanc inst/s | Ratio | Ours CPU ms/inst | Orthanc CPU ms/inst |",
  );
  console.log("| --- | ---: | ---: | ---: | ---: | ---: |");
  for (const l of lines) console.log(l);
  console.log(
    "\nCPU: the server process only (ours: plus Postgres and the object store, not counted).",
  );
  if (failed) Deno.exit(1);
}

async function floor(opts: Options) {
  console.log(`Machine: ${await machine()}`);
  const lines: string[] = [];
  for (const c of MATRIX) {
    const o = { ...opts, ...c, size: opts.size === 512 ? 256 : opts.size };
    const label = `${c.studies} × ${c.slices}, ${c.batch}/request, ${c.clients} conn.`;
    const data = buildBodies(o);
    const cells: string[] = [];
    for (const mode of ["read", "fsync"] as const) {
      const server = await startFloor(mode);
      try {
        await waitForQuiet();
        const cpuBefore = await cpuSeconds(server.pid);
        const r = await stowAll(server.dicomweb, data, o.clients);
        const cpu = (await cpuSeconds(server.pid)) - cpuBefore;
        if (r.non200 || r.stored !== data.instances) throw new Error(`${mode}: ${r.problems}`);
        cells.push(fmt(r.stored / r.seconds), fmt(1000 * cpu / r.stored, 2));
        console.log(`${label}, ${mode}: ${fmt(r.stored / r.seconds)} instances/s`);
      } finally {
        await server.stop();
      }
    }
    lines.push(`| ${label} | ${cells.join(" | ")} |`);
  }
  console.log("");
  console.log(
    "| Case | Read only inst/s | CPU ms/inst | Read + new file + fdatasync inst/s | CPU ms/inst |",
  );
  console.log("| --- | ---: | ---: | ---: | ---: |");
  for (const l of lines) console.log(l);
}

async function main() {
  const opts = parseArgs(Deno.args);
  if (opts.floor) return await floor(opts);
  if (opts.matrix) return await matrix(opts);
  const s3: S3Env | undefined = s3FromEnv();
  const store = s3
    ? `S3 ${s3.endpoint} (a new bucket bench-ingest-<random> per run)`
    : "local folder (OBJECT_DIR, a new temp folder per run; set S3_ENDPOINT, S3_ACCESS_KEY_ID, " +
      "S3_SECRET_ACCESS_KEY for S3)";
  console.log(`Machine: ${await machine()}`);
  console.log(
    `Generating ${opts.studies} CT studies × ${opts.slices} slices of ${opts.size}×${opts.size}`,
  );
  const data = buildBodies(opts, (n) => {
    if (n === opts.studies || n % 4 === 0) console.log(`  ${n} / ${opts.studies} studies`);
  });
  console.log(
    `  ${data.instances} instances, ${fmt(data.instanceBytes / 1e6)} MB ` +
      `(${fmt(data.instanceBytes / data.instances / 1e6, 3)} MB each) in ` +
      `${fmt(data.generateSeconds)} s; ${data.bodies.length} request bodies of ${opts.batch}, ` +
      `${fmt(data.bodyBytes / 1e6)} MB`,
  );

  const runs: Run[] = [];
  let orthancVersion = "Orthanc";
  const ours = () => startOurs(opts.databaseUrl, s3);
  const orthanc = async () => {
    const t = await startOrthanc();
    orthancVersion = t.version;
    return t;
  };
  for (let round = 1; round <= opts.rounds; round++) {
    console.log(`Round ${round} / ${opts.rounds}`);
    const order = round % 2 === 1 ? ["ours", "orthanc"] as const : ["orthanc", "ours"] as const;
    for (const server of order) {
      runs.push(await measureRun(server, server === "ours" ? ours : orthanc, data, opts));
    }
  }

  const where = new URL(opts.databaseUrl);
  console.log("");
  console.log(`Machine: ${await machine()}`);
  console.log(
    `Data: ${opts.studies} synthetic CT studies × ${opts.slices} slices, ${opts.size}×${opts.size}` +
      ` 16-bit (dicom/synth), ${data.instances} instances, ${fmt(data.instanceBytes / 1e6)} MB; ` +
      `${data.bodies.length} STOW-RS requests of ${opts.batch} instances ` +
      `(${fmt(data.bodyBytes / 1e6)} MB of bodies, byte-identical for both servers)`,
  );
  console.log(
    `Client: ${opts.clients} concurrent clients (fetch, in the bench process), ` +
      `Accept: application/dicom+json; ${opts.rounds} round(s)` +
      (opts.rounds > 1 ? ", order alternating, medians below" : ", this service first"),
  );
  console.log(
    `This service: ${BENCH_DATABASE} on ${where.host} (recreated per run), objects in ${store}`,
  );
  console.log(
    `Orthanc: ${orthancVersion}, SQLite index and storage in a temp folder, no compression`,
  );
  console.log(
    "Peak RSS: VmHWM of the server process, the peak since it started (each run starts it fresh);" +
      " this service's Postgres and S3 are other processes, Orthanc's SQLite is in-process.",
  );
  console.log("");
  console.log(
    "| Server | Instances | MB | Seconds | Instances/s | MB/s | p50 ms | p95 ms | Peak RSS MiB |",
  );
  console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  const label = { ours: "this service", orthanc: "Orthanc" };
  const bySide = (s: Run["server"]) => runs.filter((r) => r.server === s);
  if (opts.rounds > 1) {
    runs.forEach((r, i) =>
      console.log(row(`${label[r.server]} (round ${Math.floor(i / 2) + 1})`, r))
    );
  }
  const medOurs = medianRun(bySide("ours"));
  const medOrthanc = medianRun(bySide("orthanc"));
  const m = opts.rounds > 1 ? " (median)" : "";
  console.log(row(`${label.ours}${m}`, medOurs));
  console.log(row(`${label.orthanc}${m}`, medOrthanc));
  console.log("");
  console.log(
    `Server CPU during the ingest${m}: this service ${fmt(medOurs.cpuSeconds)} s ` +
      `(${fmt(1000 * medOurs.cpuSeconds / medOurs.instances, 2)} ms/instance, plus Postgres and ` +
      `the object store), Orthanc ${fmt(medOrthanc.cpuSeconds)} s ` +
      `(${fmt(1000 * medOrthanc.cpuSeconds / medOrthanc.instances, 2)} ms/instance)`,
  );
  const ratio = medOurs.instancesPerSecond / medOrthanc.instancesPerSecond;
  const meets = ratio >= TARGET_RATIO;
  console.log(
    `Instances/s, this service / Orthanc${m}: ${fmt(ratio, 2)}× — target ≥ ${TARGET_RATIO}×: ` +
      `${meets ? "met" : "NOT met"}`,
  );
  const failed = runs.filter((r) => !r.ok);
  if (failed.length) {
    console.log(
      `\n${failed.length} run(s) had non-200 responses, failed instances, wrong QIDO counts ` +
        `or logged errors (see above): ${failed.map((r) => label[r.server]).join(", ")}`,
    );
    Deno.exit(1);
  }
}

if (import.meta.main) await main();
