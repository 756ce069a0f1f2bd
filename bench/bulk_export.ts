/**
 * @module FHIR Bulk Data `$export` benchmark.
 *
 *   deno run -A bench/bulk_export.ts [--resources 100000] [--database-url postgres://…]
 *     [--bundle-size 500] [--load-concurrency 2] [--file-resources 10000]
 *     [--pglite-dir DIR] [--reuse]
 *
 * 1. Starts the service in this process (AUTH off) on a free port: PGlite in a fresh folder (the
 *    embedded default), or with `--database-url` the database `bulk_bench`, dropped and created on
 *    that Postgres server; objects in a fresh folder. `--pglite-dir` keeps PGlite's folder, and
 *    `--reuse` exports what an earlier run loaded there (or into `bulk_bench`) without loading.
 * 2. Loads synthetic Patients, Observations and ImagingStudies (1 : 7 : 2, bench/_synthetic.ts)
 *    through the FHIR API in transaction Bundles (PUT with our ids: validation, versions and index
 *    rows as for any write), and times it.
 * 3. Runs a system-level export with the spec's flow: kick-off (`Prefer: respond-async`), polling
 *    the status URL as `Retry-After` says, then every file of the manifest downloaded with the
 *    token, its lines counted against the manifest. Prints resources, files, bytes, seconds,
 *    resources/s and MiB/s end to end, the server-side time (kick-off to manifest) and the peak RSS.
 */
import { flagsOf, positive } from "./_args.ts";
import { machine } from "./_host.ts";
import { existingDatabase, recreateDatabase } from "./_server.ts";
import {
  imagingStudy,
  type Json,
  mulberry32,
  OBS_PER_PATIENT,
  observation,
  patient,
  PER_PATIENT,
  STUDIES_PER_PATIENT,
} from "./_synthetic.ts";
import { createApp } from "../app.ts";
import { loadConfig } from "../platform/config.ts";
import { createServices } from "../services.ts";
import { findExport } from "../fhir/bulk/export_repo.ts";

interface Options {
  resources: number;
  databaseUrl: string;
  bundleSize: number;
  loadConcurrency: number;
  fileResources: number;
  pgliteDir: string;
  reuse: boolean;
}

function options(args: string[]): Options {
  const o: Options = {
    resources: 100_000,
    databaseUrl: "",
    bundleSize: 500,
    loadConcurrency: 2,
    fileResources: 10_000,
    pgliteDir: "",
    reuse: false,
  };
  for (const [flag, value] of flagsOf(args)) {
    if (flag === "--resources") o.resources = positive(flag, value());
    else if (flag === "--database-url") o.databaseUrl = value();
    else if (flag === "--bundle-size") o.bundleSize = positive(flag, value());
    else if (flag === "--load-concurrency") o.loadConcurrency = positive(flag, value());
    else if (flag === "--file-resources") o.fileResources = positive(flag, value());
    else if (flag === "--pglite-dir") o.pgliteDir = value();
    else if (flag === "--reuse") o.reuse = true;
    else throw new Error(`unknown flag ${flag}`);
  }
  return o;
}

