/**
 * @module The one place environment variables are read: `loadConfig(env)` returns one frozen,
 * typed Config and reports every bad variable at once.
 */

export interface Config {
  /** HTTP port (PORT, default 8080). */
  port: number;
  /** Host to bind (HOST, default 0.0.0.0). */
  host: string;
  /** The public base URL of the FHIR API, used in Location, fullUrl and links (PUBLIC_URL + /fhir). */
  publicUrl: string;
  /** `postgres://…` to use a real Postgres (DATABASE_URL); empty: embedded PGlite. */
  databaseUrl: string;
  /** PGlite data folder (PGLITE_DIR, default ./data/pglite); `memory` keeps it in memory. */
  pgliteDir: string;
  /** Postgres pool size (DATABASE_POOL_SIZE, default 10). */
  databasePoolSize: number;
  /** Default and maximum page sizes for searches. */
  searchDefaultCount: number;
  searchMaxCount: number;
  /** Log level (LOG_LEVEL: debug, info, warn, error). */
  logLevel: "debug" | "info" | "warn" | "error";
  /** Where DICOM bytes live: S3 when S3_ENDPOINT is set, else the folder OBJECT_DIR. */
  objectStore: ObjectStoreConfig;
  dicom: DicomConfig;
  /** How often the change feed polls for committed versions (CHANGE_FEED_INTERVAL_MS, 250). */
  changeFeedIntervalMs: number;
}

export interface ObjectStoreConfig {
  /** `http(s)://host:port` of an S3-compatible server (S3_ENDPOINT); empty: the local folder. */
  s3Endpoint: string;
  /** Bucket (S3_BUCKET, default `imaging`); created at start when missing. */
  s3Bucket: string;
  /** Region for SigV4 (S3_REGION, default `us-east-1`). */
  s3Region: string;
  /** Credentials (S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY). */
  s3AccessKeyId: string;
  s3SecretAccessKey: string;
  /** Path-style addressing (S3_FORCE_PATH_STYLE, default true: what Ceph RGW and MinIO expect). */
  s3ForcePathStyle: boolean;
  /** The local folder for the embedded default (OBJECT_DIR, default ./data/objects). */
  folder: string;
}

export interface DicomConfig {
  /** Largest STOW-RS request body in bytes (DICOM_MAX_REQUEST_BYTES, default 4 GiB): 413 above. */
  maxRequestBytes: number;
  /** Largest single instance in bytes (DICOM_MAX_INSTANCE_BYTES, default 1 GiB). */
  maxInstanceBytes: number;
  /**
   * What a STOW of different bytes for a known SOPInstanceUID does (DICOM_DUPLICATE_POLICY):
   * `reject` (default: the part fails with reason 0x0111 Duplicate SOP Instance, the stored one stays) or
   * `replace` (the new bytes become the instance).
   */
  duplicatePolicy: "reject" | "replace";
  /** Seconds after its last instance that a study counts as stable (DICOM_STABLE_SECONDS, 5). */
  stableSeconds: number;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join("\n  - ")}`);
  }
}

type Env = Record<string, string | undefined>;

export function loadConfig(env: Env): Readonly<Config> {
  const problems: string[] = [];
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === "") return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) {
      problems.push(`${name}=${raw}: expected an integer from ${min} to ${max}`);
      return fallback;
    }
    return n;
  };
  const port = int("PORT", 8080, 0, 65535);
  const host = env.HOST || "0.0.0.0";
  const databaseUrl = env.DATABASE_URL ?? "";
  if (databaseUrl && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    problems.push(`DATABASE_URL: expected postgres://…, got ${databaseUrl.split("@").pop()}`);
  }
  let publicUrl = env.PUBLIC_URL || `http://localhost:${port}`;
  try {
    publicUrl = new URL(publicUrl).toString().replace(/\/$/, "");
  } catch {
    problems.push(`PUBLIC_URL=${env.PUBLIC_URL}: not a URL`);
  }
  const logLevel = (env.LOG_LEVEL || "info") as Config["logLevel"];
  if (!["debug", "info", "warn", "error"].includes(logLevel)) {
    problems.push(`LOG_LEVEL=${env.LOG_LEVEL}: expected debug, info, warn or error`);
  }
  const duplicatePolicy =
    (env.DICOM_DUPLICATE_POLICY || "reject") as DicomConfig["duplicatePolicy"];
  if (!["reject", "replace"].includes(duplicatePolicy)) {
    problems.push(
      `DICOM_DUPLICATE_POLICY=${env.DICOM_DUPLICATE_POLICY}: expected reject or replace`,
    );
  }
  const s3Endpoint = env.S3_ENDPOINT ?? "";
  if (s3Endpoint && !/^https?:\/\//.test(s3Endpoint)) {
    problems.push(`S3_ENDPOINT=${s3Endpoint}: expected http(s)://host:port`);
  }
  const bool = (name: string, fallback: boolean): boolean => {
    const raw = env[name];
    if (raw === undefined || raw === "") return fallback;
    if (/^(1|true|yes)$/i.test(raw)) return true;
    if (/^(0|false|no)$/i.test(raw)) return false;
    problems.push(`${name}=${raw}: expected true or false`);
    return fallback;
  };
  const config: Config = {
    port,
    host,
    publicUrl,
    databaseUrl,
    pgliteDir: env.PGLITE_DIR || "./data/pglite",
    databasePoolSize: int("DATABASE_POOL_SIZE", 10, 1, 1000),
    searchDefaultCount: int("SEARCH_DEFAULT_COUNT", 20, 1, 1000),
    searchMaxCount: int("SEARCH_MAX_COUNT", 1000, 1, 10000),
    logLevel,
    objectStore: {
      s3Endpoint,
      s3Bucket: env.S3_BUCKET || "imaging",
      s3Region: env.S3_REGION || "us-east-1",
      s3AccessKeyId: env.S3_ACCESS_KEY_ID ?? "",
      s3SecretAccessKey: env.S3_SECRET_ACCESS_KEY ?? "",
      s3ForcePathStyle: bool("S3_FORCE_PATH_STYLE", true),
      folder: env.OBJECT_DIR || "./data/objects",
    },
    changeFeedIntervalMs: int("CHANGE_FEED_INTERVAL_MS", 250, 10, 60_000),
    dicom: {
      maxRequestBytes: int("DICOM_MAX_REQUEST_BYTES", 4 * 2 ** 30, 1024, Number.MAX_SAFE_INTEGER),
      maxInstanceBytes: int("DICOM_MAX_INSTANCE_BYTES", 2 ** 30, 1024, 2 ** 31),
      duplicatePolicy,
      stableSeconds: int("DICOM_STABLE_SECONDS", 5, 0, 86400),
    },
  };
  if (problems.length) throw new ConfigError(problems);
  return Object.freeze(config);
}
