/**
 * @module Figures for operators: `GET /admin/stats` (admins: count, error rate and latency
 * percentiles per route class and overall, last hour and last day), `GET /admin/queue` (admins:
 * the analysis queue's depth by state and its latest dead letters) and `GET /metrics`
 * (Prometheus text format), readable by admins or with the scrape token METRICS_TOKEN, and
 * `POST /admin/objects/sweep?olderThanMinutes=60&missing=report|remove` (admins: remove DICOM
 * objects without a row now; report instance rows without an object, or remove them when asked),
 * `GET /admin/forwarding` (admins: the DICOM destinations, their deliveries by state and the
 * delivery log) and `POST /admin/forwarding/retry` (admins: queue dead deliveries again).
 */
import { Hono } from "hono";
import type { AppEnv } from "./env.ts";
import { requireAdmin, unauthorized } from "../auth/access.ts";
import { fhirError } from "../platform/outcome.ts";
import { PROMETHEUS_CONTENT_TYPE } from "../observability/stats.ts";
import type { Services } from "./env.ts";
import type { ForwardState } from "../dicom/forward/forward_repo.ts";
import { OBJECT_SWEEP_MIN_AGE_MS, sweepUnindexedObjects } from "../dicom/sweep.ts";
import { recordDeletion } from "./dicomweb.ts";

export function adminRoutes(services: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.get("/stats", (c) => {
    requireAdmin(c.get("caller"));
    return c.json(services.stats.snapshot(), 200, { "Cache-Control": "no-store" });
  });
  app.get("/queue", async (c) => {
    requireAdmin(c.get("caller"));
    const queue = services.analysis.queue;
    const limit = Math.min(Math.max(Number(c.req.query("dead") ?? 20) || 20, 1), 200);
    const [depth, deadLetters] = await Promise.all([queue.depth(), queue.deadLetters(limit)])
      .catch((e) => {
        throw fhirError(503, "transient", `The analysis queue does not answer: ${e.message ?? e}`);
      });
    return c.json(
      {
        kind: services.config.inference.redisUrl ? "redis" : "in-process",
        depth,
        deadLetters,
      },
      200,
      { "Cache-Control": "no-store" },
    );
  });
  // The DICOM destinations and their delivery log: ?destination=&state=&study=&limit= (newest
  // first); dead deliveries are queued again by POST /admin/forwarding/retry[?destination=&id=].
  app.get("/forwarding", async (c) => {
    requireAdmin(c.get("caller"));
    const q = forwardingFilter(c.req.query(), services);
    const limit = Math.min(Math.max(Number(c.req.query("limit") ?? 50) || 50, 1), 500);
    const [destinations, deliveries] = await Promise.all([
      services.forwarding.summary(),
      services.forwarding.log({ ...q, limit }),
    ]);
    return c.json({ destinations, deliveries }, 200, { "Cache-Control": "no-store" });
  });
  app.post("/forwarding/retry", async (c) => {
    requireAdmin(c.get("caller"));
    const { destination, id } = forwardingFilter(c.req.query(), services);
    const requeued = await services.forwarding.retry({ destination, id });
    return c.json({ requeued }, 200, { "Cache-Control": "no-store" });
  });
  app.post("/objects/sweep", async (c) => {
    requireAdmin(c.get("caller"));
    const raw = c.req.query("olderThanMinutes");
    const minutes = raw === undefined ? OBJECT_SWEEP_MIN_AGE_MS / 60_000 : Number(raw);
    if (!Number.isFinite(minutes) || minutes < 0) {
      throw fhirError(400, "invalid", "olderThanMinutes must be a number of minutes, 0 or more");
    }
    const missing = c.req.query("missing") ?? "report";
    if (missing !== "report" && missing !== "remove") {
      throw fhirError(400, "invalid", "missing must be report (the default) or remove");
    }
    const result = await sweepUnindexedObjects(services, { olderThanMs: minutes * 60_000 });
    // Rows whose object is gone: reported, or removed when asked (an index repair, audited).
    const { deletions, ...rows } = await services.dicom.sweepMissing({
      olderThanMs: minutes * 60_000,
      remove: missing === "remove",
    });
    for (const d of deletions) {
      recordDeletion(services, c, d, "removed by the object sweep, its objects being missing");
    }
    return c.json({ ...result, rowsWithoutObjects: rows }, 200, { "Cache-Control": "no-store" });
  });
  return app;
}

/** `/metrics`: public in routing, so a scraper's static token works; anyone else must be admin. */
export function metricsRoutes(services: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.get("/", async (c) => {
    const header = c.req.header("authorization") ?? "";
    const scrapeToken = services.config.metricsToken;
    if (!(scrapeToken && await sameSecret(header, `Bearer ${scrapeToken}`))) {
      if (!header && services.config.auth.enabled) throw unauthorized("A bearer token is required");
      requireAdmin(await services.auth.authenticate(header || undefined));
    }
    return c.body(services.stats.prometheus(), 200, {
      "Content-Type": PROMETHEUS_CONTENT_TYPE,
      "Cache-Control": "no-store",
    });
  });
  return app;
}

/** The delivery-log filters of /admin/forwarding; 400 on a value that cannot match. */
function forwardingFilter(q: Record<string, string>, services: Services) {
  const destination = q.destination || undefined;
  if (destination && !services.forwarding.destinations.some((d) => d.name === destination)) {
    const names = services.forwarding.destinations.map((d) => d.name).join(", ") || "none";
    throw fhirError(400, "invalid", `destination ${destination} is not configured (${names})`);
  }
  const state = q.state || undefined;
  if (state && !STATES.includes(state as ForwardState)) {
    throw fhirError(400, "invalid", `state must be one of ${STATES.join(", ")}`);
  }
  const id = q.id === undefined ? undefined : Number(q.id);
  if (id !== undefined && !(Number.isSafeInteger(id) && id > 0)) {
    throw fhirError(400, "invalid", "id must be a delivery's id (a positive integer)");
  }
  if (q.study && !/^[0-9]+(\.[0-9]+)*$/.test(q.study)) {
    throw fhirError(400, "invalid", "study must be a Study Instance UID");
  }
  return { destination, state: state as ForwardState | undefined, id, studyUid: q.study };
}

const STATES: ForwardState[] = ["pending", "delivered", "dead", "cancelled"];

/** Compares two strings in time that does not depend on where they differ. */
async function sameSecret(a: string, b: string): Promise<boolean> {
  const digest = async (s: string) =>
    new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(s)));
  const [x, y] = await Promise.all([digest(a), digest(b)]);
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i] ^ y[i];
  return diff === 0;
}
