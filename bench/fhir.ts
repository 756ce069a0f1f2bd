/**
 * @module End-to-end FHIR server benchmark.
 *
 *   deno run -A bench/fhir.ts [--resources 100000] [--1m] [--connections 64[,16…]] [--duration 10]
 *     [--database-url postgres://…] [--bundle-size 250] [--load-concurrency 4] [--warmup 2]
 *     [--reuse] [--auth]
 *
 * 1. Drops and creates the database `fhir_bench` on the Postgres server of `--database-url`
 *    (default: DATABASE_URL, else postgres://postgres@127.0.0.1:5432/postgres) and starts the
 *    server (`deno run -A main.ts`) as a child process on a free port pointed at it.
 * 2. Loads synthetic Patients, Observations and ImagingStudies (1 : 7 : 2) through the FHIR API in
 *    transaction Bundles, several in flight, and checks the counts with `_summary=count`.
 * 3. Runs autocannon (npm:autocannon@8.0.0, in this process) against each scenario with a new URL
 *    per request, and prints requests/s and p50/p95/p99 latency (measured per response here,
 *    since autocannon's own histogram reports p97.5 but not p95).
 *
 * With `--auth` the server runs with AUTH=on: the bench logs in as an admin (created from
 * ADMIN_PASSWORD on first start) and sends its bearer token with every request, so the figures
 * include verifying an ES256 token and checking scopes per request.
 */
import { flagsOf } from "./_args.ts";
import autocannon from "autocannon";
import { machine, waitForQuiet } from "./_host.ts";
import {
  databaseSize,
  existingDatabase,
  loadedBefore,
  recreateDatabase,
  startServer,
} from "./_server.ts";
import {
  FAMILY,
  imagingStudy,
  isoDate,
  Json,
  LOINC,
  mulberry32,
  OBS_PER_PATIENT,
  observation,
  patient,
  PER_PATIENT,
  pick,
  STUDIES_PER_PATIENT,
  T2015,
  T2025,
} from "./_synthetic.ts";

// ---------------------------------------------------------------------------------------------
// Options

interface Options {
  resources: number;
  /** One or more connection counts; every scenario runs at each. */
  connections: number[];
  duration: number;
  warmup: number;
  databaseUrl: string;
  bundleSize: number;
  loadConcurrency: number;
  /** Use the fhir_bench database a previous run loaded instead of recreating and loading it. */
  reuse: boolean;
  /** Run the server with AUTH=on and send a bearer token with every request. */
  auth: boolean;
}

/** Added to every request: `Authorization` when --auth. */
const AUTH_HEADERS: Record<string, string> = {};
const BENCH_ADMIN_PASSWORD = "bench admin password, not a secret";

function parseArgs(args: string[]): Options {
  const opts: Options = {
    resources: 100_000,
    connections: [64],
    duration: 10,
    warmup: 2,
    databaseUrl: Deno.env.get("DATABASE_URL") || "postgres://postgres@127.0.0.1:5432/postgres",
    bundleSize: 250,
    loadConcurrency: 4,
    reuse: false,
    auth: false,
  };
  const num = (name: string, v: string | undefined): number => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n < 0) {
      throw new Error(`${name} needs a non-negative number, got ${v}`);
    }
    return n;
  };
  for (const [flag, value] of flagsOf(args)) {
    switch (flag) {
      case "--resources":
        opts.resources = Math.floor(num(flag, value()));
        break;
      case "--1m":
        opts.resources = 1_000_000;
        break;
      case "--connections":
        opts.connections = value().split(",").map((c) => Math.max(1, Math.floor(num(flag, c))));
        break;
      case "--duration":
        opts.duration = num(flag, value());
        break;
      case "--warmup":
        opts.warmup = num(flag, value());
        break;
      case "--database-url":
        opts.databaseUrl = value();
        break;
      case "--bundle-size":
        opts.bundleSize = Math.max(1, Math.floor(num(flag, value())));
        break;
      case "--load-concurrency":
        opts.loadConcurrency = Math.max(1, Math.floor(num(flag, value())));
        break;
      case "--auth":
        opts.auth = true;
        break;
      case "--reuse":
        opts.reuse = true;
        break;
      case "--help":
      case "-h":
        console.log(
          "deno run -A bench/fhir.ts [--resources N] [--1m] [--connections 64[,16]] [--duration 10] " +
            "[--warmup 2] [--database-url postgres://…] [--bundle-size 250] [--load-concurrency 4] [--reuse] [--auth]",
        );
        Deno.exit(0);
        break;
      default:
        throw new Error(`Unknown option ${flag}`);
    }
  }
  return opts;
}

