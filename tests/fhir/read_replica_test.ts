/**
 * DATABASE_READ_URL: FHIR searches go to the read replica, reads by id, histories, conditional
 * criteria and writes to the primary. Shown with two schemas of the real Postgres standing in for
 * a primary and a replica that holds different rows, so where each answer came from is plain.
 */
import assert from "node:assert/strict";
import { createApp } from "../../app.ts";
import { loadConfig } from "../../platform/config.ts";
import { openDb } from "../../db/db.ts";
import { migrate } from "../../db/migrate.ts";
import { createServices } from "../../services.ts";
import { fhirJson, inProcess } from "../_harness.ts";

const DATABASE_URL = Deno.env.get("DATABASE_URL") ?? "";

Deno.test({
  name: `searches use the read replica; reads, history and writes the primary${
    DATABASE_URL ? "" : " [postgres: skipped, DATABASE_URL not set]"
  }`,
  ignore: !DATABASE_URL,
  fn: async () => {
    const stamp = Date.now().toString(36);
    const [primary, replica] = [`t_${stamp}_primary`, `t_${stamp}_replica`];
    // The "replica" is migrated and holds one Patient the primary does not.
    const seed = await openDb({ url: DATABASE_URL, schema: replica, poolSize: 2 });
    await migrate(seed);
    const services = await createServices(
      loadConfig({
        DATABASE_URL,
        DATABASE_READ_URL: DATABASE_URL,
        OBJECT_DIR: await Deno.makeTempDir({ prefix: "objects-replica-" }),
        AUTH: "off",
        LOG_LEVEL: "error",
        INFERENCE_WORKER: "off",
      }),
      { schema: primary, readSchema: replica },
    );
    const app = createApp(services);
    const api = inProcess(app);
    const fhir = (method: string, path: string, body?: unknown) =>
      fhirJson(api, method, path, body);
    try {
      const onReplica = await app.request("/fhir/Patient/on-replica", {
        method: "PUT",
        headers: { "Content-Type": "application/fhir+json" },
        body: JSON.stringify({ resourceType: "Patient", id: "on-replica" }),
      });
      assert.equal(onReplica.status, 201, "the write went to the primary");
      // Seed the replica behind the service's back.
      const seeded = await createServices(
        loadConfig({
          DATABASE_URL,
          OBJECT_DIR: await Deno.makeTempDir(),
          AUTH: "off",
          LOG_LEVEL: "error",
          INFERENCE_WORKER: "off",
        }),
        { schema: replica },
      );
      await createApp(seeded).request("/fhir/Patient/only-replica", {
        method: "PUT",
        headers: { "Content-Type": "application/fhir+json" },
        body: JSON.stringify({ resourceType: "Patient", id: "only-replica" }),
      });
      await seeded.close();

      const search = await fhir("GET", "Patient");
      assert.deepEqual(search.body.entry.map((e: { resource: { id: string } }) => e.resource.id), [
        "only-replica",
      ]);
      const posted = await app.request("/fhir/Patient/_search", {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body: "",
      });
      assert.equal((await posted.json()).total, 1);
      assert.equal((await fhir("GET", "Patient/on-replica")).status, 200, "read: the primary");
      assert.equal((await fhir("GET", "Patient/only-replica")).status, 404);
      const history = (await fhir("GET", "Patient/_history")).body;
      assert.deepEqual(history.entry.map((e: { resource: { id: string } }) => e.resource.id), [
        "on-replica",
      ], "history: the primary");
      // Conditional criteria are matched on the primary (a write must see its own writes).
      const conditional = await fhir("PUT", "Patient?_id=on-replica", {
        resourceType: "Patient",
        id: "on-replica",
        active: true,
      });
      assert.equal(conditional.status, 200, JSON.stringify(conditional.body));
      const ready = await app.request("/health/ready");
      assert.equal(ready.status, 200);
    } finally {
      await services.close();
      for (const schema of [primary, replica]) {
        await seed.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
      }
      await seed.close();
    }
  },
});
