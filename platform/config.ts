/**
 * @module The one place environment variables are read: `loadConfig(env)` returns one frozen,
 * typed Config and reports every bad variable at once.
 */
import { parseProxyRanges, type ProxyRange } from "./client_address.ts";
import { type EndpointPattern, parseEndpointPatterns } from "./endpoint_patterns.ts";
import { type DicomDestination, parseDestinations } from "./dicom_destinations.ts";
import { type DimseConfig, parseDimse } from "./dimse_config.ts";

export type { DimseConfig };

export interface Config {
  /** HTTP port (PORT, default 8080). */
  port: number;
  /** Host to bind (HOST, default 0.0.0.0). */
  host: string;
  /** The public base URL of the FHIR API, used in Location, fullUrl and links (PUBLIC_URL + /fhir). */
  publicUrl: string;
  /** `postgres://…` to use a real Postgres (DATABASE_URL); empty: embedded PGlite. */
  databaseUrl: string;
  /**
   * `postgres://…` of a read replica (DATABASE_READ_URL): FHIR searches run there; reads by id,
   * histories and writes stay on DATABASE_URL. Empty: everything on DATABASE_URL.
   */
  databaseReadUrl: string;
  /** PGlite data folder (PGLITE_DIR, default ./data/pglite); `memory` keeps it in memory. */
  pgliteDir: string;
  /** Postgres pool size (DATABASE_POOL_SIZE, default 10). */
  databasePoolSize: number;
  /**
   * Prepared statements on Postgres (DATABASE_PREPARE on/off, default on): each statement is
   * parsed once per connection, and a query is one round trip instead of two (each run is still
   * planned for its parameters). Off behind a pooler that cannot keep them (PgBouncer in
   * transaction mode before 1.21).
   */
  databasePrepare: boolean;
  /** Default and maximum page sizes for searches. */
  searchDefaultCount: number;
  searchMaxCount: number;
  /**
   * Largest FHIR request body in bytes (FHIR_MAX_BODY_BYTES, default 32 MiB: a transaction Bundle
   * of a few thousand resources): 413 above, refused before it is read when Content-Length says
   * so, cut off as soon as it passes the limit otherwise.
   */
  fhirMaxBodyBytes: number;
  /** Log level (LOG_LEVEL: debug, info, warn, error). */
  logLevel: "debug" | "info" | "warn" | "error";
  /**
   * On SIGTERM/SIGINT: how long in-flight requests may take to finish before the pools are closed
   * and the process exits 0 anyway (SHUTDOWN_GRACE_SECONDS, default 25: within Kubernetes' 30).
   */
  shutdownGraceSeconds: number;
  /** One JSON line per request (ACCESS_LOG on/off, default on): id, caller, route, status, ms. */
  accessLog: boolean;
  /** Where DICOM bytes live: S3 when S3_ENDPOINT is set, else the folder OBJECT_DIR. */
  objectStore: ObjectStoreConfig;
  dicom: DicomConfig;
  /** Where stored DICOM objects are sent (DICOM_DESTINATIONS), and how deliveries are retried. */
  forwarding: ForwardingConfig;
  /** The DIMSE listener (DIMSE_PORT; off when unset). */
  dimse: DimseConfig;
  /** How often the change feed polls for committed versions (CHANGE_FEED_INTERVAL_MS, 250). */
  changeFeedIntervalMs: number;
  /** FHIR Bulk Data `$export` (fhir/bulk/). */
  bulkExport: {
    /** How long a finished export and its files are kept (BULK_EXPORT_RETENTION_HOURS, 24). */
    retentionHours: number;
    /** Resources per NDJSON file at most (BULK_EXPORT_FILE_RESOURCES, default 10000). */
    fileResources: number;
  };
  /** ORGANIZATION_NAME, ORGANIZATION_ID (default the name): the AI results' FHIR Organization. */
  organization: { name: string; identifier: string };
  /**
   * Where Subscriptions may send notifications (SUBSCRIPTION_ENDPOINTS, comma-separated): URL
   * prefixes (`https://ehr.example.org/fhir/`: that origin, that path or below it at a `/`) and
   * host patterns (`ehr.hospital.org`, `*.hospital.org`, `host:port`; http or https). A create or
   * update of a requested or active Subscription to another endpoint is refused (400), and
   * deliveries to one are failed, not sent. Empty (the default): any http(s) endpoint.
   */
  subscriptionEndpoints: EndpointPattern[];
  /**
   * Whether the server's own requests (Subscription notifications, clients' `jwks_uri`) may go to
   * loopback, private, link-local and metadata addresses (OUTBOUND_PRIVATE_ADDRESSES: `refuse`,
   * the default, or `allow`). An endpoint that SUBSCRIPTION_ENDPOINTS names is allowed either way.
   */
  outboundPrivateAddresses: "refuse" | "allow";
  inference: InferenceConfig;
  auth: AuthConfig;
  /** Write an AuditEvent for every access, login and failed login (AUDIT: on, the default, or off). */
  auditEnabled: boolean;
  /**
   * Requests per minute per caller and route class (RATE_LIMIT_READ_PER_MINUTE 6000,
   * RATE_LIMIT_WRITE_PER_MINUTE 1200, RATE_LIMIT_UPLOAD_PER_MINUTE 600; 0: unlimited), counted
   * in Redis when REDIS_URL is set. The service's own worker is not limited.
   */
  rateLimits: { read: number; write: number; upload: number };
  /** A static bearer token that may read /metrics (METRICS_TOKEN; empty: admins only). */
  metricsToken: string;
}

