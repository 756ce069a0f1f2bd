/**
 * @module DIMSE C-STORE ingest: this service's listener against Orthanc's, same files, same
 * client (DCMTK's storescu, one association), one run.
 *
 *   deno run -A bench/dimse.ts [--slices 200] [--size 256] [--rounds 3] [--database-url …]
 *
 * Per round each server is started fresh (ours: `main.ts` on a recreated Postgres database with
 * its objects in a new S3 bucket when S3_* is set, else a temp folder; Orthanc: a temp state
 * folder), the host waits until ≥ 85% idle, then storescu sends the whole synthetic series in one
 * association; the time is storescu's wall time, and QIDO-RS must then count every instance.
 * The order alternates by round; medians and the ratio to Orthanc are printed.
 */
import { flagsOf, positive } from "./_args.ts";
import { machine, waitForQuiet } from "./_host.ts";
import { freePort } from "./_server.ts";
import { s3FromEnv, startOrthanc, startOurs, type Target } from "./_ingest_targets.ts";
import { generateStudy } from "../dicom/synth/ct.ts";

const o = { slices: 200, size: 256, rounds: 3, databaseUrl: "" };
for (const [flag, value] of flagsOf(Deno.args)) {
  if (flag === "--slices") o.slices = positive(flag, value());
  else if (flag === "--size") o.size = positive(flag, value());
  else if (flag === "--rounds") o.rounds = positive(flag, value());
  else if (flag === "--database-url") o.databaseUrl = value();
  else throw new Error(`unknown flag ${flag}`);
}
const adminUrl = o.databaseUrl || Deno.env.get("DATABASE_URL") ||
  "postgres://postgres@127.0.0.1:5432/postgres";

const study = generateStudy({
  seed: 9001,
  slices: o.slices,
  rows: o.size,
  cols: o.size,
  lesions: 0,
});
const dir = await Deno.makeTempDir({ prefix: "bench-dimse-" });
const files: string[] = [];
let bytes = 0;
for (const [i, b] of study.instances.entries()) {
  const f = `${dir}/${String(i).padStart(5, "0")}.dcm`;
  await Deno.writeFile(f, b);
  files.push(f);
  bytes += b.length;
}

async function count(t: Target): Promise<number> {
  const uid = study.plan.study.studyInstanceUid;
  const r = await fetch(`${t.dicomweb}/studies/${uid}/instances?limit=10000`);
  return r.ok ? (await r.json()).length : 0;
}

async function send(name: "ours" | "Orthanc"): Promise<number> {
  const port = freePort();
  const t = name === "ours"
    ? await startOurs(adminUrl, s3FromEnv(), {
      DIMSE_PORT: String(port),
      DIMSE_ALLOWED_PEERS: "*@127.0.0.1",
    })
    : await startOrthanc();
  try {
    await waitForQuiet();
    const started = performance.now();
    const out = await new Deno.Command("storescu", {
      args: [
        "-aec",
        name === "ours" ? "IMAGING_AI" : "ORTHANC",
        "127.0.0.1",
        String(name === "ours" ? port : t.dicomPort),
        ...files,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const seconds = (performance.now() - started) / 1000;
    if (!out.success) {
      throw new Error(`storescu to ${name}: ${new TextDecoder().decode(out.stderr)}`);
    }
    const n = await count(t);
    if (n !== files.length) throw new Error(`${name} holds ${n} of ${files.length} instances`);
    return seconds;
  } finally {
    await t.stop();
  }
}

const times: Record<"ours" | "Orthanc", number[]> = { ours: [], Orthanc: [] };
for (let r = 0; r < o.rounds; r++) {
  const order: ("ours" | "Orthanc")[] = r % 2 ? ["Orthanc", "ours"] : ["ours", "Orthanc"];
  for (const name of order) times[name].push(await send(name));
}
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
console.log(`\n${await machine()}`);
console.log(
  `C-STORE of ${files.length} CT instances (${o.size}², ${(bytes / 2 ** 20).toFixed(1)} MiB), ` +
    `one association, storescu; median of ${o.rounds}\n`,
);
console.log("| server | seconds (median) | instances/s | all runs (s) |");
console.log("| --- | --- | --- | --- |");
for (const name of ["ours", "Orthanc"] as const) {
  const m = median(times[name]);
  console.log(
    `| ${name} | ${m.toFixed(2)} | ${(files.length / m).toFixed(0)} | ${
      times[name].map((t) => t.toFixed(2)).join(", ")
    } |`,
  );
}
console.log(`\nours / Orthanc (time): ${(median(times.ours) / median(times.Orthanc)).toFixed(2)}×`);
await Deno.remove(dir, { recursive: true });