// ---------------------------------------------------------------------------------------------
// Loading

const FHIR_JSON = "application/fhir+json";

async function postBundle(base: string, entries: Json[]): Promise<Json> {
  const res = await fetch(base, {
    method: "POST",
    headers: { "Content-Type": FHIR_JSON, Accept: FHIR_JSON, ...AUTH_HEADERS },
    body: JSON.stringify({ resourceType: "Bundle", type: "transaction", entry: entries }),
  });
  const text = await res.text();
  if (res.status !== 200) {
    throw new Error(`Transaction failed: ${res.status} ${text.slice(0, 2000)}`);
  }
  return JSON.parse(text);
}

function createEntry(resource: Json): Json {
  return { request: { method: "POST", url: resource.resourceType }, resource };
}

/** Runs `jobs` with at most `concurrency` in flight. */
async function pool<T>(jobs: Iterable<() => Promise<T>>, concurrency: number): Promise<void> {
  const it = jobs[Symbol.iterator]();
  const worker = async () => {
    for (let next = it.next(); !next.done; next = it.next()) await next.value();
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

interface LoadResult {
  patientIds: string[];
  counts: Record<string, number>;
  seconds: number;
}

async function load(base: string, total: number, opts: Options): Promise<LoadResult> {
  const patients = Math.max(1, Math.round(total / PER_PATIENT));
  const observations = Math.round((total * OBS_PER_PATIENT) / PER_PATIENT);
  const studies = Math.max(0, total - patients - observations);
  const counts = { Patient: patients, Observation: observations, ImagingStudy: studies };
  const rand = mulberry32(20240601);
  const patientIds: string[] = new Array(patients);
  let done = 0;
  const t0 = performance.now();
  let lastReport = t0;
  const progress = (n: number) => {
    done += n;
    const now = performance.now();
    if (now - lastReport > 10_000 || done === total) {
      lastReport = now;
      const rate = done / ((now - t0) / 1000);
      console.log(
        `  loaded ${done.toLocaleString("en")} / ${total.toLocaleString("en")} (${
          rate.toFixed(0)
        } resources/s)`,
      );
    }
  };

  // Patients first: their ids (assigned by the server) are what the others reference.
  function* patientJobs() {
    for (let start = 0; start < patients; start += opts.bundleSize) {
      const end = Math.min(patients, start + opts.bundleSize);
      const entries: Json[] = [];
      for (let i = start; i < end; i++) entries.push(createEntry(patient(rand, i)));
      yield async () => {
        const response = await postBundle(base, entries);
        const out = response.entry as { response: { location: string } }[];
        out.forEach((e, k) => (patientIds[start + k] = e.response.location.split("/")[1]));
        progress(entries.length);
      };
    }
  }
  await pool(patientJobs(), opts.loadConcurrency);

  // Then Observations and ImagingStudies, spread over the patients.
  function* clinicalJobs() {
    let obsLeft = observations;
    let studiesLeft = studies;
    let entries: Json[] = [];
    let p = 0;
    while (obsLeft > 0 || studiesLeft > 0) {
      const id = patientIds[p++ % patients];
      for (let k = 0; k < OBS_PER_PATIENT && obsLeft > 0; k++, obsLeft--) {
        entries.push(createEntry(observation(rand, id)));
      }
      for (let k = 0; k < STUDIES_PER_PATIENT && studiesLeft > 0; k++, studiesLeft--) {
        entries.push(createEntry(imagingStudy(rand, id)));
      }
      if (entries.length >= opts.bundleSize || (obsLeft === 0 && studiesLeft === 0)) {
        const batch = entries;
        entries = [];
        yield async () => {
          await postBundle(base, batch);
          progress(batch.length);
        };
      }
    }
  }
  await pool(clinicalJobs(), opts.loadConcurrency);
  return { patientIds, counts, seconds: (performance.now() - t0) / 1000 };
}

async function checkCounts(base: string, counts: Record<string, number>): Promise<boolean> {
  let ok = true;
  for (const [type, expected] of Object.entries(counts)) {
    const res = await fetch(`${base}/${type}?_summary=count`, {
      headers: { Accept: FHIR_JSON, ...AUTH_HEADERS },
    });
    const body = await res.json();
    const actual = body.total;
    const good = res.ok && actual === expected;
    ok &&= good;
    console.log(
      `  ${type}?_summary=count → ${actual} (expected ${expected}) ${good ? "ok" : "MISMATCH"}`,
    );
  }
  return ok;
}

// ---------------------------------------------------------------------------------------------
// Load generation

interface Scenario {
  name: string;
  method: "GET" | "POST";
  /** A new path (and body) for every request. */
  next(): { path: string; body?: string };
}

interface Measured {
  name: string;
  requests: number;
  rps: number;
  p50: number;
  p95: number;
  p99: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  connections: number;
  /** Host CPU idle % in the second before the scenario (other work on the machine skews results). */
  idleBefore?: number;
}

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

interface AutocannonResult {
  requests: { total: number };
  non2xx: number;
  errors: number;
  timeouts: number;
  duration: number;
}

async function measure(
  origin: string,
  scenario: Scenario,
  connections: number,
  seconds: number,
): Promise<Measured> {
  const latencies: number[] = [];
  const headers: Record<string, string> = { accept: FHIR_JSON, ...AUTH_HEADERS };
  if (scenario.method === "POST") headers["content-type"] = FHIR_JSON;
  const instance = autocannon({
    url: origin,
    connections,
    duration: seconds,
    timeout: 30,
    headers,
    requests: [{
      method: scenario.method,
      setupRequest: (req: Record<string, unknown>) => {
        const { path, body } = scenario.next();
        return body === undefined ? { ...req, path } : { ...req, path, body };
      },
    }],
  });
  instance.on(
    "response",
    (_client: unknown, _status: number, _bytes: number, responseTime: number) => {
      latencies.push(responseTime);
    },
  );
  const result: AutocannonResult = await instance;
  const sorted = Float64Array.from(latencies).sort();
  return {
    name: scenario.name,
    requests: result.requests.total,
    rps: result.requests.total / result.duration,
    p50: percentile(sorted, 0.5),
    p95: percentile(sorted, 0.95),
    p99: percentile(sorted, 0.99),
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    connections,
  };
}

function scenarios(basePath: string, patientIds: string[]): Scenario[] {
  const rand = Math.random;
  const id = () => patientIds[Math.floor(rand() * patientIds.length)];
  let created = 0;
  return [
    {
      name: "read Patient/{id}",
      method: "GET",
      next: () => ({ path: `${basePath}/Patient/${id()}` }),
    },
    {
      name: "search Patient?family",
      method: "GET",
      next: () => ({ path: `${basePath}/Patient?family=${pick(rand, FAMILY)}` }),
    },
    {
      name: "search Observation?subject&code",
      method: "GET",
      next: () => ({
        path: `${basePath}/Observation?subject=Patient/${id()}&code=${
          encodeURIComponent(`http://loinc.org|${pick(rand, LOINC)[0]}`)
        }`,
      }),
    },
    {
      name: "search ImagingStudy?patient&started",
      method: "GET",
      next: () => ({
        path: `${basePath}/ImagingStudy?patient=Patient/${id()}&started=ge${
          isoDate(T2015 + rand() * (T2025 - T2015))
        }`,
      }),
    },
    {
      name: "create Patient",
      method: "POST",
      next: () => ({
        path: `${basePath}/Patient`,
        body: JSON.stringify(patient(rand, 10_000_000 + created++)),
      }),
    },
  ];
}

// ---------------------------------------------------------------------------------------------
// Main

function fmt(n: number, digits = 1): string {
  return Number.isFinite(n) ? n.toFixed(digits) : "-";
}

async function main() {
  const opts = parseArgs(Deno.args);
  const where = new URL(opts.databaseUrl);
  console.log(`Machine: ${await machine()}`);
  console.log(`Database: ${opts.reuse ? "reusing" : "recreating"} fhir_bench on ${where.host}`);
  const db = opts.reuse
    ? await existingDatabase(opts.databaseUrl, "fhir_bench")
    : await recreateDatabase(opts.databaseUrl, "fhir_bench");
  const server = await startServer(
    db.url,
    opts.auth
      ? {
        AUTH: "on",
        // The bench logs in with the password grant (off by default).
        AUTH_PASSWORD_GRANT: "on",
        ADMIN_PASSWORD: BENCH_ADMIN_PASSWORD,
        ACCESS_TOKEN_SECONDS: "86400",
        // One user sends every request: no per-caller limit (the limiter's cost still counts).
        RATE_LIMIT_READ_PER_MINUTE: "100000000",
        RATE_LIMIT_WRITE_PER_MINUTE: "100000000",
      }
      : { AUTH: "off" },
  );
  console.log(`Server: ${server.base} (log: ${server.logFile}; AUTH=${opts.auth ? "on" : "off"})`);
  if (opts.auth) {
    const res = await fetch(`${new URL(server.base).origin}/auth/token`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "password",
        username: "admin",
        password: BENCH_ADMIN_PASSWORD,
        scope: "user/*.cruds",
      }),
    });
    const body = await res.json();
    if (!res.ok) throw new Error(`--auth: login failed: ${JSON.stringify(body)}`);
    AUTH_HEADERS.authorization = `Bearer ${body.access_token}`;
  }
  let failed = false;
  try {
    let loaded: LoadResult;
    if (!opts.reuse) {
      console.log(
        `Loading ${
          opts.resources.toLocaleString("en")
        } resources in transaction Bundles of ${opts.bundleSize}, ` +
          `${opts.loadConcurrency} in flight`,
      );
    }
    if (opts.reuse) {
      loaded = await loadedBefore(db.url);
      opts.resources = Object.values(loaded.counts).reduce((a, b) => a + b, 0);
      console.log(`  reusing ${opts.resources.toLocaleString("en")} resources loaded before`);
    } else {
      console.log(`  host ${(await waitForQuiet()).toFixed(0)}% idle before the load`);
      loaded = await load(server.base, opts.resources, opts);
      if (!(await checkCounts(server.base, loaded.counts))) failed = true;
    }
    const loadRate = opts.resources / loaded.seconds;
    if (!opts.reuse) {
      console.log(`Loaded in ${loaded.seconds.toFixed(1)} s: ${loadRate.toFixed(0)} resources/s`);
    }
    const size = await databaseSize(db.url);
    console.log(`Database size after load: ${size}`);

    const origin = new URL(server.base).origin;
    const basePath = new URL(server.base).pathname;
    const results: Measured[] = [];
    for (const connections of opts.connections) {
      for (const scenario of scenarios(basePath, loaded.patientIds)) {
        const idle = await waitForQuiet();
        if (opts.warmup > 0) await measure(origin, scenario, connections, opts.warmup);
        const m = await measure(origin, scenario, connections, opts.duration);
        m.idleBefore = idle;
        console.log(
          `  [${connections} conn, host ${idle.toFixed(0)}% idle before] ${m.name}: ${
            fmt(m.rps, 0)
          } req/s, ` +
            `p50 ${fmt(m.p50)} ms, p95 ${fmt(m.p95)} ms, p99 ${
              fmt(m.p99)
            } ms, non-2xx ${m.non2xx}, errors ${m.errors}`,
        );
        results.push(m);
      }
    }

    console.log("");
    console.log(`Machine: ${await machine()}`);
    console.log(
      `Database: ${db.version} (${where.host}), ${opts.resources.toLocaleString("en")} resources ` +
        `(${
          Object.entries(loaded.counts).map(([t, n]) => `${n.toLocaleString("en")} ${t}`).join(", ")
        }), ${size}`,
    );
    console.log(
      opts.reuse
        ? "Load: reused from an earlier run"
        : `Load: ${loadRate.toFixed(0)} resources/s (${
          loaded.seconds.toFixed(1)
        } s; transaction Bundles of ` +
          `${opts.bundleSize}, ${opts.loadConcurrency} in flight)`,
    );
    console.log(
      `Authentication: ${
        opts.auth ? "AUTH=on, an ES256 bearer token per request (admin, user/*.cruds)" : "AUTH=off"
      }`,
    );
    console.log(
      `Load generator: autocannon 8.0.0 in the bench process, ${opts.duration} s per scenario after ${opts.warmup} s warm-up`,
    );
    console.log("");
    console.log(
      "| Scenario | Conns | Requests/s | p50 ms | p95 ms | p99 ms | Non-2xx | Errors | Idle before |",
    );
    console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (const m of results) {
      console.log(
        `| ${m.name} | ${m.connections} | ${fmt(m.rps, 0)} | ${fmt(m.p50)} | ${fmt(m.p95)} | ${
          fmt(m.p99)
        } | ` +
          `${m.non2xx} | ${m.errors + m.timeouts} | ${fmt(m.idleBefore ?? NaN, 0)}% |`,
      );
      if (m.non2xx > 0 || m.errors > 0) failed = true;
    }
    const errors = (await Deno.readTextFile(server.logFile)).split("\n").filter((l) =>
      l.includes('"level":"error"')
    );
    if (errors.length) {
      failed = true;
      console.log(
        `\nThe server logged ${errors.length} errors; the first: ${errors[0].slice(0, 500)}`,
      );
    }
  } finally {
    await server.stop();
  }
  if (failed) Deno.exit(1);
}

if (import.meta.main) await main();
