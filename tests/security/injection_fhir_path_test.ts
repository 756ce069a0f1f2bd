/**
 * @module Injection (security) in FHIR paths: U+0000 in the id of a read, vread, history, delete,
 * patch or update path, and history `_page` cursors with out-of-range numbers, answer 404 or 400,
 * never a 5xx, and the audit trail keeps writing.
 */
import { type Backend, context, uniq } from "../_harness.ts";
import { create, tagged } from "../fhir/_util.ts";
import {
  assertAuditWrites,
  assertNoFailures,
  pathProbe,
  type Probe,
  sweep,
  TYPES,
} from "./_injection.ts";

/**
 * U+0000 in the id of a FHIR path, and history `_page` cursors with out-of-range numbers: read,
 * vread, history, delete and patch answer 404 or 400 (fhir/resource_ops.ts, fhir/history.ts), and
 * the audit trail keeps writing (audit/log.ts cleans NUL out of its rows, and a row the database
 * refuses is set aside without holding up the others).
 */
/** History `_page` parts past what a Date or the integer columns hold (fhir/history.ts: 500). */
const PAGE_OVERFLOWS = [
  "99999999999999999999.1.1",
  "1.99999999999999999999.1",
  "1.1.99999999999999999999",
];
for (const backend of ["pglite", "postgres"] as Backend[]) {
  const noDb = backend === "postgres" && !Deno.env.get("DATABASE_URL");
  Deno.test({
    name: noDb
      ? `injection: U+0000 in a FHIR path id and history _page overflows [postgres: skipped, ` +
        `DATABASE_URL not set]`
      : `injection: U+0000 in a FHIR path id and history _page overflows answer < 500, and the ` +
        `audit trail still writes [${backend}]`,
    ignore: noDb,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      const ctx = await context(backend);
      const p = await create(ctx, { resourceType: "Patient", meta: tagged(uniq("nul")) });
      const probes: Probe[] = [];
      for (const type of TYPES) {
        for (const id of ["%00", "a%00b"]) {
          for (
            const path of [`${type}/${id}`, `${type}/${id}/_history`, `${type}/${id}/_history/1`]
          ) {
            probes.push(pathProbe(ctx, "GET", path));
          }
          probes.push(pathProbe(ctx, "DELETE", `${type}/${id}`));
          probes.push(pathProbe(ctx, "PATCH", `${type}/${id}`));
          probes.push(pathProbe(ctx, "PUT", `${type}/${id}`));
        }
      }
      probes.push(pathProbe(ctx, "GET", `Patient/${p.id}/_history/%00`));
      for (const page of PAGE_OVERFLOWS) {
        for (const path of ["_history", "Patient/_history", `Patient/${p.id}/_history`]) {
          probes.push(pathProbe(ctx, "GET", `${path}?_page=${page}`));
        }
      }
      const failures = await sweep(probes);
      assertNoFailures(failures, probes.length, "paths with U+0000");
      await assertAuditWrites(ctx);
    },
  });
}
