/**
 * @module createApp(services): the Hono app. Every route is mounted here; one onError turns every
 * error into an OperationOutcome (a 500 names the request id and never shows a stack).
 */
import { dependencyFault, RETRY_AFTER_SECONDS } from "./db/unavailable.ts";
import { Hono } from "hono";
import { cors } from "hono/cors";
import { secureHeaders } from "hono/secure-headers";
import { compress } from "hono/compress";

/** What is worth compressing: JSON of any kind and NDJSON (not DICOM, images or event streams). */
const COMPRESSIBLE = /^\s*application\/(?:[\w.+-]+\+)?(?:json|ndjson)(?:[;\s]|$)/i;
import { fhirError, toFhirError } from "./platform/outcome.ts";
import { FHIR_JSON, fhirRoutes } from "./routes/fhir.ts";
import { healthRoutes } from "./routes/health.ts";
import { dicomwebRoutes } from "./routes/dicomweb.ts";
import { uploadRoutes } from "./routes/uploads.ts";
import { reportRoutes } from "./routes/reports.ts";
import { eventRoutes } from "./routes/events.ts";
import { bulkRoutes } from "./routes/bulk.ts";
import { HttpError } from "./platform/http_error.ts";
import type { Services } from "./services.ts";
import { AuthError, type Caller } from "./auth/access.ts";
import {
  addressOf,
  authRoutes,
  openidConfiguration,
  openidConfigurationPath,
  smartConfiguration,
  wellKnownRoutes,
} from "./routes/auth.ts";
import { authorizeRoutes } from "./routes/authorize.ts";
import { describeRequest } from "./audit/rest.ts";
import { RateLimited, routeClassOf } from "./ratelimit/limits.ts";
import { routeClass } from "./observability/stats.ts";
import { annotateRequest } from "./observability/tracing.ts";
import { adminRoutes, metricsRoutes } from "./routes/admin.ts";
import { isUiPath, uiRoutes } from "./routes/ui.ts";
import type { AppEnv } from "./routes/env.ts";

export type { AppEnv } from "./routes/env.ts";

/**
 * Routes anyone may call: liveness and readiness, the CapabilityStatement, discovery documents,
 * the token and revocation endpoints (which authenticate their own callers), and the web UI's
 * shell and static assets.
 */
export function isPublic(method: string, path: string): boolean {
  // Probes are public; /health/detailed (latencies, errors, versions) is for admins.
  if (path === "/health" || path.startsWith("/health/")) {
    return method === "GET" && path !== "/health/detailed";
  }
  if (
    path.startsWith("/.well-known/") || path.startsWith("/fhir/.well-known/") ||
    path.startsWith("/auth/.well-known/")
  ) return true;
  // SMART App Launch: the authorization endpoint's pages, sign-out and introspection check their
  // own callers (a browser session and CSRF token, or client authentication).
  if (path === "/auth/authorize") return method === "GET" || method === "POST";
  if (path === "/auth/logout" || path === "/auth/introspect") return method === "POST";
  if (path === "/fhir/metadata") return method === "GET" || method === "HEAD";
  // /metrics checks its own callers (a scrape token or an admin).
  if (path === "/metrics") return method === "GET";
  // The web UI's shell and assets (its API calls carry the bearer token like any other).
  if ((method === "GET" || method === "HEAD") && isUiPath(path)) return true;
  return method === "POST" && (path === "/auth/token" || path === "/auth/revoke");
}

