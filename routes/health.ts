/** @module `/health`: liveness, and readiness (the database answers and is migrated). */
import { Hono } from "hono";
import type { AppEnv } from "../app.ts";
import type { Services } from "../services.ts";

export function healthRoutes(services: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const started = Date.now();
  app.get("/", async (c) => {
    const t0 = performance.now();
    try {
      const rows = await services.db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM schema_migration`,
      );
      return c.json({
        status: "ok",
        database: {
          kind: services.db.kind,
          migrations: Number(rows[0].n),
          latencyMs: +(performance.now() - t0).toFixed(2),
        },
        uptimeSeconds: Math.round((Date.now() - started) / 1000),
      });
    } catch (e) {
      return c.json({
        status: "unavailable",
        database: { kind: services.db.kind, error: (e as Error).message },
      }, 503);
    }
  });
  app.get("/live", (c) => c.json({ status: "ok" }));
  return app;
}
