/**
 * @module The sidecar's `GET /health`: status, the models loaded (name, version, execution
 * provider), the provider in use, uptime, memory, the queue's depth and the jobs done and failed.
 * 200 when the queue answers and a model is loaded, else 503 with status `degraded`.
 */
import type { LoadedModel } from "./analysis.ts";
import type { JobQueue } from "../queue/queue.ts";
import type { Sidecar } from "./sidecar.ts";

export interface HealthDeps {
  queue: JobQueue;
  models: ReadonlyMap<string, LoadedModel>;
  sidecar: Pick<Sidecar, "stats" | "consumer">;
  /** performance.now() or Date.now() at start (ms). */
  startedAt: number;
  now?: () => number;
}

export function createHealthHandler(deps: HealthDeps): (request: Request) => Promise<Response> {
  const now = deps.now ?? Date.now;
  return async (request) => {
    const { pathname } = new URL(request.url);
    if (pathname !== "/health" && pathname !== "/health/") {
      return Response.json({ error: `No route for ${request.method} ${pathname}` }, {
        status: 404,
      });
    }
    if (request.method !== "GET" && request.method !== "HEAD") {
      return Response.json({ error: "GET only" }, { status: 405, headers: { Allow: "GET, HEAD" } });
    }
    let queue: unknown;
    let queueOk = false;
    try {
      queueOk = await deps.queue.ping();
      queue = queueOk ? await deps.queue.depth() : { error: "the queue does not answer" };
    } catch (e) {
      queue = { error: (e as Error).message };
    }
    const models = [...deps.models.values()].map((m) => ({
      name: m.manifest.name,
      version: m.manifest.version,
      provider: m.runner.provider,
    }));
    const providers = [...new Set(models.map((m) => m.provider))];
    const ok = queueOk && models.length > 0;
    const { current, ...jobs } = deps.sidecar.stats;
    const body = {
      status: ok ? "ok" : "degraded",
      consumer: deps.sidecar.consumer,
      models,
      provider: providers.length === 1 ? providers[0] : providers.length ? providers : null,
      uptimeSeconds: Math.round((now() - deps.startedAt) / 1000),
      memory: Deno.memoryUsage(),
      queue,
      jobs: { ...jobs, current: current ?? null },
    };
    return Response.json(body, {
      status: ok ? 200 : 503,
      headers: { "Cache-Control": "no-store" },
    });
  };
}
