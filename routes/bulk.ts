/**
 * @module HTTP of FHIR Bulk Data Access (v2.0.0) `$export`, mounted at /fhir before the FHIR API:
 * the kick-off at `[base]/$export` (system), `[base]/Patient/$export` (every patient's
 * compartment) and `[base]/Group/{id}/$export` (its Patient members' compartments), GET or POST
 * with a Parameters body, `Prefer: respond-async`; the status at `[base]/$export-status/{id}` (202
 * with X-Progress while it runs, 200 with the manifest, DELETE to cancel) and the files at
 * `[base]/$export-file/{id}/{Type-n}.ndjson` (`Bundle-deleted-n.ndjson`: the deleted list), all under the same bearer token, its caller's only.
 */
import { Hono } from "hono";
import type { Context } from "hono";
import type { AppEnv, Services } from "./env.ts";
import type { ExportLevel } from "../fhir/bulk/model.ts";
import { NDJSON } from "../fhir/bulk/model.ts";
import { readBoundedText } from "../platform/body.ts";
import { fhirError, informational, outcome } from "../platform/outcome.ts";

const FHIR_JSON = "application/fhir+json; charset=utf-8";
const JSON_TYPES = ["application/fhir+json", "application/json", "application/json+fhir"];
const ID = "[0-9a-f-]{36}";
/** How soon a client should ask again while a job runs. */
const RETRY_AFTER_SECONDS = "1";

export function bulkRoutes(services: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const kickOff = async (c: Context<AppEnv>, level: ExportLevel, group?: string) => {
    const url = new URL(c.req.url);
    const method = c.req.method.toUpperCase();
    const body = method === "POST" ? await parametersBody(c, services) : undefined;
    const id = await services.bulk.kickOff({
      level,
      group,
      method,
      query: [...url.searchParams],
      body,
      prefer: c.req.header("prefer"),
      caller: c.get("caller"),
      requestUrl: `${services.config.publicUrl}${url.pathname}${url.search}`,
    });
    const status = services.bulk.statusUrl(id);
    return c.body(
      JSON.stringify(informational(`Export ${id} started; follow it at ${status}`)),
      202,
      { "Content-Location": status, "Content-Type": FHIR_JSON },
    );
  };
  for (const method of ["GET", "POST"] as const) {
    const on = method === "GET" ? app.get.bind(app) : app.post.bind(app);
    on("/$export", (c) => kickOff(c, "system"));
    on("/Patient/$export", (c) => kickOff(c, "patient"));
    // (A pattern on :id would keep Hono from matching the `$` after it: the id is checked here.)
    on("/Group/:id/$export", (c) => {
      const id = c.req.param("id");
      if (!/^[A-Za-z0-9\-.]{1,64}$/.test(id)) {
        throw fhirError(404, "not-found", `Group/${id} not found`);
      }
      return kickOff(c, "group", id);
    });
  }

  app.get(`/$export-status/:id{${ID}}`, async (c) => {
    const status = await services.bulk.status(c.get("caller"), c.req.param("id"));
    if (status.state === "in-progress") {
      return c.body(null, 202, {
        "X-Progress": status.progress,
        "Retry-After": RETRY_AFTER_SECONDS,
      });
    }
    if (status.state === "failed") {
      return c.body(
        JSON.stringify(outcome("error", "exception", `The export failed: ${status.message}`)),
        500,
        { "Content-Type": FHIR_JSON },
      );
    }
    const headers: Record<string, string> = { "Content-Type": "application/json" };
    if (status.expires) headers["Expires"] = new Date(status.expires).toUTCString();
    return c.body(JSON.stringify(status.manifest), 200, headers);
  });

  app.delete(`/$export-status/:id{${ID}}`, async (c) => {
    await services.bulk.cancel(c.get("caller"), c.req.param("id"));
    return c.body(
      JSON.stringify(informational(`Export ${c.req.param("id")} cancelled; its files are removed`)),
      202,
      { "Content-Type": FHIR_JSON },
    );
  });

  app.get(
    `/$export-file/:id{${ID}}/:name{[A-Za-z]{1,64}(-deleted)?-[0-9]{1,9}\\.ndjson}`,
    async (c) => {
      const stream = await services.bulk.file(
        c.get("caller"),
        c.req.param("id"),
        c.req.param("name"),
      );
      return c.body(stream, 200, { "Content-Type": NDJSON });
    },
  );
  return app;
}

/** A POST kick-off's body: a Parameters resource, or nothing. */
async function parametersBody(c: Context<AppEnv>, services: Services): Promise<unknown> {
  const text = await readBoundedText(c.req.raw, services.config.fhirMaxBodyBytes);
  if (!text.trim()) return undefined;
  const contentType = (c.req.header("content-type") ?? "").split(";")[0].trim().toLowerCase();
  if (!JSON_TYPES.includes(contentType)) {
    throw fhirError(
      415,
      "not-supported",
      `Content-Type must be application/fhir+json, got "${contentType || "none"}"`,
    );
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw fhirError(400, "invalid", `The body is not JSON: ${(e as Error).message}`);
  }
}
