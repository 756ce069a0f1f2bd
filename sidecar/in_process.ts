/**
 * @module The embedded default's worker: the same sidecar, running inside the API process with
 * the in-process queue, calling the API in-process (the app's own `fetch`, no network). It files
 * results through the FHIR API exactly as a separate sidecar does.
 */
import type { Config } from "../platform/config.ts";
import { createApiClient } from "./api_client.ts";
import type { Logger } from "../platform/log.ts";
import { closeModels, loadModels } from "./model_registry.ts";
import type { JobQueue } from "../queue/queue.ts";
import { createSidecar, type Sidecar } from "./sidecar.ts";

export interface InProcessWorker {
  sidecar: Sidecar;
  stop(): Promise<void>;
}

/** Starts the worker when the config asks for it (`auto`: only with the in-process queue). */
export async function startInProcessWorker(deps: {
  config: Readonly<Config>;
  queue: JobQueue;
  log: Logger;
  /** The app's fetch: requests go to the API without leaving the process. */
  appFetch: (request: Request) => Response | Promise<Response>;
  /** A fresh access token for the worker (the service mints its own; see auth/service.ts). */
  token?: () => Promise<string>;
}): Promise<InProcessWorker | undefined> {
  const c = deps.config.inference;
  const wanted = c.inProcessWorker === "on" || (c.inProcessWorker === "auto" && !c.redisUrl);
  if (!wanted) return undefined;
  const models = await loadModels(c.modelsDir, c.providers, deps.log, { threads: c.threads });
  const api = createApiClient({
    baseUrl: deps.config.publicUrl,
    token: c.token,
    tokenProvider: deps.token && (() => deps.token!()),
    fetch: ((input: string | URL | Request, init?: RequestInit) =>
      Promise.resolve(deps.appFetch(new Request(input, init)))) as typeof fetch,
  });
  const sidecar = createSidecar({
    queue: deps.queue,
    api,
    models,
    log: deps.log,
    visibilityMs: c.visibilityMs,
    consumer: `in-process-${Deno.pid}`,
  });
  sidecar.start();
  deps.log("info", "in-process analysis worker started", { models: [...models.keys()] });
  return {
    sidecar,
    async stop() {
      await sidecar.stop();
      await closeModels(models);
    },
  };
}
