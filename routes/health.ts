/**
 * @module `/health`: liveness (`/health/live`: the process answers), readiness (`/health/ready`:
 * Postgres answers with every migration applied, the queue's Redis and the object store answer),
 * the database check of `/health`, and `/health/detailed` for admins (each dependency's latency
 * and error, versions, queue depth). Probes are public and say only what fails, never why.
 */
import { Hono } from "hono";
import type { AppEnv } from "./env.ts";
import { requireAdmin } from "../auth/access.ts";
import { appliedMigrations, knownMigrationCount, ping, serverVersion } from "../db/health_repo.ts";
import type { Services } from "./env.ts";

/** A dependency's answer: latency, and the error when it failed. */
interface Check {
  ok: boolean;
  latencyMs: number;
  error?: string;
  [detail: string]: unknown;
}

/** Each check gives up after this long (a hung dependency is a failed one). */
const CHECK_TIMEOUT_MS = 2_000;

async function timed(
  fn: () => Promise<Record<string, unknown> | void>,
): Promise<Check> {
  const t0 = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const details = await Promise.race([
      fn(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer in ${CHECK_TIMEOUT_MS} ms`)),
          CHECK_TIMEOUT_MS,
        );
      }),
    ]);
    return { ok: true, latencyMs: +(performance.now() - t0).toFixed(2), ...(details ?? {}) };
  } catch (e) {
    return {
      ok: false,
      latencyMs: +(performance.now() - t0).toFixed(2),
      error: (e as Error).message ?? String(e),
    };
  } finally {
    clearTimeout(timer);
  }
}

export function healthRoutes(services: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const started = Date.now();
  const known = knownMigrationCount();
  // A folder store's `head` of a missing key is a stat; an S3 store's a HEAD request.
  const probeKey = "health/readiness-probe";

  const checks = {
    database: () =>
      timed(async () => {
        const row = await appliedMigrations(services.db);
        const expected = await known;
        if (Number(row.n) < expected) {
          throw new Error(`${row.n} of ${expected} migrations applied`);
        }
        return { kind: services.db.kind, migrations: Number(row.n) };
      }),
    queue: () =>
      timed(async () => {
        if (!(await services.analysis.queue.ping())) throw new Error("the queue does not answer");
        return { kind: services.config.inference.redisUrl ? "redis" : "in-process" };
      }),
    readReplica: () =>
      timed(async () => {
        if (!services.fhir.context.readDb) return { kind: "none" };
        await ping(services.fhir.context.readDb);
        return { kind: "postgres" };
      }),
    objectStore: () =>
      timed(async () => {
        await services.store.head(probeKey);
        return { kind: services.store.description };
      }),
  };
  const runAll = async () => {
    const [database, readReplica, queue, objectStore] = await Promise.all([
      checks.database(),
      checks.readReplica(),
      checks.queue(),
      checks.objectStore(),
    ]);
    return { database, readReplica, queue, objectStore };
  };

  app.get("/", async (c) => {
    const database = await checks.database();
    const body = {
      status: database.ok ? "ok" : "unavailable",
      database,
      uptimeSeconds: Math.round((Date.now() - started) / 1000),
    };
    return c.json(body, database.ok ? 200 : 503);
  });
  app.get("/live", (c) => c.json({ status: "ok" }));
  app.get("/ready", async (c) => {
    const all = await runAll();
    const failing = Object.entries(all).filter(([, v]) => !v.ok).map(([k]) => k);
    c.header("Cache-Control", "no-store");
    return failing.length
      ? c.json({ status: "not ready", failing }, 503)
      : c.json({ status: "ready" }, 200);
  });
  app.get("/detailed", async (c) => {
    requireAdmin(c.get("caller"));
    const all = await runAll();
    const postgres = await timed(async () => {
      return { version: await serverVersion(services.db) };
    });
    const depth = await timed(async () => ({ ...(await services.analysis.queue.depth()) }));
    const ok = Object.values(all).every((v) => v.ok);
    c.header("Cache-Control", "no-store");
    return c.json({
      status: ok ? "ready" : "not ready",
      uptimeSeconds: Math.round((Date.now() - started) / 1000),
      versions: {
        deno: Deno.version.deno,
        v8: Deno.version.v8,
        typescript: Deno.version.typescript,
        postgres: postgres.version ?? null,
      },
      checks: { ...all, queueDepth: depth },
    }, ok ? 200 : 503);
  });
  return app;
}
