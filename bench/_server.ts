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

export async function databaseSize(url: string): Promise<string> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await sql`ANALYZE`;
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
  stop(): Promise<void>;
}

export async function startServer(databaseUrl: string): Promise<Server> {
  const port = freePort();
  const origin = `http://127.0.0.1:${port}`;
  const logFile = await Deno.makeTempFile({ prefix: "fhir-bench-server-", suffix: ".log" });
  const log = await Deno.open(logFile, { write: true, truncate: true });
  const root = new URL("../", import.meta.url);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts"],
    cwd: root,
    env: {
      DATABASE_URL: databaseUrl,
      PORT: String(port),
      HOST: "127.0.0.1",
      PUBLIC_URL: origin,
      LOG_LEVEL: "warn",
    },
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
      throw new Error(`The server exited (${(await status).code}):\n${await tail(logFile)}`);
    }
    try {
      const res = await fetch(`${origin}/health`);
      const body = await res.json();
      if (res.ok && body.status === "ok") break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`The server did not become healthy in 120 s:\n${await tail(logFile)}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    base: `${origin}/fhir`,
    logFile,
    async stop() {
      if (!exited) child.kill("SIGTERM");
      const timer = setTimeout(() => !exited && child.kill("SIGKILL"), 10_000);
      await status;
      clearTimeout(timer);
      await pumps;
    },
  };
}

export async function tail(file: string, lines = 30): Promise<string> {
  const text = await Deno.readTextFile(file).catch(() => "");
  return text.split("\n").slice(-lines).join("\n");
}