export interface AuthConfig {
  /**
   * Authentication and SMART scopes on every non-public route (AUTH: `on`, the default, or `off`
   * for local development only: every caller is then treated as a full-access system client).
   */
  enabled: boolean;
  /** The token issuer (AUTH_ISSUER, default PUBLIC_URL + /auth); tokens' `aud` is the FHIR base. */
  issuer: string;
  /** Access-token lifetime (ACCESS_TOKEN_SECONDS, default 900). */
  accessTokenSeconds: number;
  /** Refresh-token lifetime, rotated on each use (REFRESH_TOKEN_SECONDS, default 43200). */
  refreshTokenSeconds: number;
  /** grant_type=password at /auth/token (AUTH_PASSWORD_GRANT, default off: scripts, tests). */
  passwordGrant: boolean;
  /** How long a browser stays signed in at `/auth/authorize` (AUTH_SESSION_SECONDS, 28800). */
  sessionSeconds: number;
  /** The first admin, created at start when no admin exists (ADMIN_USERNAME, ADMIN_PASSWORD). */
  adminUsername: string;
  adminPassword: string;
  /** Failed logins before an account is locked for LOGIN_LOCK_SECONDS (LOGIN_MAX_FAILURES, 5). */
  loginMaxFailures: number;
  loginLockSeconds: number;
  /** Login attempts per client address per minute (LOGIN_RATE_PER_MINUTE, default 20). */
  loginRatePerMinute: number;
  /** PBKDF2-SHA256 iterations for new password hashes (PASSWORD_ITERATIONS, ≥ 600000). */
  passwordIterations: number;
  /**
   * Browser origins allowed to call the API cross-origin (CORS_ORIGINS: comma-separated exact
   * origins such as `https://viewer.example.org`, or `*`; empty, the default: none).
   */
  corsOrigins: string[];
  /**
   * Proxies whose `X-Forwarded-For` is believed (TRUSTED_PROXIES: comma-separated addresses and
   * CIDR blocks, e.g. `10.0.0.0/8,::1`): behind them, login limits and the audit trail see the
   * client's address. Empty (the default): the peer's address, the header ignored.
   */
  trustedProxies: ProxyRange[];
}

