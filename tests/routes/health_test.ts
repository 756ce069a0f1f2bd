/**
 * Health endpoints: liveness, readiness (Postgres migrated, queue and object store answering: 503
 * naming what fails, never why) and the admins' detailed view (latencies, versions, queue depth).
 */
import assert from "node:assert/strict";
import { readMigrations } from "../../db/migrate.ts";
import { backendTest } from "../_harness.ts";
import { startAuthStack } from "../auth/_auth_harness.ts";

backendTest(
  "/health/ready is 200 when every dependency answers, 503 naming a missing migration",
  async (ctx) => {
    const get = (path: string) => fetch(`${ctx.origin}${path}`);
    const live = await get("/health/live");
    assert.equal(live.status, 200);
    assert.deepEqual(await live.json(), { status: "ok" });
    const ready = await get("/health/ready");
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), { status: "ready" });
    assert.equal(ready.headers.get("cache-control"), "no-store");

    // A replica that started before the last migration was applied is not ready.
    const latest = (await readMigrations()).at(-1)!;
    await ctx.services.db.query(`DELETE FROM schema_migration WHERE version = $1`, [
      latest.version,
    ]);
    try {
      const stale = await get("/health/ready");
      assert.equal(stale.status, 503);
      assert.deepEqual(await stale.json(), { status: "not ready", failing: ["database"] });
    } finally {
      await ctx.services.db.query(`INSERT INTO schema_migration (version, name) VALUES ($1, $2)`, [
        latest.version,
        latest.name,
      ]);
    }
    assert.equal((await get("/health/ready")).status, 200);
  },
);

Deno.test("/health/ready is 503 naming the queue when Redis does not answer", async () => {
  const st = await startAuthStack({ REDIS_URL: "redis://127.0.0.1:1" });
  try {
    const res = await st.call("/health/ready");
    assert.equal(res.status, 503);
    assert.deepEqual(await res.json(), { status: "not ready", failing: ["queue"] });
    const live = await st.call("/health/live");
    assert.equal(live.status, 200, "alive, though not ready");
    await live.body?.cancel();
  } finally {
    await st.close();
  }
});

Deno.test("/health/detailed: admins see each dependency's latency, versions and queue depth", async () => {
  const st = await startAuthStack();
  try {
    const anonymous = await st.call("/health/detailed");
    assert.equal(anonymous.status, 401);
    await anonymous.body?.cancel();
    const viewer = await st.call("/health/detailed", { token: st.tokens.viewer });
    assert.equal(viewer.status, 403);
    await viewer.body?.cancel();
    const res = await st.call("/health/detailed", { token: st.tokens.admin });
    const body = await res.json();
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.status, "ready");
    assert.equal(body.versions.deno, Deno.version.deno);
    assert.match(body.versions.postgres, /^\d+/);
    assert.equal(body.checks.database.ok, true);
    assert.equal(body.checks.database.migrations, (await readMigrations()).length);
    assert.equal(typeof body.checks.database.latencyMs, "number");
    assert.equal(body.checks.queue.ok, true);
    assert.equal(body.checks.objectStore.ok, true);
    assert.equal(typeof body.checks.queueDepth.dead, "number");
  } finally {
    await st.close();
  }
});
