/**
 * @module The sidecar's entry point (`deno task sidecar`): config → the job queue (Redis
 * Streams) → the models → the work loop → `GET /health` on SIDECAR_PORT. SIGTERM and SIGINT stop
 * it gracefully: the current job finishes (or is handed back), then the queue is closed.
 */
import { loadConfigOrExit } from "../platform/config.ts";
import { createApiClient } from "./api_client.ts";
import { clientCredentials, readPrivateJwk } from "./client_credentials.ts";
import { WORKER_SCOPE } from "../queue/jobs.ts";
import { createHealthHandler } from "./health.ts";
import { createLogger } from "../platform/log.ts";
import { closeModels, loadModels } from "./model_registry.ts";
import { createJobQueue, queuePrefix, queueSettings } from "../queue/factory.ts";
import { createSidecar } from "./sidecar.ts";
import { markTaskFailed } from "./task_client.ts";

if (import.meta.main) {
  const config = loadConfigOrExit(Deno.env.toObject());
  const startedAt = Date.now();
  const c = config.inference;
  const log = createLogger(config.logLevel);
  if (!c.redisUrl) {
    log(
      "warn",
      "REDIS_URL is not set: this sidecar reads an in-process queue that no API can reach",
    );
  }
  const api = createApiClient({
    baseUrl: c.apiUrl,
    token: c.token,
    tokenProvider: c.clientId
      ? clientCredentials({
        tokenUrl: `${new URL(c.apiUrl).origin}/auth/token`,
        discoveryUrl: `${new URL(c.apiUrl).origin}/.well-known/smart-configuration`,
        clientId: c.clientId,
        privateJwk: await readPrivateJwk(c.privateKey),
        scope: WORKER_SCOPE,
      })
      : undefined,
  });
  const queue = await createJobQueue({
    ...queueSettings(c),
    onError: (e: unknown) => log("error", "queue error", { error: String(e) }),
    // A job whose every delivery timed out (its sidecars died) ends here: its Task fails.
    onExpired: (job, reason) => {
      const ctx = { jobId: job.jobId, taskId: job.taskId, requestId: job.requestId };
      log("error", "job dead-lettered: no delivery was acknowledged", { ...ctx, reason });
      markTaskFailed(api, job, reason).catch((e) =>
        log("error", "could not mark the Task failed", { ...ctx, error: String(e) })
      );
    },
  });
  const models = await loadModels(c.modelsDir, c.providers, log, { threads: c.threads });
  if (!models.size) {
    log("error", `no model could be loaded from ${c.modelsDir}`);
    await queue.close();
    Deno.exit(1);
  }
  const sidecar = createSidecar({
    queue,
    api,
    models,
    log,
    visibilityMs: c.visibilityMs,
    // SIGTERM lets the current job finish for as long as the API gives its requests.
    stopGraceMs: config.shutdownGraceSeconds * 1000,
  });
  sidecar.start();
  const server = Deno.serve({
    port: c.sidecarPort,
    hostname: config.host,
    onListen: ({ hostname, port }) =>
      log("info", "sidecar listening", {
        health: `http://${hostname}:${port}/health`,
        api: c.apiUrl,
        queue: c.redisUrl ? `${queuePrefix(c)}:*` : "in-process",
      }),
  }, createHealthHandler({ queue, models, sidecar, startedAt }));
  let stopping = false;
  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    log("info", "stopping");
    await sidecar.stop();
    await server.shutdown();
    await closeModels(models);
    await queue.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", shutdown);
  Deno.addSignalListener("SIGTERM", shutdown);
}
