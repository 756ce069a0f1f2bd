/**
 * @module Helpers of the AI pipeline's process-level tests (`e2e_test.ts`, `faults_test.ts`): the
 * API (`main.ts`) and the sidecar (`sidecar/main.ts`) as child processes, a throwaway Postgres
 * database, a Redis database of their own, a unique S3 bucket, a models folder of copies and
 * variants of the test models, an HTTP proxy that can hold a request, a receiver for Subscription
 * notifications, and polling.
 */
import { DeleteBucketCommand, S3Client } from "@aws-sdk/client-s3";
import postgres from "postgres";
import { createClient } from "redis";
import { loadConfig } from "../../platform/config.ts";
import { createObjectStore } from "../../services.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const FIXTURE_MODEL = new URL("./fixtures/models/threshold-demo", import.meta.url).pathname;
const REAL_MODEL = new URL("../../sidecar/models/lung-nodule-demo", import.meta.url).pathname;

export const S3_ENV = [
  "S3_ENDPOINT",
  "S3_ACCESS_KEY_ID",
  "S3_SECRET_ACCESS_KEY",
  "S3_REGION",
  "S3_FORCE_PATH_STYLE",
];

/** The variables of the real services that are not set (empty: all of them are). */
export function missingServices(names = ["DATABASE_URL", "REDIS_URL", "S3_ENDPOINT"]): string[] {
  return names.filter((n) => !Deno.env.get(n));
}

/** The real S3 server's variables as the test process has them (empty when S3_ENDPOINT is not set). */
export function s3Env(): Record<string, string> {
  if (!Deno.env.get("S3_ENDPOINT")) return {};
  return Object.fromEntries(S3_ENV.flatMap((k) => Deno.env.has(k) ? [[k, Deno.env.get(k)!]] : []));
}