export interface InferenceConfig {
  /** `redis://…` for the Redis Streams queue (REDIS_URL); empty: the in-process queue. */
  redisUrl: string;
  /**
   * The first part of every Redis key this service makes (REDIS_KEY_PREFIX, default `imaging`):
   * the queue is `<prefix>:jobs:stat`, `:routine`, `:delayed`, `:dead`. The API and its sidecars
   * must agree; deployments with different prefixes share one Redis without seeing each other's
   * jobs. Segments of letters, digits, `_ - . { }` separated by `:` (`{…}` for a Cluster hash tag).
   */
  redisKeyPrefix: string;
  /** Folder of installed models, one sub-folder each (MODELS_DIR, default sidecar/models). */
  modelsDir: string;
  /** A delivery not acked or extended for this long goes to another sidecar (JOB_VISIBILITY_MS, 60000). */
  visibilityMs: number;
  /** Deliveries before a failing job is dead-lettered (JOB_MAX_ATTEMPTS, 3). */
  maxAttempts: number;
  /** Retry backoff base and cap (JOB_BACKOFF_BASE_MS 2000, JOB_BACKOFF_MAX_MS 60000). */
  backoffBaseMs: number;
  backoffMaxMs: number;
  /**
   * Run the worker inside the API process (INFERENCE_WORKER: `auto` = only with the in-process
   * queue, `on`, `off`). With Redis, sidecars run as their own processes (`deno task sidecar`).
   */
  inProcessWorker: "auto" | "on" | "off";
  /** Execution providers in order of preference (INFERENCE_PROVIDERS, default cuda,webgpu,cpu). */
  providers: string[];
  /**
   * ONNX Runtime intra-op threads per model session (INFERENCE_THREADS, default 0: one per core).
   * With several sidecars on one host, cores ÷ sidecars keeps them from oversubscribing the CPU.
   */
  threads: number;
  /** The API the sidecar calls (SIDECAR_API_URL, default PUBLIC_URL). */
  apiUrl: string;
  /** A fixed Bearer token for the sidecar (SIDECAR_TOKEN); prefer the client credentials below. */
  token: string;
  /**
   * The sidecar as a SMART Backend Services client (SIDECAR_CLIENT_ID, SIDECAR_PRIVATE_KEY: its
   * private JWK as JSON, or `@/path/to/key.json`): it asks `/auth/token` for short-lived tokens
   * with a signed assertion. Register the client (its public JWK) with `PUT /auth/clients/{id}`.
   */
  clientId: string;
  privateKey: string;
  /** The sidecar's health port (SIDECAR_PORT, default 8090). */
  sidecarPort: number;
  /** Rules that start an analysis when a study becomes stable (ANALYSIS_RULES, JSON array). */
  rules: AnalysisRule[];
}

export interface AnalysisRule {
  /** Modality in the study (e.g. CT); absent: any. */
  modality?: string;
  /** Body Part Examined of a series (e.g. CHEST); absent: any. */
  bodyPart?: string;
  model: string;
  profile?: "fast" | "standard" | "research";
  threshold?: number;
  priority?: "routine" | "stat";
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
  /**
   * Seconds an S3 request may wait on a server that sends nothing (S3_TIMEOUT_SECONDS, default
   * 30): past it the request fails and the API answers 503 rather than holding the client.
   */
  s3TimeoutSeconds: number;
  /**
   * Every this many hours one replica removes DICOM objects no instance row points at, older than
   * an hour (OBJECT_SWEEP_HOURS, default 24; 0: never). Only a process that died mid-upload leaves
   * such objects.
   */
  sweepHours: number;
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
  /**
   * The longest a study's ImagingStudy trails its DICOM index while instances arrive, in ms
   * (IMAGINGSTUDY_SYNC_MS, default 1000): batches are coalesced into one rebuild per interval.
   */
  imagingStudySyncMs: number;
  stableSeconds: number;
}

