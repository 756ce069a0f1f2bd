/**
 * @module The two servers of the ingest benchmark, each started fresh for one measured run: this
 * service (a child process on a new database and a new bucket or folder) and Orthanc
 * (`scripts/orthanc/start.sh` in a new state folder on free ports).
 */
import {
  DeleteBucketCommand,
  DeleteObjectCommand,
  ListObjectsV2Command,
  S3Client,
} from "@aws-sdk/client-s3";
import { freePort, recreateDatabase, startServer } from "./_server.ts";

/** A started server: where to STOW and QIDO, its pid, and how to stop it and remove its data. */
export interface Target {
  name: string;
  /** DICOMweb base URL, without a trailing slash (STOW at `${dicomweb}/studies`). */
  dicomweb: string;
  /** Its DIMSE port, where it has one. */
  dicomPort?: number;
  pid: number;
  /** Where its log is (kept after `stop`). */
  logFile: string;
  /** Error lines the server logged so far (read before `stop`). */
  errors(): Promise<string[]>;
  /** Stops the server and removes what it stored. */
  stop(): Promise<void>;
}

/** Where our server keeps DICOM bytes in this run. */
export interface S3Env {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  forcePathStyle: string;
}

/** The real S3 named by the environment, or undefined for the local folder. */
export function s3FromEnv(): S3Env | undefined {
  const endpoint = Deno.env.get("S3_ENDPOINT");
  const accessKeyId = Deno.env.get("S3_ACCESS_KEY_ID");
  const secretAccessKey = Deno.env.get("S3_SECRET_ACCESS_KEY");
  if (!endpoint || !accessKeyId || !secretAccessKey) return undefined;
  return {
    endpoint,
    accessKeyId,
    secretAccessKey,
    region: Deno.env.get("S3_REGION") || "us-east-1",
    forcePathStyle: Deno.env.get("S3_FORCE_PATH_STYLE") || "true",
  };
}

export const BENCH_DATABASE = "fhir_bench_ingest";

/** This service on a recreated `fhir_bench_ingest` and a new bucket `bench-ingest-<random>` or folder. */
export async function startOurs(
  adminUrl: string,
  s3: S3Env | undefined,
  extraEnv: Record<string, string> = {},
): Promise<Target> {
  const db = await recreateDatabase(adminUrl, BENCH_DATABASE);
  const env: Record<string, string> = { ...extraEnv };
  let folder: string | undefined;
  let bucket: string | undefined;
  if (s3) {
    bucket = `bench-ingest-${crypto.randomUUID().slice(0, 8)}`;
    Object.assign(env, {
      S3_ENDPOINT: s3.endpoint,
      S3_ACCESS_KEY_ID: s3.accessKeyId,
      S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
      S3_REGION: s3.region,
      S3_FORCE_PATH_STYLE: s3.forcePathStyle,
      S3_BUCKET: bucket,
    });
  } else {
    folder = await Deno.makeTempDir({ prefix: "bench-ingest-objects-" });
    // An S3_ENDPOINT the parent has would be inherited by the child and win over OBJECT_DIR.
    Object.assign(env, { OBJECT_DIR: folder, S3_ENDPOINT: "" });
  }
  let server;
  try {
    server = await startServer(db.url, env);
  } catch (e) {
    if (folder) await Deno.remove(folder, { recursive: true }).catch(() => {});
    throw e;
  }
  const origin = new URL(server.base).origin;
  return {
    name: "this service",
    dicomweb: `${origin}/dicomweb`,
    pid: server.pid,
    logFile: server.logFile,
    async errors() {
      const text = await Deno.readTextFile(server.logFile).catch(() => "");
      return text.split("\n").filter((l) => l.includes('"level":"error"'));
    },
    async stop() {
      await server.stop();
      if (folder) await Deno.remove(folder, { recursive: true }).catch(() => {});
      if (s3 && bucket) await removeBucket(s3, bucket);
    },
  };
}

/** Empties and deletes a bucket (one DELETE per object: no multi-object delete checksums). */
async function removeBucket(s3: S3Env, Bucket: string): Promise<void> {
  const client = new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: !/^(0|false|no)$/i.test(s3.forcePathStyle),
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
  try {
    let token: string | undefined;
    do {
      const page = await client.send(
        new ListObjectsV2Command({ Bucket, ContinuationToken: token }),
      );
      const keys = (page.Contents ?? []).map((o) => o.Key!).filter(Boolean);
      for (let i = 0; i < keys.length; i += 16) {
        await Promise.all(
          keys.slice(i, i + 16).map((Key) => client.send(new DeleteObjectCommand({ Bucket, Key }))),
        );
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    await client.send(new DeleteBucketCommand({ Bucket }));
  } catch (e) {
    console.log(`  (could not remove the bucket ${Bucket}: ${e})`);
  } finally {
    client.destroy();
  }
}

const ORTHANC_SCRIPTS = new URL("../scripts/orthanc/", import.meta.url);

/** Orthanc in a new temp state folder on free HTTP and DICOM ports. */
export async function startOrthanc(): Promise<Target & { version: string }> {
  const state = await Deno.makeTempDir({ prefix: "bench-ingest-orthanc-" });
  const env = {
    ORTHANC_STATE_DIR: state,
    ORTHANC_HTTP_PORT: String(freePort()),
    ORTHANC_DICOM_PORT: String(freePort()),
  };
  const script = (name: string) =>
    new Deno.Command("bash", { args: [new URL(name, ORTHANC_SCRIPTS).pathname], env }).output();
  const stop = async () => {
    await script("stop.sh");
    await Deno.remove(state, { recursive: true }).catch(() => {});
  };
  const out = await script("start.sh");
  const text = new TextDecoder().decode(out.stdout);
  const vars: Record<string, string> = {};
  for (const m of text.matchAll(/^export (\w+)=(.*)$/gm)) vars[m[1]] = m[2];
  if (!out.success || !vars.ORTHANC_DICOMWEB || !vars.ORTHANC_PID) {
    const err = new TextDecoder().decode(out.stderr);
    await stop();
    throw new Error(`Orthanc did not start (${out.code}):\n${text}${err}`);
  }
  // The log lives in the state folder, which stop() removes: keep a copy.
  const logFile = await Deno.makeTempFile({ prefix: "bench-ingest-orthanc-", suffix: ".log" });
  const system = await (await fetch(`${vars.ORTHANC_URL}/system`)).json();
  const plugin: { Version?: string } = await fetch(`${vars.ORTHANC_URL}/plugins/dicom-web`).then((
    r,
  ) => r.ok ? r.json() : {}).catch(() => ({}));
  return {
    name: "Orthanc",
    version: `Orthanc ${system.Version}, DICOMweb plugin ${plugin.Version ?? "?"}`,
    dicomweb: vars.ORTHANC_DICOMWEB.replace(/\/+$/, ""),
    dicomPort: Number(env.ORTHANC_DICOM_PORT),
    pid: Number(vars.ORTHANC_PID),
    logFile,
    async errors() {
      // Orthanc's glog lines start with E (error) or W (warning) and the date.
      const text = await Deno.readTextFile(`${state}/log`).catch(() => "");
      return text.split("\n").filter((l) => /^E\d{4} /.test(l));
    },
    async stop() {
      await Deno.copyFile(`${state}/log`, logFile).catch(() => {});
      await stop();
    },
  };
}
