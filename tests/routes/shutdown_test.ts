/**
 * Start-up failures and SIGTERM on the real entry point (`main.ts` in its own process): the server stops accepting,
 * in-flight requests finish within SHUTDOWN_GRACE_SECONDS (an event stream, which never ends, is
 * cut at the end of it), the pools close and the process exits 0.
 */
import assert from "node:assert/strict";

async function startMain(): Promise<{ child: Deno.ChildProcess; origin: string }> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../../main.ts", import.meta.url).pathname],
    env: {
      PORT: String(port),
      HOST: "127.0.0.1",
      PGLITE_DIR: "memory",
      OBJECT_DIR: await Deno.makeTempDir({ prefix: "objects-shutdown-" }),
      AUTH: "off",
      SHUTDOWN_GRACE_SECONDS: "1",
      LOG_LEVEL: "error",
      DATABASE_URL: "",
      REDIS_URL: "",
      S3_ENDPOINT: "",
    },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const origin = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 600; i++) {
    try {
      const res = await fetch(`${origin}/health/live`);
      await res.body?.cancel();
      if (res.ok) return { child, origin };
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill("SIGKILL");
  throw new Error("main.ts did not start in 60 s");
}

Deno.test("SIGTERM with no request in flight: drained at once, exit 0", async () => {
  const { child } = await startMain();
  const t0 = performance.now();
  child.kill("SIGTERM");
  const { code, stdout } = await child.output();
  const ms = performance.now() - t0;
  assert.equal(code, 0);
  assert.match(new TextDecoder().decode(stdout), /stopped: requests drained/);
  assert.ok(ms < 5_000, `took ${ms} ms`);
});

Deno.test("SIGTERM with an event stream open: cut after the grace period, exit 0", async () => {
  const { child, origin } = await startMain();
  const stream = await fetch(`${origin}/events`);
  assert.equal(stream.status, 200);
  const reader = stream.body!.getReader();
  const t0 = performance.now();
  child.kill("SIGTERM");
  const { code, stdout } = await child.output();
  const ms = performance.now() - t0;
  await reader.cancel().catch(() => {});
  assert.equal(code, 0);
  assert.match(new TextDecoder().decode(stdout), /stopped: grace period over/);
  assert.ok(ms >= 900 && ms < 6_000, `took ${ms} ms (grace 1 s)`);
});

Deno.test("start-up with a database that does not answer: one clear error line, exit 1", async () => {
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../../main.ts", import.meta.url).pathname],
    env: {
      PORT: "0",
      DATABASE_URL: "postgres://postgres@127.0.0.1:1/nothing",
      AUTH: "off",
      LOG_LEVEL: "error",
      REDIS_URL: "",
      S3_ENDPOINT: "",
      OBJECT_DIR: await Deno.makeTempDir({ prefix: "objects-startup-" }),
    },
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.equal(code, 1);
  const lines = new TextDecoder().decode(stderr).trim().split("\n");
  const failed = lines.map((l) => {
    try {
      return JSON.parse(l);
    } catch {
      return undefined;
    }
  }).find((l) => l?.msg === "start-up failed");
  assert.ok(failed, lines.join("\n"));
  assert.match(failed.error, /ECONNREFUSED|connect|refused/i);
});