export interface ForwardingConfig {
  destinations: DicomDestination[];
  /** Attempts before a delivery is dead-lettered (DICOM_FORWARD_MAX_ATTEMPTS, default 10). */
  maxAttempts: number;
  /**
   * Delay after the first failure in ms (DICOM_FORWARD_BACKOFF_BASE_MS, default 5000), doubled
   * after each further one up to DICOM_FORWARD_BACKOFF_MAX_MS (default 15 minutes).
   */
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** How long one STOW-RS to a destination may take (DICOM_FORWARD_TIMEOUT_SECONDS, 120). */
  timeoutMs: number;
  /** Deliveries in flight at once per process (DICOM_FORWARD_CONCURRENCY, default 4). */
  concurrency: number;
  /** How often to look for deliveries other replicas queued or that fell due, in ms. */
  pollMs: number;
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
  const databaseReadUrl = env.DATABASE_READ_URL ?? "";
  if (databaseReadUrl && !/^postgres(ql)?:\/\//.test(databaseReadUrl)) {
    problems.push(
      `DATABASE_READ_URL: expected postgres://…, got ${databaseReadUrl.split("@").pop()}`,
    );
  } else if (databaseReadUrl && !databaseUrl) {
    problems.push("DATABASE_READ_URL: a read replica needs DATABASE_URL (its primary) too");
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
    if (/^(1|true|yes|on)$/i.test(raw)) return true;
    if (/^(0|false|no|off)$/i.test(raw)) return false;
    problems.push(`${name}=${raw}: expected on or off (true or false)`);
    return fallback;
  };
  const workerMode = (env.INFERENCE_WORKER || "auto") as InferenceConfig["inProcessWorker"];
  if (!["auto", "on", "off"].includes(workerMode)) {
    problems.push(`INFERENCE_WORKER=${env.INFERENCE_WORKER}: expected auto, on or off`);
  }
  if (env.REDIS_URL && !/^rediss?:\/\//.test(env.REDIS_URL)) {
    problems.push(`REDIS_URL: expected redis://…`);
  }
  const redisKeyPrefix = env.REDIS_KEY_PREFIX || "imaging";
  const organizationId = (env.ORGANIZATION_ID || env.ORGANIZATION_NAME || "").trim();
  if (!/^[A-Za-z0-9_.{}-]+(:[A-Za-z0-9_.{}-]+)*$/.test(redisKeyPrefix)) {
    problems.push(
      `REDIS_KEY_PREFIX=${redisKeyPrefix}: expected segments of letters, digits, _ - . { } separated by ":" (e.g. imaging or site-a:imaging)`,
    );
  }
  let subscriptionEndpoints: EndpointPattern[] = [];
  try {
    subscriptionEndpoints = parseEndpointPatterns(env.SUBSCRIPTION_ENDPOINTS ?? "");
  } catch (e) {
    problems.push(`SUBSCRIPTION_ENDPOINTS: ${(e as Error).message}`);
  }
  const outboundPrivateAddresses = env.OUTBOUND_PRIVATE_ADDRESSES || "refuse";
  if (outboundPrivateAddresses !== "refuse" && outboundPrivateAddresses !== "allow") {
    problems.push(
      `OUTBOUND_PRIVATE_ADDRESSES=${outboundPrivateAddresses}: expected refuse (the default) or allow`,
    );
  }
  let rules: AnalysisRule[] = [];
  if (env.ANALYSIS_RULES) {
    try {
      const parsed = JSON.parse(env.ANALYSIS_RULES);
      if (!Array.isArray(parsed) || !parsed.every((r) => r && typeof r.model === "string")) {
        throw new Error("expected an array of {model, modality?, bodyPart?, …}");
      }
      rules = parsed;
    } catch (e) {
      problems.push(`ANALYSIS_RULES: ${(e as Error).message}`);
    }
  }
  const corsOrigins = (env.CORS_ORIGINS ?? "").split(",").map((o) => o.trim()).filter(Boolean);
  for (const o of corsOrigins) {
    if (o === "*") continue;
    try {
      if (new URL(o).origin !== o) throw new Error();
    } catch {
      problems.push(`CORS_ORIGINS: "${o}" is not an origin like https://viewer.example.org`);
    }
  }
  let trustedProxies: ProxyRange[] = [];
  try {
    trustedProxies = parseProxyRanges(
      (env.TRUSTED_PROXIES ?? "").split(",").map((p) => p.trim()).filter(Boolean),
    );
  } catch (e) {
    problems.push(`TRUSTED_PROXIES: ${(e as Error).message}`);
  }
  const authMode = env.AUTH || "on";
  if (!["on", "off"].includes(authMode)) problems.push(`AUTH=${env.AUTH}: expected on or off`);
  const adminPassword = env.ADMIN_PASSWORD ?? "";
  if (adminPassword && adminPassword.length < 12) {
    problems.push("ADMIN_PASSWORD: at least 12 characters");
  }
  if (Boolean(env.SIDECAR_CLIENT_ID) !== Boolean(env.SIDECAR_PRIVATE_KEY)) {
    problems.push("SIDECAR_CLIENT_ID and SIDECAR_PRIVATE_KEY: set both or neither");
  }
  const config: Config = {
    port,
    host,
    publicUrl,
    databaseUrl,
    databaseReadUrl,
    pgliteDir: env.PGLITE_DIR || "./data/pglite",
    databasePoolSize: int("DATABASE_POOL_SIZE", 10, 1, 1000),
    databasePrepare: bool("DATABASE_PREPARE", true),
    searchDefaultCount: int("SEARCH_DEFAULT_COUNT", 20, 1, 1000),
    fhirMaxBodyBytes: int("FHIR_MAX_BODY_BYTES", 32 * 2 ** 20, 1024, 2 ** 31),
    searchMaxCount: int("SEARCH_MAX_COUNT", 1000, 1, 10000),
    logLevel,
    shutdownGraceSeconds: int("SHUTDOWN_GRACE_SECONDS", 25, 0, 3600),
    accessLog: bool("ACCESS_LOG", true),
    objectStore: {
      s3Endpoint,
      s3Bucket: env.S3_BUCKET || "imaging",
      s3Region: env.S3_REGION || "us-east-1",
      s3AccessKeyId: env.S3_ACCESS_KEY_ID ?? "",
      s3SecretAccessKey: env.S3_SECRET_ACCESS_KEY ?? "",
      s3ForcePathStyle: bool("S3_FORCE_PATH_STYLE", true),
      s3TimeoutSeconds: int("S3_TIMEOUT_SECONDS", 30, 1, 3600),
      sweepHours: int("OBJECT_SWEEP_HOURS", 24, 0, 24 * 365),
      folder: env.OBJECT_DIR || "./data/objects",
    },
    changeFeedIntervalMs: int("CHANGE_FEED_INTERVAL_MS", 250, 10, 60_000),
    bulkExport: {
      retentionHours: int("BULK_EXPORT_RETENTION_HOURS", 24, 1, 24 * 365),
      fileResources: int("BULK_EXPORT_FILE_RESOURCES", 10_000, 1, 10_000_000),
    },
    organization: { name: env.ORGANIZATION_NAME?.trim() ?? "", identifier: organizationId },
    subscriptionEndpoints,
    outboundPrivateAddresses: outboundPrivateAddresses as "refuse" | "allow",
    inference: {
      redisUrl: env.REDIS_URL ?? "",
      redisKeyPrefix,
      modelsDir: env.MODELS_DIR || "sidecar/models",
      visibilityMs: int("JOB_VISIBILITY_MS", 60_000, 100, 86_400_000),
      maxAttempts: int("JOB_MAX_ATTEMPTS", 3, 1, 100),
      backoffBaseMs: int("JOB_BACKOFF_BASE_MS", 2_000, 1, 3_600_000),
      backoffMaxMs: int("JOB_BACKOFF_MAX_MS", 60_000, 1, 86_400_000),
      inProcessWorker: workerMode,
      providers: (env.INFERENCE_PROVIDERS || "cuda,webgpu,cpu").split(",").map((p) => p.trim())
        .filter(Boolean),
      threads: int("INFERENCE_THREADS", 0, 0, 1024),
      apiUrl: env.SIDECAR_API_URL || publicUrl,
      token: env.SIDECAR_TOKEN ?? "",
      clientId: env.SIDECAR_CLIENT_ID ?? "",
      privateKey: env.SIDECAR_PRIVATE_KEY ?? "",
      sidecarPort: int("SIDECAR_PORT", 8090, 0, 65535),
      rules,
    },
    auditEnabled: bool("AUDIT", true),
    metricsToken: env.METRICS_TOKEN ?? "",
    rateLimits: {
      read: int("RATE_LIMIT_READ_PER_MINUTE", 6000, 0, 100_000_000),
      write: int("RATE_LIMIT_WRITE_PER_MINUTE", 1200, 0, 100_000_000),
      upload: int("RATE_LIMIT_UPLOAD_PER_MINUTE", 600, 0, 100_000_000),
    },
    auth: {
      enabled: authMode === "on",
      issuer: env.AUTH_ISSUER || `${publicUrl}/auth`,
      accessTokenSeconds: int("ACCESS_TOKEN_SECONDS", 900, 30, 86_400),
      refreshTokenSeconds: int("REFRESH_TOKEN_SECONDS", 43_200, 60, 31_536_000),
      passwordGrant: bool("AUTH_PASSWORD_GRANT", false),
      sessionSeconds: int("AUTH_SESSION_SECONDS", 28_800, 60, 2_592_000),
      adminUsername: (env.ADMIN_USERNAME || "admin").toLowerCase(),
      adminPassword,
      loginMaxFailures: int("LOGIN_MAX_FAILURES", 5, 1, 1000),
      loginLockSeconds: int("LOGIN_LOCK_SECONDS", 900, 1, 86_400),
      loginRatePerMinute: int("LOGIN_RATE_PER_MINUTE", 20, 1, 100_000),
      passwordIterations: int("PASSWORD_ITERATIONS", 600_000, 600_000, 10_000_000),
      corsOrigins,
      trustedProxies,
    },
    dicom: {
      maxRequestBytes: int("DICOM_MAX_REQUEST_BYTES", 4 * 2 ** 30, 1024, Number.MAX_SAFE_INTEGER),
      maxInstanceBytes: int("DICOM_MAX_INSTANCE_BYTES", 2 ** 30, 1024, 2 ** 31),
      duplicatePolicy,
      stableSeconds: int("DICOM_STABLE_SECONDS", 5, 0, 86400),
      imagingStudySyncMs: int("IMAGINGSTUDY_SYNC_MS", 1000, 10, 3_600_000),
    },
    dimse: parseDimse(env, int, problems),
    forwarding: {
      destinations: parseDestinations(env.DICOM_DESTINATIONS, env, problems),
      maxAttempts: int("DICOM_FORWARD_MAX_ATTEMPTS", 10, 1, 1000),
      backoffBaseMs: int("DICOM_FORWARD_BACKOFF_BASE_MS", 5_000, 1, 3_600_000),
      backoffMaxMs: int("DICOM_FORWARD_BACKOFF_MAX_MS", 900_000, 1, 86_400_000),
      timeoutMs: int("DICOM_FORWARD_TIMEOUT_SECONDS", 120, 1, 86_400) * 1000,
      concurrency: int("DICOM_FORWARD_CONCURRENCY", 4, 1, 64),
      pollMs: 5_000,
    },
  };
  if (problems.length) throw new ConfigError(problems);
  return Object.freeze(config);
}

/** `loadConfig` for an entry point: prints every problem and exits with code 2 on a bad config. */
export function loadConfigOrExit(env: Env): Readonly<Config> {
  try {
    return loadConfig(env);
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(e.message);
      Deno.exit(2);
    }
    throw e;
  }
}
