/**
 * @module Exports of a report's findings for people and spreadsheets:
 * `GET /reports/{id}/findings.json` and `GET /reports/{id}/findings.xlsx` (one row per finding).
 */
import { Hono } from "hono";
import type { AppEnv } from "../app.ts";
import { type Caller, requireAccess } from "../auth/access.ts";
import { findingsOf, findingsXlsx } from "../fhir/operations/findings_export.ts";
import type { Services } from "../services.ts";

const ID = "[A-Za-z0-9\\-.]{1,64}";

export function reportRoutes(services: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const ctx = services.fhir.context;
  app.get(`/:id{${ID}}/findings.json`, async (c) => {
    requireFindings(c.get("caller"));
    const data = await findingsOf(ctx, c.req.param("id"));
    return c.json(data, 200, {
      "Content-Disposition": `attachment; filename="findings-${data.report.id}.json"`,
    });
  });
  app.get(`/:id{${ID}}/findings.xlsx`, async (c) => {
    requireFindings(c.get("caller"));
    const data = await findingsOf(ctx, c.req.param("id"));
    const bytes = await findingsXlsx(data);
    return c.body(bytes as Uint8Array<ArrayBuffer>, 200, {
      "Content-Type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
      "Content-Disposition": `attachment; filename="findings-${data.report.id}.xlsx"`,
    });
  });
  return app;
}

/** An export reads the report and its Observations. */
function requireFindings(caller: Caller): void {
  requireAccess(caller, "DiagnosticReport", "read");
  requireAccess(caller, "Observation", "read");
}
