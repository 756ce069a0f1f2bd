/**
 * @module `GET /events`: live updates as Server-Sent Events. Task changes by default;
 * `?types=Task,DiagnosticReport` and `?focus=ImagingStudy/{id}` filter. Each event is
 * `event: <type>`, `id: <feed position>`, `data: {resourceType, id, versionId, lastUpdated,
 * status, statusReason, focus}`; `Last-Event-ID` (or `?lastEventId=`) resumes after a position.
 */
import { Hono } from "hono";
import type { AppEnv } from "./env.ts";
import { requireAccess } from "../auth/access.ts";
import { badRequest } from "../platform/outcome.ts";
import { isSupportedType } from "../fhir/resource_types.ts";
import type { LiveEvent, LiveEventFilter } from "../fhir/subscriptions/live_events.ts";
import type { Services } from "./env.ts";

export interface EventRouteOptions {
  /** A comment line this often keeps proxies from closing an idle stream (default 15 s). */
  heartbeatMs?: number;
  /** Events a client may fall behind by before it is disconnected (it can resume). */
  maxBacklog?: number;
}

export function eventRoutes(services: Services, options: EventRouteOptions = {}): Hono<AppEnv> {
  const heartbeatMs = options.heartbeatMs ?? 15_000;
  const maxBacklog = options.maxBacklog ?? 10_000;
  const app = new Hono<AppEnv>();
  app.get("/", (c) => {
    const filter = parseFilter(c.req.query("types"), c.req.query("focus"));
    // Each event is a resource of one of the types asked for: reading them must be allowed.
    for (const type of filter.types) requireAccess(c.get("caller"), type, "read");
    const after = parseLastEventId(c.req.header("last-event-id") ?? c.req.query("lastEventId"));
    const encoder = new TextEncoder();
    let done = false;
    let stop = () => {};
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        const write = (text: string) => {
          if (done) return;
          if ((controller.desiredSize ?? 0) < -maxBacklog) return stop(); // it can resume
          controller.enqueue(encoder.encode(text));
        };
        const close = services.events.open(filter, after, (e) => write(format(e)));
        const heartbeat = setInterval(() => write(": heartbeat\n\n"), heartbeatMs);
        Deno.unrefTimer(heartbeat);
        stop = () => {
          if (done) return;
          done = true;
          close();
          clearInterval(heartbeat);
          try {
            controller.close();
          } catch { /* cancelled by the client */ }
        };
        write(": connected\nretry: 3000\n\n");
      },
      cancel() {
        stop(); // the client went away (Deno cancels the body)
      },
    }, { highWaterMark: 0 });
    return c.body(body, 200, {
      "Content-Type": "text/event-stream; charset=utf-8",
      "Cache-Control": "no-cache",
      "X-Accel-Buffering": "no",
    });
  });
  return app;
}

function format(e: LiveEvent): string {
  return `event: ${e.type}\nid: ${e.seq}\ndata: ${JSON.stringify(e.data)}\n\n`;
}

function parseFilter(types: string | undefined, focus: string | undefined): LiveEventFilter {
  const list = (types ?? "Task").split(",").map((t) => t.trim()).filter(Boolean);
  for (const t of list) {
    if (!isSupportedType(t)) throw badRequest(`types: "${t}" is not a supported resource type`);
  }
  if (!list.length) throw badRequest("types: name at least one resource type");
  if (focus !== undefined && !/^[A-Za-z]+\/[A-Za-z0-9\-.]{1,64}$/.test(focus)) {
    throw badRequest(`focus: expected Type/id, got "${focus}"`);
  }
  return { types: new Set(list), focus: focus || undefined };
}

function parseLastEventId(value: string | undefined): number | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  if (!/^\d{1,15}$/.test(value.trim())) {
    throw badRequest(`Last-Event-ID: expected a number from an earlier event, got "${value}"`);
  }
  return Number(value.trim());
}
