/**
 * @module QIDO-RS with many studies stored: this service against Orthanc, same instances, same run.
 * A PACS or an EHR asks "the studies of this patient" (`/studies?PatientID=…`) all day long; the
 * answer must not grow with the archive.
 *
 *   deno run -A bench/qido_scale.ts [--studies 100000] [--patients 20000] [--queries 300]
 *     [--database-url …]
 *
 * Makes `--studies` small one-instance CT studies (4×4 pixels, so the archive's size is its index,
 * not its bytes) for `--patients` patients (study `i` belongs to patient `i mod patients`), each
 * with its own accession number and a date over ten years. For each server, started fresh (this
 * service on Postgres and a folder, or S3 when S3_* is set; Orthanc with SQLite in a temp folder):
 * stores them all (STOW-RS, 100 per request, 4 clients), then times `--queries` searches, one
 * client, in the same seeded order for both: by PatientID (each must find exactly that patient's
 * studies), by AccessionNumber (exactly one), and by PatientID with a StudyDate range. Reports the
 * median and the 95th percentile per kind and the ratio to Orthanc.
 */
import dcmjs from "dcmjs";
import { flagsOf, positive } from "./_args.ts";
import { multipart } from "./_ingest_bodies.ts";
import { machine, waitForQuiet } from "./_host.ts";
import { percentile, stowAll } from "./_ingest_measure.ts";
import { s3FromEnv, startOrthanc, startOurs, type Target } from "./_ingest_targets.ts";

const USAGE = "deno run -A bench/qido_scale.ts [--studies 100000] [--patients 20000] " +
  "[--queries 300] [--database-url …]";
const ROOT = "1.2.826.0.1.3680043.10.1071.7";
const CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2";
const EXPLICIT_LE = "1.2.840.10008.1.2.1";

function parseArgs(args: string[]) {
  const opts = {
    studies: 100_000,
    patients: 20_000,
    queries: 300,
    databaseUrl: Deno.env.get("DATABASE_URL") || "postgres://postgres@127.0.0.1:5432/postgres",
  };
  for (const [flag, value] of flagsOf(args)) {
    if (flag === "--studies" || flag === "--patients" || flag === "--queries") {
      opts[flag.slice(2) as "studies"] = positive(flag, value());
    } else if (flag === "--database-url") opts.databaseUrl = value();
    else if (flag === "--help" || flag === "-h") {
      console.log(USAGE);
      Deno.exit(0);
    } else throw new Error(`Unknown option ${flag}\n${USAGE}`);
  }
  if (opts.patients > opts.studies) throw new Error("--patients must not exceed --studies");
  return opts;
}

const patientId = (p: number) => `QS${String(p).padStart(6, "0")}`;
const accession = (i: number) => `A${String(i).padStart(8, "0")}`;
/** Study `i`'s date: spread over 2015–2024. */
function studyDate(i: number): string {
  const day = new Date(Date.UTC(2015, 0, 1) + ((i * 7919) % 3650) * 86_400_000);
  return day.toISOString().slice(0, 10).replaceAll("-", "");
}

/** Study `i` as one DICOM Part 10 instance. */
function instance(i: number, patients: number): Uint8Array {
  const p = i % patients;
  const dataset = {
    SOPClassUID: CT_IMAGE_STORAGE,
    SOPInstanceUID: `${ROOT}.${i}.1.1`,
    StudyInstanceUID: `${ROOT}.${i}`,
    SeriesInstanceUID: `${ROOT}.${i}.1`,
    PatientID: patientId(p),
    PatientName: `Scale^Patient${p}`,
    PatientBirthDate: "19600101",
    PatientSex: p % 2 ? "F" : "M",
    StudyDate: studyDate(i),
    StudyTime: "101500",
    AccessionNumber: accession(i),
    StudyID: String(i % 100_000),
    StudyDescription: "CT CHEST",
    Modality: "CT",
    SeriesNumber: 1,
    InstanceNumber: 1,
    Rows: 4,
    Columns: 4,
    BitsAllocated: 16,
    BitsStored: 16,
    HighBit: 15,
    PixelRepresentation: 1,
    SamplesPerPixel: 1,
    PhotometricInterpretation: "MONOCHROME2",
    RescaleIntercept: "-1024",
    RescaleSlope: "1",
    PixelData: new Int16Array(16).buffer,
    _vrMap: { PixelData: "OW" },
  };
  const meta = {
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: CT_IMAGE_STORAGE,
    MediaStorageSOPInstanceUID: dataset.SOPInstanceUID,
    TransferSyntaxUID: EXPLICIT_LE,
    ImplementationClassUID: `${ROOT}.0`,
  };
  const { DicomDict, DicomMetaDictionary } = dcmjs.data;
  const dict = new DicomDict(DicomMetaDictionary.denaturalizeDataset(meta));
  dict.dict = DicomMetaDictionary.denaturalizeDataset(dataset);
  return new Uint8Array(dict.write());
}

interface Query {
  kind: "PatientID" | "AccessionNumber" | "PatientID+StudyDate";
  path: string;
  expect: number;
}

