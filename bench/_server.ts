/** @module The benchmark's database and server: a fresh database and the server as a child process. */
import postgres from "postgres";
// ---------------------------------------------------------------------------------------------
// Database and server

export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

export async function recreateDatabase(
  adminUrl: string,
  name: string,
): Promise<{ url: string; version: string }> {
  const sql = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await sql.unsafe(`CREATE DATABASE ${name}`);
    const [{ server_version }] = await sql`SHOW server_version`;
    const url = new URL(adminUrl);
    url.pathname = `/${name}`;
    return { url: url.toString(), version: `PostgreSQL ${server_version}` };
  } finally {
    await sql.end();
  }
}

/** The database a previous run loaded; fails when it is missing or empty. */
export async function existingDatabase(
  adminUrl: string,
  name: string,
): Promise<{ url: string; version: string }> {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const sql = postgres(url.toString(), { max: 1, onnotice: () => {} });
  try {
    const [{ server_version }] = await sql`SHOW server_version`;
    return { url: url.toString(), version: `PostgreSQL ${server_version}` };
  } catch (e) {
    throw new Error(`--reuse needs the database ${name} from an earlier run: ${e}`);
  } finally {
    await sql.end();
  }
}

/** Patient ids and counts per type of what a previous run loaded. */
export async function loadedBefore(
  url: string,
): Promise<{ patientIds: string[]; counts: Record<string, number>; seconds: number }> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const rows = await sql`
      SELECT type, count(*)::int AS n FROM resource WHERE NOT deleted GROUP BY type`;
    const counts: Record<string, number> = {};
    for (const r of rows) counts[r.type as string] = r.n as number;
    if (!counts.Patient) throw new Error("--reuse: the database holds no Patients");
    const ids = await sql`SELECT id FROM resource WHERE type = 'Patient' AND NOT deleted`;
    return { patientIds: ids.map((r) => r.id as string), counts, seconds: NaN };
  } finally {
    await sql.end();
  }
}

export async function databaseSize(url: string): Promise<string> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    // What autovacuum does after a bulk load in steady state: statistics, and the visibility map
    // that lets index-only scans skip the heap.
    await sql`VACUUM ANALYZE`;
    const [{ size }] =
      await sql`SELECT pg_size_pretty(pg_database_size(current_database())) AS size`;
    return size as string;
  } finally {
    await sql.end();
  }
}

export interface Server {
  base: string;
  logFile: string;
  /** The pid of the server's deno process (for /proc/<pid>/status). */
  pid: number;
  stop(): Promise<void>;
}

/** A child Deno process whose output goes to a log file, started once its /health says ok. */
export interface ChildService {
  pid: number;
  logFile: string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code. */
  stop(graceMs?: number): Promise<number>;
}

/**
 * Runs `deno run <flags> -A <script>` from the repository root with `env`, copies stdout and stderr
 * to a temp log file, and waits (up to 120 s) until `healthUrl` answers `{"status":"ok"}`.
 */
export async function spawnService(opts: {
  name: string;
  script: string;
  env: Record<string, string>;
  healthUrl: string;
  flags?: string[];
}): Promise<ChildService> {
  const logFile = await Deno.makeTempFile({ prefix: `bench-${opts.name}-`, suffix: ".log" });
  const log = await Deno.open(logFile, { write: true, truncate: true });
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...(opts.flags ?? []), "-A", opts.script],
    cwd: new URL("../", import.meta.url),
    env: opts.env,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // Both streams go to the log file; pipeTo closes the file when the first stream ends, so copy.
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) await log.write(chunk);
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]).finally(() => log.close());
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const deadline = Date.now() + 120_000;
  while (true) {
    if (exited) {
      await pumps;
      throw new Error(`The ${opts.name} exited (${(await status).code}):\n${await tail(logFile)}`);
    }
    try {
      const res = await fetch(opts.healthUrl);
      const body = await res.json();
      if (res.ok && body.status === "ok") break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`The ${opts.name} did not become healthy in 120 s:\n${await tail(logFile)}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    pid: child.pid,
    logFile,
    async stop(graceMs = 10_000) {
      if (!exited) child.kill("SIGTERM");
      const timer = setTimeout(() => !exited && child.kill("SIGKILL"), graceMs);
      const s = await status;
      clearTimeout(timer);
      await pumps;
      return s.code;
    },
  };
}

/** Starts `main.ts` on a free port; `extraEnv` adds to (or overrides) the child's environment. */
export async function startServer(
  databaseUrl: string,
  extraEnv: Record<string, string> = {},
): Promise<Server> {
  const port = freePort();
  const origin = `http://127.0.0.1:${port}`;
  const service = await spawnService({
    name: "server",
    script: "main.ts",
    // BENCH_SERVER_FLAGS adds Deno flags to the server, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
    flags: Deno.env.get("BENCH_SERVER_FLAGS")?.split(" ").filter(Boolean),
    env: {
      DATABASE_URL: databaseUrl,
      PORT: String(port),
      HOST: "127.0.0.1",
      PUBLIC_URL: origin,
      // BENCH_LOG_LEVEL=info measures with the access log (one JSON line per request) written.
      LOG_LEVEL: Deno.env.get("BENCH_LOG_LEVEL") ?? "warn",
      // BENCH_AUTH=on measures with authentication (a token per request); the default is off.
      AUTH: Deno.env.get("BENCH_AUTH") ?? "off",
      ...extraEnv,
    },
    healthUrl: `${origin}/health`,
  });
  return {
    base: `${origin}/fhir`,
    logFile: service.logFile,
    pid: service.pid,
    async stop() {
      await service.stop();
    },
  };
}

export async function tail(file: string, lines = 30): Promise<string> {
  const text = await Deno.readTextFile(file).catch(() => "");
  return text.split("\n").slice(-lines).join("\n");
}
