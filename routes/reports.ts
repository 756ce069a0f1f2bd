/**
 * @module Exports of a report's findings for people and spreadsheets:
 * `GET /reports/{id}/findings.json` and `GET /reports/{id}/findings.xlsx` (one row per finding).
 */
import { Hono } from "hono";
import type { AppEnv } from "./env.ts";
import { type Caller, compartmentFor } from "../auth/access.ts";
import type { FhirContext } from "../fhir/context.ts";
import { findingsOf, findingsXlsx } from "../analysis/findings_export.ts";
import type { Services } from "./env.ts";

const ID = "[A-Za-z0-9\\-.]{1,64}";

export function reportRoutes(services: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const ctx = services.fhir.context;
  app.get(`/:id{${ID}}/findings.json`, async (c) => {
    const data = await findingsOf(readAs(ctx, c.get("caller")), c.req.param("id"));
    return c.json(data, 200, {
      "Content-Disposition": `attachment; filename="findings-${data.report.id}.json"`,
    });
  });
  app.get(`/:id{${ID}}/findings.xlsx`, async (c) => {
    const data = await findingsOf(readAs(ctx, c.get("caller")), c.req.param("id"));
    const bytes = await findingsXlsx(data);
    return c.body(bytes as Uint8Array<ArrayBuffer>, 200, {
      "Content-Type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
      "Content-Disposition": `attachment; filename="findings-${data.report.id}.xlsx"`,
    });
  });
  return app;
}

/**
 * An export reads the report and its Observations (403 unless the caller may). A token bound to a
 * patient reads them as itself, so another patient's report is not found and only its own
 * patient's Observations are listed; other callers' reads need no search scope of their own.
 */
function readAs(ctx: FhirContext, caller: Caller): FhirContext {
  const limited = [
    compartmentFor(caller, "DiagnosticReport", "read"),
    compartmentFor(caller, "Observation", "read"),
  ].some((patient) => patient !== undefined);
  return limited ? { ...ctx, caller } : ctx;
}
