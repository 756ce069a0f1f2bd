/**
 * @module Migration 020: sidecar clients registered with the worker's scopes of before Provenance
 * (they may create reports and Observations) are given `system/Provenance.crs`, so an upgrade does
 * not fail their jobs; other clients are left as they are, and running it again adds nothing.
 */
import assert from "node:assert/strict";
import { openDb } from "../../db/db.ts";
import { migrate, readMigrations } from "../../db/migrate.ts";

const OLD_WORKER = "system/ImagingStudy.crs system/Patient.rs system/Task.rus system/Device.rs " +
  "system/DiagnosticReport.crus system/Observation.crus system/DocumentReference.crus";

Deno.test("migration 020 gives registered worker clients system/Provenance.crs", async () => {
  const db = await openDb({});
  try {
    const all = await readMigrations();
    const at = all.findIndex((m) => m.name === "worker_provenance_scope");
    assert.ok(at > 0);
    await migrate(db, all.slice(0, at));
    const clients: [string, string][] = [
      ["old-sidecar", OLD_WORKER],
      ["v1-sidecar", "system/DiagnosticReport.write system/Observation.write system/Task.read"],
      ["reader", "system/*.rs"],
      ["reports-only", "system/DiagnosticReport.crus"],
      ["has-it", `${OLD_WORKER} system/Provenance.rs`],
    ];
    for (const [id, scope] of clients) {
      await db.query(
        `INSERT INTO auth_client (client_id, jwks, scope) VALUES ($1, '{"keys":[]}'::jsonb, $2)`,
        [id, scope],
      );
    }
    await migrate(db, all);
    const scopes = new Map(
      (await db.query<{ client_id: string; scope: string }>(
        "SELECT client_id, scope FROM auth_client",
      )).map((r) => [r.client_id, r.scope]),
    );
    assert.equal(scopes.get("old-sidecar"), `${OLD_WORKER} system/Provenance.crs`);
    assert.match(scopes.get("v1-sidecar")!, / system\/Provenance\.crs$/);
    assert.equal(scopes.get("reader"), "system/*.rs");
    assert.equal(scopes.get("reports-only"), "system/DiagnosticReport.crus");
    assert.equal(scopes.get("has-it"), `${OLD_WORKER} system/Provenance.rs`);
    // Applied once: a second run of the migrations changes nothing.
    await migrate(db, all);
    const again = await db.query<{ scope: string }>(
      "SELECT scope FROM auth_client WHERE client_id = 'old-sidecar'",
    );
    assert.equal(again[0].scope, `${OLD_WORKER} system/Provenance.crs`);
  } finally {
    await db.close();
  }
});