/** Runs the jobs `concurrency` at a time. */
async function pool(jobs: Iterable<() => Promise<void>>, concurrency: number): Promise<void> {
  const it = jobs[Symbol.iterator]();
  const worker = async () => {
    for (let next = it.next(); !next.done; next = it.next()) await next.value();
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

/** The resources to load, as transaction Bundles of `size` PUT entries. */
function* bundles(total: number, size: number): Generator<Json[]> {
  const rand = mulberry32(20261207);
  const patients = Math.max(1, Math.round(total / PER_PATIENT));
  let entries: Json[] = [];
  let made = 0;
  const add = (resource: Json, id: string) => {
    resource.id = id;
    entries.push({ resource, request: { method: "PUT", url: `${resource.resourceType}/${id}` } });
    made++;
  };
  // Patients first (each Bundle's references then point at stored Patients).
  for (let p = 0; p < patients && made < total; p++) {
    add(patient(rand, p), `bp${p}`);
    if (entries.length >= size) yield entries, entries = [];
  }
  for (let p = 0; made < total; p = (p + 1) % patients) {
    for (let k = 0; k < OBS_PER_PATIENT && made < total; k++) {
      add(observation(rand, `bp${p}`), `bo${made}`);
    }
    for (let k = 0; k < STUDIES_PER_PATIENT && made < total; k++) {
      add(imagingStudy(rand, `bp${p}`), `bs${made}`);
    }
    if (entries.length >= size) yield entries, entries = [];
  }
  if (entries.length) yield entries;
}

async function load(base: string, o: Options): Promise<number> {
  const t0 = performance.now();
  let done = 0;
  let reported = t0;
  function* jobs() {
    for (const entry of bundles(o.resources, o.bundleSize)) {
      yield async () => {
        const res = await fetch(base, {
          method: "POST",
          headers: { "Content-Type": "application/fhir+json", Prefer: "return=minimal" },
          body: JSON.stringify({ resourceType: "Bundle", type: "transaction", entry }),
        });
        const text = await res.text();
        if (res.status !== 200) throw new Error(`load: ${res.status} ${text.slice(0, 300)}`);
        done += entry.length;
        if (performance.now() - reported > 10_000) {
          reported = performance.now();
          const rate = done / ((reported - t0) / 1000);
          console.log(`  loaded ${done} / ${o.resources} (${rate.toFixed(0)} resources/s)`);
        }
      };
    }
  }
  await pool(jobs(), o.loadConcurrency);
  return (performance.now() - t0) / 1000;
}

interface ExportResult {
  id: string;
  resources: number;
  files: number;
  bytes: number;
  seconds: number;
  serverSeconds: number;
  polls: number;
}

/** The spec's flow: kick-off, poll as Retry-After says, download every file. */
async function exportAll(base: string): Promise<ExportResult> {
  const t0 = performance.now();
  const kick = await fetch(`${base}/$export`, {
    headers: { Accept: "application/fhir+json", Prefer: "respond-async" },
  });
  await kick.body?.cancel();
  if (kick.status !== 202) throw new Error(`kick-off: ${kick.status}`);
  const status = kick.headers.get("content-location")!;
  let polls = 0;
  let manifest: { output: { url: string; count: number; type: string }[] } | undefined;
  while (!manifest) {
    const res = await fetch(status);
    polls++;
    if (res.status === 202) {
      await res.body?.cancel();
      const wait = Number(res.headers.get("retry-after") ?? "1");
      await new Promise((r) => setTimeout(r, wait * 1000));
    } else if (res.status === 200) manifest = await res.json();
    else throw new Error(`status: ${res.status} ${await res.text()}`);
  }
  const serverSeconds = (performance.now() - t0) / 1000;
  let bytes = 0;
  let resources = 0;
  for (const file of manifest.output) {
    const res = await fetch(file.url, { headers: { Accept: "application/fhir+ndjson" } });
    if (res.status !== 200) throw new Error(`${file.url}: ${res.status}`);
    let lines = 0;
    for await (const chunk of res.body!) {
      bytes += chunk.length;
      for (const b of chunk) if (b === 10) lines++;
    }
    if (lines !== file.count) {
      throw new Error(`${file.url}: ${lines} lines, manifest ${file.count}`);
    }
    resources += lines;
  }
  return {
    id: status.split("/").pop()!,
    resources,
    files: manifest.output.length,
    bytes,
    seconds: (performance.now() - t0) / 1000,
    serverSeconds,
    polls,
  };
}

async function main() {
  const o = options(Deno.args);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const pgliteDir = o.pgliteDir || await Deno.makeTempDir({ prefix: "bulk-bench-pglite-" });
  const objects = await Deno.makeTempDir({ prefix: "bulk-bench-objects-" });
  let database = `PGlite (folder ${pgliteDir})`;
  let databaseUrl = "";
  if (o.databaseUrl) {
    const db = o.reuse
      ? await existingDatabase(o.databaseUrl, "bulk_bench")
      : await recreateDatabase(o.databaseUrl, "bulk_bench");
    databaseUrl = db.url;
    database = db.version;
  }
  const services = await createServices(loadConfig({
    PORT: String(port),
    PUBLIC_URL: `http://127.0.0.1:${port}`,
    DATABASE_URL: databaseUrl,
    PGLITE_DIR: pgliteDir,
    OBJECT_DIR: objects,
    AUTH: "off",
    LOG_LEVEL: "warn",
    ACCESS_LOG: "off",
    AUDIT: "off",
    INFERENCE_WORKER: "off",
    BULK_EXPORT_FILE_RESOURCES: String(o.fileResources),
  }));
  const app = createApp(services);
  const server = Deno.serve({ port, hostname: "127.0.0.1", onListen: () => {} }, app.fetch);
  const base = `http://127.0.0.1:${port}/fhir`;
  try {
    console.log(`machine: ${await machine()}`);
    console.log(`database: ${database}; objects: folder ${objects}`);
    console.log(
      o.reuse
        ? "reusing what an earlier run loaded"
        : `loading ${o.resources} resources (Bundles of ${o.bundleSize}, ${o.loadConcurrency} at once)`,
    );
    if (!o.reuse) {
      const loadSeconds = await load(base, o);
      console.log(
        `load: ${loadSeconds.toFixed(1)} s (${(o.resources / loadSeconds).toFixed(0)} resources/s)`,
      );
    }
    let peak = Deno.memoryUsage().rss;
    const sampler = setInterval(() => peak = Math.max(peak, Deno.memoryUsage().rss), 100);
    const rssBefore = Deno.memoryUsage().rss;
    const r = await exportAll(base);
    clearInterval(sampler);
    const job = (await findExport(services.db, r.id))!;
    const jobSeconds = (Date.parse(job.finishedAt!) - Date.parse(job.createdAt)) / 1000;
    const mib = r.bytes / 2 ** 20;
    console.log("\n| resources | files | bytes | seconds | resources/s | MiB/s |");
    console.log("| --: | --: | --: | --: | --: | --: |");
    console.log(
      `| ${r.resources} | ${r.files} | ${r.bytes} (${mib.toFixed(1)} MiB) | ${
        r.seconds.toFixed(2)
      } | ${(r.resources / r.seconds).toFixed(0)} | ${(mib / r.seconds).toFixed(1)} |`,
    );
    console.log(
      `\nthe job (kick-off to completed, server side) ${jobSeconds.toFixed(2)} s; ` +
        `kick-off to manifest ${r.serverSeconds.toFixed(2)} s (${r.polls} polls at Retry-After), ` +
        `downloads ${(r.seconds - r.serverSeconds).toFixed(2)} s; RSS ${
          (rssBefore / 2 ** 20).toFixed(0)
        } MiB before, peak ${(peak / 2 ** 20).toFixed(0)} MiB`,
    );
    if (r.resources < o.resources) throw new Error(`exported ${r.resources} < ${o.resources}`);
  } finally {
    await server.shutdown();
    await services.close();
    if (!o.pgliteDir) await Deno.remove(pgliteDir, { recursive: true }).catch(() => {});
    await Deno.remove(objects, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) await main();
