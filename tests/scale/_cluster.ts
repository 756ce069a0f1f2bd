/**
 * @module A small production-like deployment on this machine, for the scale test and
 * `bench/scale.ts`: API processes (`main.ts`, each on a fixed port so that it can be restarted
 * where HAProxy expects it) sharing a fresh Postgres database, a Redis database of their own (and
 * a key prefix of their own) and a unique S3 bucket, behind a local HAProxy; sidecar processes
 * (`sidecar/main.ts`) in one consumer group, reaching the API through HAProxy as well.
 * `close()` stops every process and removes everything the cluster made, whatever happened.
 */
import {
  type Child,
  claimRedisDb,
  createDatabase,
  freePort,
  modelsDir,
  s3Bucket,
  s3Env,
  spawnDeno,
  type TestModel,
} from "../sidecar/_process.ts";
import { type Haproxy, startHaproxy } from "./_haproxy.ts";

export interface ClusterOptions {
  /** API processes (default 2). */
  apis?: number;
  /**
   * HAProxy frontends as lists of API indexes (default: one frontend over every API). The bench
   * uses `[[0], [0, 1]]`: the same first API alone and with the second.
   */
  frontends?: number[][];
  /** Test models in a temp MODELS_DIR (default threshold-demo), or a folder of real models. */
  models?: TestModel[] | string;
  /** Added to every API's environment. */
  apiEnv?: Record<string, string>;
  /** Added to every sidecar's environment. */
  sidecarEnv?: Record<string, string>;
  /** Seconds a starting process may take to be ready (default 90). */
  readySeconds?: number;
}

export interface Cluster {
  /** The HAProxy origin(s) clients use, one per frontend. */
  origins: string[];
  /** The first frontend's origin. */
  lb: string;
  haproxy: Haproxy;
  /** The API processes by index (a killed one stays until restarted). */
  apis: Child[];
  /** The HAProxy server name of API `i`. */
  apiName(i: number): string;
  apiPorts: number[];
  sidecars: Child[];
  redisUrl: string;
  redisPrefix: string;
  databaseUrl: string;
  /** Starts API `i` on its port again (after a kill) and waits for `/health/ready`. */
  restartApi(i: number): Promise<Child>;
  /** Starts one more sidecar (its health server on a free port). */
  startSidecar(extra?: Record<string, string>): Promise<Child>;
  /** The last lines of every process's output, for failure messages. */
  tails(n?: number): string;
  close(): Promise<void>;
}

/**
 * Builds the cluster on DATABASE_URL and REDIS_URL (and the S3 server of S3_ENDPOINT when set,
 * else a temp folder); on failure everything made so far is removed again.
 */
