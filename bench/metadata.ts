/**
 * @module WADO-RS study metadata of a large study: this service against Orthanc, same instances,
 * same run. Viewers such as OHIF fetch `/studies/{uid}/metadata` before they show anything, so
 * this is where a slow archive is felt.
 *
 *   deno run -A bench/metadata.ts [--slices 3000] [--size 256] [--repeat 5] [--database-url …]
 *
 * For each server, started fresh (this service on Postgres and a folder, or S3 when S3_* is set;
 * Orthanc with SQLite in a temp folder): stores one synthetic CT study of `--slices` instances
 * (STOW-RS, 10 per request, 4 clients), then asks its study metadata once (the first answer after
 * the ingest) and `--repeat` times more (median), checking that the answer lists every instance.
 */
import { flagsOf, positive } from "./_args.ts";
import { buildBodies } from "./_ingest_bodies.ts";
import { machine, waitForQuiet } from "./_host.ts";
import { stowAll } from "./_ingest_measure.ts";
import { s3FromEnv, startOrthanc, startOurs, type Target } from "./_ingest_targets.ts";

const USAGE =
  "deno run -A bench/metadata.ts [--slices 3000] [--size 256] [--repeat 5] [--database-url …]";

function parseArgs(args: string[]) {
  const opts = {
    slices: 3000,
    size: 256,
    repeat: 5,
    databaseUrl: Deno.env.get("DATABASE_URL") || "postgres://postgres@127.0.0.1:5432/postgres",
  };
  for (const [flag, value] of flagsOf(args)) {
    if (flag === "--slices" || flag === "--size" || flag === "--repeat") {
      opts[flag.slice(2) as "slices"] = positive(flag, value());
    } else if (flag === "--database-url") opts.databaseUrl = value();
    else if (flag === "--help" || flag === "-h") {
      console.log(USAGE);
      Deno.exit(0);
    } else throw new Error(`Unknown option ${flag}\n${USAGE}`);
  }
  return opts;
}

interface Measured {
  server: string;
  firstMs: number;
  medianMs: number;
  mb: number;
  instances: number;
}

async function metadataOnce(dicomweb: string, uid: string) {
  const t0 = performance.now();
  const r = await fetch(`${dicomweb}/studies/${uid}/metadata`, {
    headers: { Accept: "application/dicom+json" },
  });
  const text = await r.text();
  const ms = performance.now() - t0;
  if (r.status !== 200) throw new Error(`metadata: HTTP ${r.status}: ${text.slice(0, 200)}`);
  return { ms, bytes: text.length, instances: (JSON.parse(text) as unknown[]).length };
}

async function measure(
  start: () => Promise<Target>,
  data: ReturnType<typeof buildBodies>,
  repeat: number,
): Promise<Measured> {
  const target = await start();
  try {
    const stow = await stowAll(target.dicomweb, data, 4);
    if (stow.stored !== data.instances) {
      throw new Error(`${target.name}: stored ${stow.stored} of ${data.instances}`);
    }
    const studies = await (await fetch(`${target.dicomweb}/studies`, {
      headers: { Accept: "application/dicom+json" },
    })).json() as Record<string, { Value: string[] }>[];
    const uid = studies[0]["0020000D"].Value[0];
    await waitForQuiet();
    const first = await metadataOnce(target.dicomweb, uid);
    const times: number[] = [];
    for (let i = 0; i < repeat; i++) times.push((await metadataOnce(target.dicomweb, uid)).ms);
    times.sort((a, b) => a - b);
    const result = {
      server: target.name,
      firstMs: first.ms,
      medianMs: times[Math.floor(times.length / 2)],
      mb: first.bytes / 1e6,
      instances: first.instances,
    };
    console.log(`  ${target.name}: ${JSON.stringify(result)}`);
    if (first.instances !== data.instances) {
      throw new Error(`${target.name}: metadata lists ${first.instances} of ${data.instances}`);
    }
    return result;
  } finally {
    await target.stop();
  }
}

async function main() {
  const opts = parseArgs(Deno.args);
  const s3 = s3FromEnv();
  console.log(`Machine: ${await machine()}`);
  console.log(`Generating one CT study of ${opts.slices} slices of ${opts.size}²`);
  const data = buildBodies({ studies: 1, slices: opts.slices, size: opts.size, batch: 10 });
  const ours = await measure(() => startOurs(opts.databaseUrl, s3), data, opts.repeat);
  const orthanc = await measure(() => startOrthanc(), data, opts.repeat);
  const fmt = (n: number) => n.toFixed(0);
  console.log("");
  console.log(`Machine: ${await machine()}`);
  console.log(
    `One study of ${opts.slices} instances; GET /studies/{uid}/metadata, first answer after the ` +
      `ingest and the median of ${opts.repeat} more`,
  );
  console.log("| Server | First ms | Median ms | MB | Instances |");
  console.log("| --- | ---: | ---: | ---: | ---: |");
  for (const m of [ours, orthanc]) {
    console.log(
      `| ${m.server} | ${fmt(m.firstMs)} | ${fmt(m.medianMs)} | ${
        m.mb.toFixed(1)
      } | ${m.instances} |`,
    );
  }
  console.log(
    `Median ratio (Orthanc time / ours): ${(orthanc.medianMs / ours.medianMs).toFixed(2)}×`,
  );
}

if (import.meta.main) await main();
