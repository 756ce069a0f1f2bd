/**
 * @module Redis and Ceph's RADOS Gateway of a fault test's own, on free ports with their state in a
 * temporary folder, so that restarting or pausing them disturbs no other test (Postgres:
 * `tests/_private_postgres.ts`). Redis keeps an append-only file (fsync always), as a production
 * queue must (deploy/compose.yaml), so a restart keeps the queued jobs. The gateway is a second
 * cluster from `scripts/s3/start.sh` (its own monitor ports); `restart` and `pause` act on the
 * radosgw daemon, the OSD keeps the objects.
 */
import { freePort, sleep, until } from "../sidecar/_process.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

export interface PrivateServer {
  /** Environment for the API: REDIS_URL, or S3_ENDPOINT and its credentials. */
  env: Record<string, string>;
  /**
   * Stopped (SIGTERM, state kept), down for `downMs` (default 0), started again; resolves once it
   * answers.
   */
  restart(downMs?: number): Promise<void>;
  /** SIGSTOP: connections stay open and nothing answers (a stalled network). */
  pause(): Promise<void>;
  /** SIGCONT. */
  resume(): Promise<void>;
  close(): Promise<void>;
}

export function commandExists(name: string): boolean {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      if (Deno.statSync(`${dir}/${name}`).isFile) return true;
    } catch { /* not here */ }
  }
  return false;
}

function signal(pid: number, sig: Deno.Signal): void {
  try {
    Deno.kill(pid, sig);
  } catch { /* gone */ }
}

/** Waits until `pid` is gone (up to `ms`), then SIGKILLs it. */
async function waitGone(pid: number, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try {
      Deno.kill(pid, "SIGCONT"); // a paused process cannot exit
    } catch {
      return;
    }
    await sleep(50);
  }
  signal(pid, "SIGKILL");
}

async function tcpAnswers(port: number, probe: string, expect: string): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      await conn.write(new TextEncoder().encode(probe));
      const buf = new Uint8Array(256);
      const timer = setTimeout(() => conn.close(), 1_000);
      const n = await conn.read(buf).catch(() => null);
      clearTimeout(timer);
      return n !== null && new TextDecoder().decode(buf.subarray(0, n)).includes(expect);
    } finally {
      try {
        conn.close();
      } catch { /* closed */ }
    }
  } catch {
    return false;
  }
}

export async function startPrivateRedis(): Promise<PrivateServer> {
  const dir = await Deno.makeTempDir({ prefix: "redis-private-" });
  const port = freePort();
  const args = [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--dir",
    dir,
    "--appendonly",
    "yes",
    "--appendfsync",
    "always",
    "--save",
    "",
    "--daemonize",
    "no",
  ];
  let child: Deno.ChildProcess;
  const start = async () => {
    child = new Deno.Command("redis-server", { args, stdout: "null", stderr: "null" }).spawn();
    await until("the private Redis", () => tcpAnswers(port, "PING\r\n", "PONG"), 15_000);
  };
  await start();
  return {
    env: { REDIS_URL: `redis://127.0.0.1:${port}` },
    async restart(downMs = 0) {
      signal(child.pid, "SIGTERM");
      await child.status;
      await sleep(downMs);
      await start();
    },
    pause: () => Promise.resolve(signal(child.pid, "SIGSTOP")),
    resume: () => Promise.resolve(signal(child.pid, "SIGCONT")),
    async close() {
      signal(child.pid, "SIGCONT");
      signal(child.pid, "SIGKILL");
      await child.status;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** True when this machine has what `startPrivateRgw` needs (Ceph's daemons, run as root). */
export function rgwAvailable(): boolean {
  return Deno.uid() === 0 && commandExists("radosgw") && commandExists("ceph-mon");
}

export async function startPrivateRgw(): Promise<PrivateServer> {
  const dir = await Deno.makeTempDir({ prefix: "rgw-private-" });
  const env = {
    S3_STATE_DIR: dir,
    S3_PORT: String(freePort()),
    S3_MON_PORT: String(freePort()),
    S3_MON_V1_PORT: String(freePort()),
  };
  const script = async (name: string) => {
    const out = await new Deno.Command(`${ROOT}scripts/s3/${name}`, {
      env,
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      throw new Error(`scripts/s3/${name}: ${new TextDecoder().decode(out.stderr).slice(-800)}`);
    }
    return new TextDecoder().decode(out.stdout);
  };
  await Deno.remove(dir); // start.sh makes the folder (it refuses a non-empty one that is not its)
  await script("start.sh");
  const vars = Object.fromEntries(
    (await Deno.readTextFile(`${dir}/env`)).split("\n").flatMap((line) => {
      const m = /^export (\w+)=(.*)$/.exec(line);
      return m ? [[m[1], m[2]]] : [];
    }),
  );
  const port = Number(env.S3_PORT);
  const pid = async () => Number((await Deno.readTextFile(`${dir}/run/rgw.pid`)).trim());
  const answers = () => tcpAnswers(port, "GET / HTTP/1.0\r\n\r\n", "HTTP/1.");
  return {
    env: vars,
    async restart(downMs = 0) {
      const old = await pid();
      signal(old, "SIGTERM");
      await waitGone(old);
      await sleep(downMs);
      const out = await new Deno.Command("radosgw", {
        args: ["-c", `${dir}/ceph.conf`, "-n", "client.rgw.s3", "--pid-file", `${dir}/run/rgw.pid`],
        stdout: "null",
        stderr: "null",
      }).output();
      if (!out.success) throw new Error("radosgw did not start again");
      await until("the private radosgw", answers, 60_000);
    },
    pause: async () => signal(await pid(), "SIGSTOP"),
    resume: async () => signal(await pid(), "SIGCONT"),
    async close() {
      try {
        signal(await pid(), "SIGCONT");
      } catch { /* not running */ }
      await script("stop.sh").catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}
