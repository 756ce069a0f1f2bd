/**
 * Every probe and healthcheck in deploy/ asks a route that answers 200 without a token: the API
 * started in process (PGlite in memory, AUTH on), the sidecar started as `deno task sidecar`
 * (and stopped with SIGTERM, which it must survive with exit code 0).
 */
import assert from "node:assert/strict";
import { createApp } from "../../app.ts";
import { loadConfig } from "../../platform/config.ts";
import { createServices } from "../../services.ts";
import { ROOT } from "./_deploy_files.ts";
import { type Probe, probes } from "./_deploy_model.ts";

Deno.test("every probe and healthcheck path answers 200 without a token: the API in process (AUTH on), the sidecar as deno task sidecar", async () => {
  const all = probes();
  assert.ok(all.some((p) => p.task === "start") && all.some((p) => p.task === "sidecar"));
  const missing = (p: Probe, status: number) =>
    status === 404
      ? `${p.where} probes ${p.path}, a route the ${
        p.task === "start" ? "API" : "sidecar"
      } does not serve (404)`
      : `${p.where}: ${p.path} answered ${status}`;

  const services = await createServices(loadConfig({
    PGLITE_DIR: "memory",
    OBJECT_DIR: await Deno.makeTempDir({ prefix: "objects-deploy-" }),
    LOG_LEVEL: "error",
    INFERENCE_WORKER: "off",
    AUTH: "on",
    ADMIN_PASSWORD: "correct horse battery staple",
  }));
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    createApp(services).fetch,
  );
  try {
    for (const p of all.filter((p) => p.task === "start")) {
      const res = await fetch(`http://127.0.0.1:${server.addr.port}${p.path}`);
      await res.body?.cancel();
      assert.equal(res.status, 200, missing(p, res.status));
    }
  } finally {
    await server.shutdown();
    await services.close();
  }

  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const pass = ["PATH", "HOME", "DENO_DIR", "TMPDIR"].filter((k) => Deno.env.get(k));
  const child = new Deno.Command(Deno.execPath(), {
    args: ["task", "sidecar"],
    cwd: ROOT,
    clearEnv: true,
    env: {
      ...Object.fromEntries(pass.map((k) => [k, Deno.env.get(k)!])),
      DENO_NO_UPDATE_CHECK: "1",
      HOST: "127.0.0.1",
      SIDECAR_PORT: String(port),
      INFERENCE_PROVIDERS: "cpu",
      LOG_LEVEL: "error",
    },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let exited = false;
  child.status.then(() => exited = true);
  let stderr = "";
  try {
    const deadline = Date.now() + 60_000;
    while (!(await answers(`http://127.0.0.1:${port}/health`))) {
      assert.ok(!exited && Date.now() < deadline, "deno task sidecar did not start");
      await new Promise((r) => setTimeout(r, 200));
    }
    for (const p of all.filter((p) => p.task === "sidecar")) {
      const res = await fetch(`http://127.0.0.1:${port}${p.path}`);
      await res.body?.cancel();
      assert.equal(res.status, 200, missing(p, res.status));
    }
  } finally {
    if (!exited) child.kill("SIGTERM");
    const out = await child.output();
    stderr = new TextDecoder().decode(out.stderr).slice(-2000);
    // A failed start says why; after a good one, SIGTERM must end it with 0 (a graceful stop).
    if (!out.success) console.error(stderr);
  }
  assert.equal((await child.status).code, 0, `deno task sidecar: no exit 0 on SIGTERM\n${stderr}`);
});

/** Whether `url` answers at all (any status). */
async function answers(url: string): Promise<boolean> {
  try {
    await (await fetch(url)).body?.cancel();
    return true;
  } catch {
    return false;
  }
}
