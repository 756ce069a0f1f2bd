/**
 * @module createApp(services): the Hono app. Every route is mounted here; one onError turns every
 * error into an OperationOutcome (a 500 names the request id and never shows a stack).
 */
import { Hono } from "hono";
import { fhirError, toFhirError } from "./fhir/outcome.ts";
import { FHIR_JSON, fhirRoutes } from "./routes/fhir.ts";
import { healthRoutes } from "./routes/health.ts";
import type { Services } from "./services.ts";

export type AppEnv = { Variables: { requestId: string } };

export function createApp(services: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.use("*", async (c, next) => {
    const requestId = c.req.header("x-request-id")?.slice(0, 128) || crypto.randomUUID();
    c.set("requestId", requestId);
    await next();
    c.header("X-Request-Id", requestId);
  });
  app.route("/health", healthRoutes(services));
  app.route("/fhir", fhirRoutes(services));
  app.notFound((c) => {
    const err = fhirError(
      404,
      "not-found",
      `No route for ${c.req.method} ${new URL(c.req.url).pathname}`,
    );
    return c.body(JSON.stringify(err.outcome), 404, { "Content-Type": FHIR_JSON });
  });
  app.onError((error, c) => {
    const requestId = c.get("requestId");
    const err = toFhirError(error, requestId);
    if (err.status >= 500) {
      console.error(
        JSON.stringify({
          level: "error",
          requestId,
          msg: String(error),
          stack: (error as Error).stack,
        }),
      );
    }
    return c.body(JSON.stringify(err.outcome), err.status as 400, {
      "Content-Type": FHIR_JSON,
      "X-Request-Id": requestId,
    });
  });
  return app;
}