export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const cleanups: (() => Promise<unknown>)[] = [];
  const everyChild: Child[] = [];
  const count = options.apis ?? 2;
  const readyMs = (options.readySeconds ?? 90) * 1000;
  const close = async () => {
    await Promise.all(everyChild.map((c) => c.stop(3_000).catch(() => {})));
    for (const clean of cleanups.splice(0).reverse()) {
      await clean().catch((e) => console.error(`cleanup: ${e}`));
    }
  };
  try {
    const database = await createDatabase(Deno.env.get("DATABASE_URL")!);
    cleanups.push(database.drop);
    const redis = await claimRedisDb(Deno.env.get("REDIS_URL")!);
    cleanups.push(redis.release);
    const redisPrefix = `scale-${crypto.randomUUID().slice(0, 8)}:imaging`;
    // The real S3 server when S3_ENDPOINT is set (the test needs it), else a temp folder.
    const objects: Record<string, string> = {};
    if (Deno.env.get("S3_ENDPOINT")) {
      const bucket = s3Bucket();
      cleanups.push(() => bucket.remove());
      Object.assign(objects, s3Env(), { S3_BUCKET: bucket.bucket });
    } else {
      const dir = await Deno.makeTempDir({ prefix: "scale-objects-" });
      cleanups.push(() => Deno.remove(dir, { recursive: true }));
      Object.assign(objects, { S3_ENDPOINT: "", OBJECT_DIR: dir });
    }
    let models: string;
    if (typeof options.models === "string") {
      models = options.models;
    } else {
      models = await modelsDir(options.models ?? ["threshold-demo"]);
      const made = models;
      cleanups.push(() => Deno.remove(made, { recursive: true }));
    }

    const apiPorts = Array.from({ length: count }, () => freePort());
    const apiName = (i: number) => `api${i + 1}`;
    const frontends = (options.frontends ?? [apiPorts.map((_, i) => i)]).map((list) => ({
      port: freePort(),
      backends: list.map((i) => ({ name: apiName(i), port: apiPorts[i] })),
    }));
    const lb = `http://127.0.0.1:${frontends[0].port}`;
    const haproxy = await startHaproxy({ frontends });
    cleanups.push(() => haproxy.stop());

    const shared = {
      REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: redisPrefix,
      MODELS_DIR: models,
      JOB_VISIBILITY_MS: "3000",
      JOB_MAX_ATTEMPTS: "5",
      JOB_BACKOFF_BASE_MS: "200",
      JOB_BACKOFF_MAX_MS: "1000",
    };
    const apiEnv: Record<string, string> = {
      ...shared,
      ...objects,
      DATABASE_URL: database.url,
      DATABASE_POOL_SIZE: "6",
      // Clients and sidecars see the load balancer: Location, fullUrl and links point there.
      PUBLIC_URL: lb,
      AUTH: "off",
      INFERENCE_WORKER: "off",
      ANALYSIS_RULES: "",
      DICOM_STABLE_SECONDS: "1",
      RATE_LIMIT_READ_PER_MINUTE: "0",
      RATE_LIMIT_WRITE_PER_MINUTE: "0",
      RATE_LIMIT_UPLOAD_PER_MINUTE: "0",
      SHUTDOWN_GRACE_SECONDS: "2",
      LOG_LEVEL: "warn",
      ...options.apiEnv,
    };
    const apis: Child[] = [];
    const startApi = async (i: number) => {
      const child = await spawnDeno({
        name: apiName(i),
        script: "main.ts",
        port: apiPorts[i],
        env: { ...apiEnv, PORT: String(apiPorts[i]) },
        readyPath: "/health/ready",
        readyMs,
      });
      everyChild.push(child);
      apis[i] = child;
      return child;
    };
    // Together: migrations run once under the advisory lock while the other replica waits.
    await Promise.all(apiPorts.map((_, i) => startApi(i)));
    await haproxy.waitUp(apiPorts.map((_, i) => apiName(i)));

    const sidecars: Child[] = [];
    let sidecarCount = 0;
    const cluster: Cluster = {
      origins: haproxy.origins,
      lb,
      haproxy,
      apis,
      apiName,
      apiPorts,
      sidecars,
      redisUrl: redis.url,
      redisPrefix,
      databaseUrl: database.url,
      restartApi: startApi,
      async startSidecar(extra = {}) {
        const port = freePort();
        const child = await spawnDeno({
          name: `sidecar${++sidecarCount}`,
          script: "sidecar/main.ts",
          port,
          env: {
            ...shared,
            SIDECAR_PORT: String(port),
            SIDECAR_API_URL: lb,
            INFERENCE_PROVIDERS: "cpu",
            INFERENCE_THREADS: "1",
            LOG_LEVEL: "info",
            // The sidecar holds no database or S3 credential of its own.
            DATABASE_URL: "",
            S3_ENDPOINT: "",
            S3_ACCESS_KEY_ID: "",
            S3_SECRET_ACCESS_KEY: "",
            ...options.sidecarEnv,
            ...extra,
          },
          readyPath: "/health",
          readyMs,
        });
        everyChild.push(child);
        sidecars.push(child);
        return child;
      },
      tails: (n = 25) => [...everyChild.map((c) => c.tail(n)), haproxy.tail(n)].join("\n"),
      close,
    };
    return cluster;
  } catch (e) {
    await close();
    throw e;
  }
}