export function createApp(services: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  // Outermost: every answer, errors included, is counted with its latency and route class,
  // logged as one JSON line (ACCESS_LOG) and described on its trace span (when tracing is on).
  const accessLog = services.config.accessLog;
  app.use("*", async (c, next) => {
    const started = performance.now();
    try {
      await next();
    } finally {
      const ms = performance.now() - started;
      const route = routeClass(c.req.method, c.req.path);
      const status = c.res.status;
      services.stats.record({ routeClass: route, method: c.req.method, status, ms });
      const caller = c.get("caller");
      const who = caller ? `${caller.kind}:${caller.sub}` : undefined;
      const requestId = c.get("requestId");
      if (accessLog) {
        // 503 and 507: a dependency is down or full (answered, with Retry-After), not our fault.
        const expected = status === 503 || status === 507;
        services.log(expected ? "warn" : status >= 500 ? "error" : "info", "request", {
          requestId,
          method: c.req.method,
          route,
          status,
          ms: Math.round(ms * 100) / 100,
          ...(who ? { caller: who } : {}),
        });
      }
      annotateRequest({
        "http.route": route,
        "request.id": requestId ?? "",
        ...(who ? { "enduser.id": who } : {}),
      });
    }
  });
  app.use("*", async (c, next) => {
    const requestId = c.req.header("x-request-id")?.slice(0, 128) || crypto.randomUUID();
    c.set("requestId", requestId);
    try {
      await next();
    } catch (e) {
      throw e instanceof Error ? e : new Error(String(e));
    }
    c.header("X-Request-Id", requestId);
  });
  app.use(
    "*",
    secureHeaders({
      // An API: nothing here is framed or sniffed; HSTS only when served over https.
      strictTransportSecurity: services.config.publicUrl.startsWith("https:")
        ? "max-age=31536000; includeSubDomains"
        : false,
      crossOriginResourcePolicy: false,
      crossOriginOpenerPolicy: false,
      originAgentCluster: false,
      xDnsPrefetchControl: false,
      xDownloadOptions: false,
      xPermittedCrossDomainPolicies: false,
      xXssProtection: false,
      referrerPolicy: "no-referrer",
      xFrameOptions: "DENY",
      xContentTypeOptions: "nosniff",
    }),
  );
  const origins = services.config.auth.corsOrigins;
  if (origins.length) {
    app.use(
      "*",
      cors({
        origin: origins.includes("*") ? "*" : origins,
        allowHeaders: [
          "Authorization",
          "Content-Type",
          "Accept",
          "If-Match",
          "If-None-Exist",
          "If-None-Match",
          "Prefer",
          "X-Request-Id",
          "Last-Event-ID",
        ],
        allowMethods: ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        exposeHeaders: [
          "Location",
          "Content-Location",
          "ETag",
          "Last-Modified",
          "Warning",
          "X-Request-Id",
          "WWW-Authenticate",
          "Retry-After",
          "X-Progress",
          "X-Security-Context",
        ],
        maxAge: 600,
      }),
    );
  }
  // JSON (FHIR, DICOM JSON, NDJSON) gzip-compressed for clients that accept it: a
  // CapabilityStatement of 145 types is ~700 KB, a series' metadata megabytes. hono/compress
  // leaves small bodies, event streams, multipart and images as they are.
  for (const path of ["/fhir/*", "/dicomweb/*"]) {
    app.use(path, compress({ contentTypeFilter: COMPRESSIBLE }));
  }
  app.use("*", async (c, next) => {
    const path = c.req.path;
    // (CORS preflights never get here: the cors middleware above answers them.)
    if (isPublic(c.req.method, path)) return await next();
    let caller: Caller | undefined;
    let status = 500;
    try {
      caller = await services.auth.authenticate(c.req.header("authorization"));
      c.set("caller", caller);
      if (caller.kind !== "internal") {
        await services.limits.check(
          `${caller.kind}:${caller.sub}`,
          routeClassOf(c.req.method, path),
        );
      }
      await next();
      status = c.res.status;
    } catch (e) {
      status = (e as { status?: number }).status ?? dependencyFault(e)?.status ?? 500;
      throw e;
    } finally {
      // Every access, allowed or not, leaves an AuditEvent (written in batches, off this path).
      services.audit.record({
        ...describeRequest(c.req.method, path, queryOf(c.req.url)),
        status,
        agent: caller
          ? { kind: caller.kind, id: caller.sub, name: caller.name ?? caller.clientId }
          : { kind: "anonymous", id: "anonymous" },
        address: addressOf(c, services.config.auth.trustedProxies),
        requestId: c.get("requestId"),
      });
    }
  });
  app.route("/health", healthRoutes(services));
  app.route("/auth", authRoutes(services));
  app.route("/auth", authorizeRoutes(services));
  app.route("/admin", adminRoutes(services));
  app.route("/metrics", metricsRoutes(services));
  app.route("/.well-known", wellKnownRoutes(services));
  app.get("/fhir/.well-known/smart-configuration", (c) => c.json(smartConfiguration(services)));
  // OpenID Connect Discovery at the issuer (AUTH_ISSUER, by default PUBLIC_URL + /auth).
  const openid = openidConfigurationPath(services);
  if (openid) app.get(openid, (c) => c.json(openidConfiguration(services)));
  // Bulk Data $export (its kick-off, status and files) before the FHIR API's catch-all.
  app.route("/fhir", bulkRoutes(services));
  app.route("/fhir", fhirRoutes(services));
  app.route("/dicomweb", dicomwebRoutes(services));
  app.route("/uploads", uploadRoutes(services));
  app.route("/reports", reportRoutes(services));
  app.route("/events", eventRoutes(services));
  app.route("/", uiRoutes());
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
    const down = error instanceof HttpError ? null : dependencyFault(error);
    const err = error instanceof HttpError
      ? fhirError(error.status, issueCode(error.status), error.message)
      : down
      ? fhirError(
        down.status,
        "no-store",
        `The ${down.dependency} is unavailable (${down.reason}); try again ${
          down.status === 507 ? "once it has room" : "in a few seconds"
        } (request id ${requestId})`,
      )
      : toFhirError(error, requestId);
    if (down) c.header("Retry-After", String(RETRY_AFTER_SECONDS));
    if (
      error instanceof HttpError || error instanceof AuthError || error instanceof RateLimited
    ) {
      for (const [k, v] of Object.entries(error.headers)) c.header(k, v);
    }
    if (err.status === 503 || err.status === 507) {
      // A dependency is down (the queue, say): expected, answered, not a bug to trace.
      console.error(JSON.stringify({ level: "warn", requestId, msg: String(error) }));
    } else if (err.status >= 500) {
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

function issueCode(status: number) {
  switch (status) {
    case 404:
      return "not-found" as const;
    case 406:
    case 415:
      return "not-supported" as const;
    case 413:
      return "too-long" as const;
    case 409:
      return "conflict" as const;
    default:
      return "invalid" as const;
  }
}

/** The `?…` of a URL without parsing the rest of it. */
function queryOf(url: string): string {
  const q = url.indexOf("?");
  return q < 0 ? "" : url.slice(q, url.includes("#", q) ? url.indexOf("#", q) : undefined);
}
