/**
 * @module A Postgres server of a test's own (Debian's `initdb` and `pg_ctl`, a temporary data
 * folder, a free port, trust authentication on 127.0.0.1), so that a test can restart, stop or
 * pause it without disturbing the shared server other tests run against. As root, the server runs
 * as the `postgres` user (initdb refuses root).
 */

export interface PrivatePostgres {
  url: string;
  port: number;
  /** `pg_ctl restart` (mode fast: connections are closed, the server comes back). */
  restart(): Promise<void>;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** SIGSTOP / SIGCONT to the postmaster and its backends: a stalled network, not a closed one. */
  pause(): Promise<void>;
  resume(): Promise<void>;
  /** Stops the server and removes its folder. */
  close(): Promise<void>;
}

/** Where Debian keeps the server's programs (the newest major version), or null. */
export function postgresBin(): string | null {
  try {
    const versions = [...Deno.readDirSync("/usr/lib/postgresql")].map((e) => e.name)
      .filter((n) => /^\d+$/.test(n)).sort((a, b) => Number(b) - Number(a));
    for (const v of versions) {
      const bin = `/usr/lib/postgresql/${v}/bin`;
      if (Deno.statSync(`${bin}/initdb`).isFile) return bin;
    }
  } catch { /* not installed */ }
  return null;
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const bin = postgresBin();
  if (!bin) throw new Error("PostgreSQL's server programs are not installed");
  const root = Deno.uid() === 0;
  const dir = await Deno.makeTempDir({ prefix: "pg-private-" });
  const data = `${dir}/data`;
  const port = freePort();
  if (root) {
    await run(["chown", "-R", "postgres:postgres", dir]);
    await Deno.chmod(dir, 0o755);
  }
  const as = (cmd: string[]) => root ? ["runuser", "-u", "postgres", "--", ...cmd] : cmd;
  await run(as([`${bin}/initdb`, "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"]));
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`;
  const ctl = async (...args: string[]) =>
    void await run(
      as([`${bin}/pg_ctl`, "-D", data, "-l", `${dir}/log`, "-o", options, "-w", ...args]),
    );
  await ctl("start");
  const pids = async () => {
    const head = (await Deno.readTextFile(`${data}/postmaster.pid`)).split("\n")[0].trim();
    const children = await run(["pgrep", "-P", head]).catch(() => "");
    return [head, ...children.split("\n").filter(Boolean)];
  };
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    restart: () => ctl("restart", "-m", "fast"),
    stop: () => ctl("stop", "-m", "fast"),
    start: () => ctl("start"),
    pause: async () => void await run(["kill", "-STOP", ...await pids()]),
    resume: async () => void await run(["kill", "-CONT", ...await pids()]),
    async close() {
      await ctl("stop", "-m", "immediate").catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** Runs `cmd`; answers its stdout, throws with its stderr when it fails. */
async function run(cmd: string[]): Promise<string> {
  const out = await new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`${cmd.join(" ")}: ${new TextDecoder().decode(out.stderr).slice(0, 500)}`);
  }
  return new TextDecoder().decode(out.stdout);
}