/** The searches, seeded, the same for both servers; each with how many studies it must find. */
function queries(opts: ReturnType<typeof parseArgs>): Query[] {
  let seed = 12345;
  const next = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const ofPatient = (p: number) =>
    Array.from(
      { length: Math.ceil((opts.studies - p) / opts.patients) },
      (_, k) => p + k * opts.patients,
    );
  const out: Query[] = [];
  for (let q = 0; q < opts.queries; q++) {
    const p = next(opts.patients);
    const kind = q % 3;
    if (kind === 0) {
      out.push({
        kind: "PatientID",
        path: `/studies?PatientID=${patientId(p)}`,
        expect: ofPatient(p).length,
      });
    } else if (kind === 1) {
      const i = next(opts.studies);
      out.push({
        kind: "AccessionNumber",
        path: `/studies?AccessionNumber=${accession(i)}`,
        expect: 1,
      });
    } else {
      const expect = ofPatient(p).filter((i) => studyDate(i) >= "20200101").length;
      out.push({
        kind: "PatientID+StudyDate",
        path: `/studies?PatientID=${patientId(p)}&StudyDate=20200101-20241231`,
        expect,
      });
    }
  }
  return out;
}

type Timings = Map<Query["kind"], number[]>;

async function measure(
  start: () => Promise<Target>,
  bodies: ReturnType<typeof buildAll>,
  list: Query[],
): Promise<{ server: string; ingestSeconds: number; timings: Timings }> {
  const target = await start();
  try {
    const t0 = performance.now();
    const stow = await stowAll(target.dicomweb, bodies, 4);
    const ingestSeconds = (performance.now() - t0) / 1000;
    if (stow.stored !== bodies.instances) {
      throw new Error(`${target.name}: stored ${stow.stored} of ${bodies.instances}`);
    }
    console.log(
      `  ${target.name}: ${bodies.instances} studies stored in ${ingestSeconds.toFixed(0)} s`,
    );
    await waitForQuiet();
    const timings: Timings = new Map();
    for (const q of list) {
      const t = performance.now();
      const r = await fetch(`${target.dicomweb}${q.path}`, {
        headers: { Accept: "application/dicom+json" },
      });
      const text = await r.text();
      const ms = performance.now() - t;
      const found = r.status === 204 ? 0 : (JSON.parse(text) as unknown[]).length;
      if ((r.status !== 200 && r.status !== 204) || found !== q.expect) {
        throw new Error(
          `${target.name} ${q.path}: HTTP ${r.status}, ${found} studies, ${q.expect} expected`,
        );
      }
      if (!timings.has(q.kind)) timings.set(q.kind, []);
      timings.get(q.kind)!.push(ms);
    }
    return { server: target.name, ingestSeconds, timings };
  } finally {
    await target.stop();
  }
}

function buildAll(opts: ReturnType<typeof parseArgs>) {
  const boundary = "bench-qido-scale-3e9d1c7a5b2f4e8d9c0a1b2c";
  const bodies = [];
  let instanceBytes = 0;
  for (let i = 0; i < opts.studies; i += 100) {
    const parts = [];
    for (let k = i; k < Math.min(i + 100, opts.studies); k++) {
      parts.push(instance(k, opts.patients));
    }
    instanceBytes += parts.reduce((n, b) => n + b.length, 0);
    bodies.push({ bytes: multipart(parts, boundary), instances: parts.length });
  }
  return {
    contentType: `multipart/related; type="application/dicom"; boundary=${boundary}`,
    bodies,
    instances: opts.studies,
    instanceBytes,
    bodyBytes: bodies.reduce((n, b) => n + b.bytes.byteLength, 0),
    generateSeconds: 0,
  };
}

async function main() {
  const opts = parseArgs(Deno.args);
  console.log(`Machine: ${await machine()}`);
  console.log(`Generating ${opts.studies} one-instance studies of ${opts.patients} patients`);
  const bodies = buildAll(opts);
  const list = queries(opts);
  const ours = await measure(() => startOurs(opts.databaseUrl, s3FromEnv()), bodies, list);
  const orthanc = await measure(() => startOrthanc(), bodies, list);
  const sorted = (xs: number[]) => Float64Array.from(xs).sort();
  console.log("");
  console.log(`Machine: ${await machine()}`);
  console.log(
    `${opts.studies} studies of ${opts.patients} patients; ${opts.queries} QIDO-RS searches, one ` +
      `client, the same for both servers (ms)`,
  );
  console.log(
    "| Search | This service p50 | p95 | Orthanc p50 | p95 | Ratio (Orthanc p50 / ours) |",
  );
  console.log("| --- | ---: | ---: | ---: | ---: | ---: |");
  for (const kind of ours.timings.keys()) {
    const a = sorted(ours.timings.get(kind)!), b = sorted(orthanc.timings.get(kind)!);
    const f = (x: number) => x.toFixed(1);
    console.log(
      `| ${kind} | ${f(percentile(a, 0.5))} | ${f(percentile(a, 0.95))} | ${
        f(percentile(b, 0.5))
      } | ${f(percentile(b, 0.95))} | ${(percentile(b, 0.5) / percentile(a, 0.5)).toFixed(2)}× |`,
    );
  }
  console.log(
    `Ingest (STOW-RS, 100 per request, 4 clients): this service ${
      ours.ingestSeconds.toFixed(0)
    } s, Orthanc ${orthanc.ingestSeconds.toFixed(0)} s`,
  );
}

if (import.meta.main) await main();
