/**
 * @module `deno task sidecar` as a process: it starts with the fixture model, answers
 * `GET /health` on SIDECAR_PORT, and exits 0 on SIGTERM.
 */
import assert from "node:assert/strict";

Deno.test("sidecar/main.ts serves /health and stops on SIGTERM", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", new URL("../../sidecar/main.ts", import.meta.url).pathname],
    env: {
      ONNXRUNTIME_NODE_INSTALL: "skip",
      HOST: "127.0.0.1",
      SIDECAR_PORT: String(port),
      MODELS_DIR: new URL("./fixtures/models", import.meta.url).pathname,
      INFERENCE_PROVIDERS: "cpu",
      SIDECAR_API_URL: "http://127.0.0.1:9",
      REDIS_URL: "",
    },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  try {
    let body: Record<string, unknown> | undefined;
    for (let i = 0; i < 200 && !body; i++) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/health`);
        body = await res.json();
        assert.equal(res.status, 200);
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    assert.ok(body, "the sidecar did not answer");
    assert.equal(body.status, "ok");
    assert.deepEqual(body.models, [{ name: "threshold-demo", version: "1.0.0", provider: "cpu" }]);
    assert.deepEqual(body.jobs, { done: 0, failed: 0, retried: 0, skipped: 0, current: null });
  } finally {
    child.kill("SIGTERM");
  }
  const status = await child.status;
  const log = await stderr;
  assert.equal(status.code, 0, log);
  assert.match(log, /"msg":"sidecar stopped"/);
});