export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` every 50 ms until it answers a truthy value (returned), or throws after `ms`. */
export async function until<T>(
  what: string,
  check: () => T | Promise<T>,
  ms = 30_000,
): Promise<NonNullable<T>> {
  const end = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** A JSON request to the FHIR API at `origin`; the body parsed (or the text when not JSON). */
export async function fhir(
  origin: string,
  method: string,
  path: string,
  body?: unknown,
  token?: string,
  // deno-lint-ignore no-explicit-any
): Promise<{ status: number; headers: Headers; body: any }> {
  const res = await fetch(`${origin}/fhir/${path.replace(/^\//, "")}`, {
    method,
    headers: {
      accept: "application/fhir+json",
      ...(body === undefined ? {} : { "content-type": "application/fhir+json" }),
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch { /* not JSON */ }
  return { status: res.status, headers: res.headers, body: parsed };
}

/** A child Deno process whose output is kept line by line. */
export interface Child {
  readonly name: string;
  /** http://127.0.0.1:<port> of its HTTP server. */
  readonly origin: string;
  readonly pid: number;
  readonly lines: string[];
  readonly status: Promise<Deno.CommandStatus>;
  /** The JSON log lines (parsed) whose `msg` is `msg`. */
  logged(msg: string): Record<string, unknown>[];
  /** The last `n` lines, for failure messages. */
  tail(n?: number): string;
  kill(signal: Deno.Signal): void;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit status. */
  stop(graceMs?: number): Promise<Deno.CommandStatus>;
}

/**
 * Runs `deno run -A <script>` from the repository root with `env` on top of this process's
 * environment (an empty value unsets a variable for the child's config), then waits until
 * `GET <origin><readyPath>` answers 200.
 */
export async function spawnDeno(options: {
  name: string;
  script: string;
  port: number;
  env: Record<string, string>;
  readyPath: string;
  readyMs?: number;
}): Promise<Child> {
  const command = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", options.script],
    cwd: ROOT,
    env: { ONNXRUNTIME_NODE_INSTALL: "skip", HOST: "127.0.0.1", ...options.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
  const process = command.spawn();
  const lines: string[] = [];
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    let rest = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop()!;
      lines.push(...parts);
    }
    if (rest) lines.push(rest);
  };
  const drained = Promise.all([collect(process.stdout), collect(process.stderr)]);
  const status = process.status.then(async (s) => {
    await drained;
    return s;
  });
  let exited: Deno.CommandStatus | undefined;
  status.then((s) => exited = s);
  const origin = `http://127.0.0.1:${options.port}`;
  const child: Child = {
    name: options.name,
    origin,
    pid: process.pid,
    lines,
    status,
    logged: (msg) =>
      lines.flatMap((l) => {
        try {
          const json = JSON.parse(l);
          return json?.msg === msg ? [json] : [];
        } catch {
          return [];
        }
      }),
    tail: (n = 40) => `--- ${options.name} (pid ${process.pid}) ---\n${lines.slice(-n).join("\n")}`,
    kill: (signal) => {
      if (!exited) process.kill(signal);
    },
    async stop(graceMs = 5_000) {
      if (exited) return exited;
      process.kill("SIGTERM");
      const timer = setTimeout(() => {
        if (!exited) process.kill("SIGKILL");
      }, graceMs);
      const s = await status;
      clearTimeout(timer);
      return s;
    },
  };
  try {
    await until(`${options.name} to answer ${options.readyPath}`, async () => {
      if (exited) throw new Error(`${options.name} exited with ${exited.code}\n${child.tail()}`);
      try {
        const res = await fetch(`${origin}${options.readyPath}`);
        await res.body?.cancel();
        return res.status === 200;
      } catch {
        return false;
      }
    }, options.readyMs ?? 60_000);
  } catch (e) {
    await child.stop(1_000);
    throw new Error(`${(e as Error).message}\n${child.tail()}`);
  }
  return child;
}

/** `deno run -A main.ts` on a free port; `env` is the API's configuration. */
export function startApi(env: Record<string, string>): Promise<Child> {
  const port = freePort();
  return spawnDeno({
    name: "api",
    script: "main.ts",
    port,
    env: {
      PORT: String(port),
      PUBLIC_URL: `http://127.0.0.1:${port}`,
      AUTH: "off",
      // The e2e's subscriber listens on 127.0.0.1.
      OUTBOUND_PRIVATE_ADDRESSES: "allow",
      ...env,
    },
    readyPath: "/health",
  });
}

/** `deno run -A sidecar/main.ts` with its health server on a free port. */
export function startSidecar(name: string, env: Record<string, string>): Promise<Child> {
  const port = freePort();
  return spawnDeno({
    name,
    script: "sidecar/main.ts",
    port,
    env: { SIDECAR_PORT: String(port), INFERENCE_PROVIDERS: "cpu", ...env },
    readyPath: "/health",
  });
}

/** The sidecar's `GET /health` body. */
// deno-lint-ignore no-explicit-any
export async function sidecarHealth(sidecar: Child): Promise<any> {
  return await (await fetch(`${sidecar.origin}/health`)).json();
}

/**
 * A throwaway database `e2e_<time>_<random>` on the server of `baseUrl` (DATABASE_URL), and its
 * drop. Databases of runs that ended over an hour ago are dropped too.
 */
export async function createDatabase(
  baseUrl: string,
): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `e2e_${Date.now().toString(36)}_${crypto.randomUUID().slice(0, 8)}`;
  const sql = postgres(baseUrl, { max: 1, onnotice: () => {} });
  try {
    const stale = await sql<{ datname: string }[]>`
      SELECT datname FROM pg_database WHERE datname LIKE 'e2e\\_%'`;
    for (const { datname } of stale) {
      const started = parseInt(datname.split("_")[1] ?? "", 36);
      if (!Number.isFinite(started) || Date.now() - started < 3_600_000) continue;
      await sql.unsafe(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`).catch(() => {});
    }
    await sql.unsafe(`CREATE DATABASE "${name}"`);
  } finally {
    await sql.end();
  }
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const admin = postgres(baseUrl, { max: 1, onnotice: () => {} });
      try {
        await admin.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await admin.end();
      }
    },
  };
}

/**
 * A Redis database of this test alone: the queue's keys are fixed (`imaging:jobs:*`; config has no
 * prefix), so each test stack claims an empty database (1–15, never the URL's own, where the claim
 * key lives: `SET NX`, expiring after 15 minutes). A database holding keys is someone else's and is
 * skipped; the claimed one is flushed when released.
 */
export async function claimRedisDb(
  baseUrl: string,
): Promise<{ url: string; db: number; release(): Promise<void> }> {
  const owner = `${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  const ownDb = Number(new URL(baseUrl).pathname.slice(1) || 0);
  const client = createClient({ url: baseUrl, RESP: 2 });
  client.on("error", () => {});
  await client.connect();
  try {
    for (let db = 15; db >= 1; db--) {
      if (db === ownDb) continue;
      const claim = `test:inference-e2e:db:${db}`;
      const ok = await client.sendCommand(["SET", claim, owner, "NX", "EX", "900"]);
      if (String(ok) !== "OK") continue;
      const url = new URL(baseUrl);
      url.pathname = `/${db}`;
      let size: number;
      try {
        size = Number(await redisCommand(url.toString(), ["DBSIZE"]));
      } catch (e) {
        await client.sendCommand(["DEL", claim]);
        if (String(e).includes("DB index")) continue;
        throw e;
      }
      if (size > 0) {
        await client.sendCommand(["DEL", claim]);
        continue;
      }
      return {
        url: url.toString(),
        db,
        async release() {
          await redisCommand(url.toString(), ["FLUSHDB"]).catch(() => {});
          const c = createClient({ url: baseUrl, RESP: 2 });
          c.on("error", () => {});
          await c.connect();
          if (String(await c.sendCommand(["GET", claim])) === owner) {
            await c.sendCommand(["DEL", claim]);
          }
          await c.close();
        },
      };
    }
    throw new Error("no empty Redis database (1–15) to claim");
  } finally {
    await client.close();
  }
}

/** Raw commands on a Redis URL (e.g. XRANGE on the dead-letter stream). */
export async function redisCommand<T>(url: string, args: string[]): Promise<T> {
  const c = createClient({ url, RESP: 2 });
  c.on("error", () => {});
  await c.connect();
  try {
    return await c.sendCommand(args) as T;
  } finally {
    await c.close();
  }
}

/** A unique bucket name, and the removal of the bucket with everything in it. */
export function s3Bucket(): { bucket: string; remove(): Promise<void> } {
  const bucket = `e2e-${Date.now().toString(36)}-${crypto.randomUUID().slice(0, 8)}`;
  return {
    bucket,
    async remove() {
      const env = s3Env();
      const config = loadConfig({ ...env, S3_BUCKET: bucket });
      const store = createObjectStore(config);
      try {
        const keys: string[] = [];
        for await (const o of store.list("")) keys.push(o.key);
        for (const key of keys) await store.delete(key);
      } finally {
        await store.close();
      }
      const o = config.objectStore;
      const client = new S3Client({
        endpoint: o.s3Endpoint,
        region: o.s3Region,
        forcePathStyle: o.s3ForcePathStyle,
        credentials: { accessKeyId: o.s3AccessKeyId, secretAccessKey: o.s3SecretAccessKey },
      });
      try {
        await client.send(new DeleteBucketCommand({ Bucket: bucket }));
      } finally {
        client.destroy();
      }
    },
  };
}

/** The models a test can install. */
export type TestModel =
  /** The fixture (tests/sidecar/fixtures): voxels brighter than −300 HU, at 32 × 32. */
  | "threshold-demo"
  /**
   * The fixture at 256 × 256 (the input size of the e2e and fault studies, so no resizing): a
   * lesion brighter than −300 HU is segmented voxel for voxel.
   */
  | "threshold-fullres"
  /** The fixture with a manifest of 5 input channels: the ONNX graph wants 3, so `run` throws. */
  | "broken-demo"
  /** A copy of sidecar/models/lung-nodule-demo (its SHA-256 checked against the manifest). */
  | "lung-nodule-demo";

/** A temporary MODELS_DIR holding the models named. */
export async function modelsDir(names: TestModel[]): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "models-" });
  const fixture = JSON.parse(await Deno.readTextFile(`${FIXTURE_MODEL}/manifest.json`));
  for (const name of names) {
    await Deno.mkdir(`${dir}/${name}`);
    if (name === "lung-nodule-demo") {
      await copyRealModel(`${dir}/${name}`);
      continue;
    }
    await Deno.copyFile(`${FIXTURE_MODEL}/model.onnx`, `${dir}/${name}/model.onnx`);
    const manifest = structuredClone(fixture);
    manifest.name = name;
    if (name === "threshold-fullres") {
      // Every slice is resized to input.height × input.width (preprocess.ts), resize or not.
      manifest.input.height = manifest.input.width = 256;
      manifest.preprocessing.resize = { height: 256, width: 256, interpolation: "bilinear" };
      manifest.displayName = "Threshold demo at 256 × 256 (test fixture)";
    } else if (name === "broken-demo") {
      manifest.input.channels = 5;
      manifest.input.slicesPerSample = 5;
      manifest.displayName = "Broken demo: 5 input channels for a 3-channel graph (test fixture)";
    }
    await Deno.writeTextFile(`${dir}/${name}/manifest.json`, JSON.stringify(manifest, null, 2));
  }
  return dir;
}

/**
 * Copies the installed lung-nodule-demo (model.onnx, and the candidate classifier when the
 * manifest names one). It may be being retrained while the tests run: the copy is retried until
 * model.onnx matches the manifest's SHA-256 (a consistent pair).
 */
async function copyRealModel(to: string): Promise<void> {
  for (let attempt = 1;; attempt++) {
    const manifest = await Deno.readTextFile(`${REAL_MODEL}/manifest.json`);
    const bytes = await Deno.readFile(`${REAL_MODEL}/model.onnx`);
    const want = JSON.parse(manifest)?.file?.sha256;
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    const got = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
    if (!want || want === got || attempt >= 20) {
      await Deno.writeTextFile(`${to}/manifest.json`, manifest);
      await Deno.writeFile(`${to}/model.onnx`, bytes);
      const extra = JSON.parse(manifest)?.postprocessing?.candidates?.file;
      if (typeof extra === "string") {
        await Deno.copyFile(`${REAL_MODEL}/${extra}`, `${to}/${extra}`);
      }
      return;
    }
    await sleep(500);
  }
}

/** True when sidecar/models/lung-nodule-demo is installed. */
export function realModelInstalled(): boolean {
  try {
    return Deno.statSync(`${REAL_MODEL}/model.onnx`).isFile;
  } catch {
    return false;
  }
}

/** A request the proxy holds: resolve it to let it go on (or fail), or leave it to its client. */
export interface Held {
  method: string;
  path: string;
  /** The API's answer when the request was forwarded before it was held. */
  upstreamStatus?: number;
  release(): void;
}

/**
 * An HTTP proxy to `target`. `holdNext(when, match)` holds the next request that `match`es: before
 * forwarding it (`when: "request"`), or after the API answered it, before answering the client
 * (`when: "response"`). Everything else passes through.
 */
export function createProxy(target: string) {
  const hooks: {
    when: "request" | "response";
    match: (method: string, path: string) => boolean;
    held: (h: Held) => void;
  }[] = [];
  const pending = new Set<() => void>();
  const abort = new AbortController();
  const hold = async (method: string, path: string, upstreamStatus?: number) => {
    const hook = hooks.find((h) => h.match(method, path));
    if (!hook) return;
    hooks.splice(hooks.indexOf(hook), 1);
    const { promise, resolve } = Promise.withResolvers<void>();
    pending.add(resolve);
    hook.held({ method, path, upstreamStatus, release: resolve });
    await promise;
    pending.delete(resolve);
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    const path = url.pathname + url.search;
    const preHold = hooks.find((h) => h.when === "request" && h.match(req.method, url.pathname));
    if (preHold) await hold(req.method, url.pathname);
    const headers = new Headers(req.headers);
    for (const h of ["host", "connection", "accept-encoding", "content-length"]) headers.delete(h);
    const body = req.method === "GET" || req.method === "HEAD"
      ? undefined
      : new Uint8Array(await req.arrayBuffer());
    let res: Response;
    try {
      res = await fetch(`${target}${path}`, {
        method: req.method,
        headers,
        body,
        signal: abort.signal,
        redirect: "manual",
      });
    } catch (e) {
      return new Response(String(e), { status: 502 });
    }
    const postHold = hooks.find((h) => h.when === "response" && h.match(req.method, url.pathname));
    let payload: BodyInit | null = res.body;
    if (postHold) {
      payload = new Uint8Array(await res.arrayBuffer()); // the API has finished with it
      await hold(req.method, url.pathname, res.status);
    }
    const out = new Headers(res.headers);
    for (const h of ["content-encoding", "content-length", "transfer-encoding"]) out.delete(h);
    return new Response(payload, { status: res.status, headers: out });
  });
  return {
    origin: `http://127.0.0.1:${server.addr.port}`,
    /** Resolves with the held request once one matching arrives. */
    holdNext(
      when: "request" | "response",
      match: (method: string, path: string) => boolean,
    ): Promise<Held> {
      const { promise, resolve } = Promise.withResolvers<Held>();
      hooks.push({ when, match, held: resolve });
      return promise;
    },
    async close() {
      hooks.length = 0;
      for (const release of pending) release();
      abort.abort();
      await server.shutdown();
    },
  };
}

/** A notification received by `createReceiver`. */
export interface Received {
  method: string;
  path: string;
  body: string;
}

/** A rest-hook endpoint that records every request and answers 200. */
export function createReceiver() {
  const requests: Received[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    requests.push({ method: req.method, path: new URL(req.url).pathname, body: await req.text() });
    return new Response(null, { status: 200 });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    requests,
    close: () => server.shutdown(),
  };
}
