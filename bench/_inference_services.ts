/**
 * @module The processes of the inference benchmark's pipeline runs: the API (`main.ts` on a
 * recreated database, objects in a temp folder, jobs on a Redis database of its own, no in-process
 * worker, no rules) and sidecars (`sidecar/main.ts`, each on its own health port, logging at
 * info so that their job lines can be read back). Also: emptying that Redis database, and host
 * CPU counters for a phase.
 */
import { createClient } from "redis";
import { freePort, recreateDatabase, type Server, spawnService, startServer } from "./_server.ts";

export const BENCH_DATABASE = "fhir_bench_inference";

export interface PipelineEnv {
  adminUrl: string;
  redisUrl: string;
  modelsDir: string;
  providers: string[];
  stableSeconds: number;
  /** INFERENCE_THREADS of each sidecar; 0: cores ÷ sidecars of the phase. */
  threads: number;
}

export interface Api {
  server: Server;
  origin: string;
  objects: string;
  stop(): Promise<void>;
}

/** Empties the Redis database of `url` (FLUSHDB: that database only). */
export async function flushRedis(url: string): Promise<void> {
  const client = createClient({ url, RESP: 2, socket: { reconnectStrategy: false } });
  client.on("error", () => {});
  await client.connect();
  try {
    await client.sendCommand(["FLUSHDB"]);
  } finally {
    await (client as unknown as { close(): Promise<void> }).close();
  }
}

/** Keys in the Redis database of `url` whose names match `pattern`, with each stream's length. */
export async function redisStreams(url: string): Promise<Record<string, number>> {
  const client = createClient({ url, RESP: 2, socket: { reconnectStrategy: false } });
  client.on("error", () => {});
  await client.connect();
  try {
    const keys = await client.sendCommand<string[]>(["KEYS", "*"]);
    const out: Record<string, number> = {};
    for (const key of keys.sort()) {
      const type = await client.sendCommand<string>(["TYPE", key]);
      out[`${key} (${type})`] = type === "stream"
        ? Number(await client.sendCommand(["XLEN", key]))
        : type === "zset"
        ? Number(await client.sendCommand(["ZCARD", key]))
        : NaN;
    }
    return out;
  } finally {
    await (client as unknown as { close(): Promise<void> }).close();
  }
}

/** A fresh API: recreated database, empty Redis database, new object folder. */
export async function startApi(env: PipelineEnv): Promise<Api> {
  const db = await recreateDatabase(env.adminUrl, BENCH_DATABASE);
  await flushRedis(env.redisUrl);
  const objects = await Deno.makeTempDir({ prefix: "bench-inference-objects-" });
  let server: Server;
  try {
    server = await startServer(db.url, {
      OBJECT_DIR: objects,
      // Inherited values would win over the folder, or add rules and a worker.
      S3_ENDPOINT: "",
      REDIS_URL: env.redisUrl,
      INFERENCE_WORKER: "off",
      ANALYSIS_RULES: "",
      MODELS_DIR: env.modelsDir,
      DICOM_STABLE_SECONDS: String(env.stableSeconds),
    });
  } catch (e) {
    await Deno.remove(objects, { recursive: true }).catch(() => {});
    throw e;
  }
  return {
    server,
    origin: new URL(server.base).origin,
    objects,
    async stop() {
      await server.stop();
      await Deno.remove(objects, { recursive: true }).catch(() => {});
    },
  };
}

export interface SidecarProcess {
  pid: number;
  port: number;
  logFile: string;
  health(): Promise<SidecarHealth>;
  stop(): Promise<number>;
}

export interface SidecarHealth {
  status: string;
  provider?: unknown;
  models?: { name: string; version: string; provider: string }[];
  jobs?: { done: number; failed: number; retried: number; skipped: number };
  memory?: { rss: number };
}

/** Starts `sidecar/main.ts` against `apiOrigin` and waits (up to 120 s) for its /health. */
export async function startSidecar(
  apiOrigin: string,
  env: PipelineEnv,
  threads: number,
): Promise<SidecarProcess> {
  const port = freePort();
  const service = await spawnService({
    name: "sidecar",
    script: "sidecar/main.ts",
    env: {
      HOST: "127.0.0.1",
      SIDECAR_PORT: String(port),
      SIDECAR_API_URL: apiOrigin,
      REDIS_URL: env.redisUrl,
      MODELS_DIR: env.modelsDir,
      INFERENCE_PROVIDERS: env.providers.join(","),
      INFERENCE_THREADS: String(threads),
      LOG_LEVEL: "info",
    },
    healthUrl: `http://127.0.0.1:${port}/health`,
  });
  const health = async (): Promise<SidecarHealth> => {
    const res = await fetch(`http://127.0.0.1:${port}/health`);
    return await res.json();
  };
  return {
    pid: service.pid,
    port,
    logFile: service.logFile,
    health,
    stop: () => service.stop(40_000),
  };
}

/** Host CPU seconds (busy, all cores) from /proc/stat; NaN where it cannot be read. */
export async function hostBusySeconds(): Promise<number> {
  try {
    const line = (await Deno.readTextFile("/proc/stat")).split("\n")[0];
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const idle = v[3] + (v[4] ?? 0);
    // user nice system idle iowait irq softirq steal (guest is inside user already)
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    return (total - idle) / 100;
  } catch {
    return NaN;
  }
}

/** The PIDs of running processes whose command line matches `pattern` (pgrep -f). */
export async function pgrep(pattern: string): Promise<number[]> {
  try {
    const out = await new Deno.Command("pgrep", { args: ["-f", pattern], stdout: "piped" })
      .output();
    return new TextDecoder().decode(out.stdout).split("\n").filter(Boolean).map(Number)
      .filter((pid) => pid !== Deno.pid);
  } catch {
    return [];
  }
}

/** CPU seconds so far and command line of every process (from /proc). */
export async function processCpu(): Promise<Map<number, { cpu: number; cmd: string }>> {
  const out = new Map<number, { cpu: number; cmd: string }>();
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = await Deno.readTextFile(`/proc/${entry.name}/stat`);
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const raw = await Deno.readTextFile(`/proc/${entry.name}/cmdline`);
      const cmd = raw.replaceAll("\0", " ").trim() ||
        stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      out.set(Number(entry.name), { cpu: (Number(fields[11]) + Number(fields[12])) / 100, cmd });
    } catch {
      // gone
    }
  }
  return out;
}

/** The processes that used the most CPU between two snapshots, `exclude`d pids left out. */
export function topProcesses(
  before: Map<number, { cpu: number; cmd: string }>,
  after: Map<number, { cpu: number; cmd: string }>,
  exclude: number[],
  count = 4,
): { pid: number; cmd: string; cpu: number }[] {
  return [...after.entries()]
    .filter(([pid]) => !exclude.includes(pid))
    .map(([pid, p]) => ({ pid, cmd: p.cmd, cpu: p.cpu - (before.get(pid)?.cpu ?? 0) }))
    .filter((p) => p.cpu >= 0.05)
    .sort((a, b) => b.cpu - a.cpu)
    .slice(0, count);
}
