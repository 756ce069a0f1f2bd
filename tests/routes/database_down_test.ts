/**
 * The API while its database is down, on a private Postgres (`_private_postgres.ts`) it stops and
 * starts: FHIR reads and writes, QIDO-RS and the readiness probe answer 503 with Retry-After and an
 * OperationOutcome (code no-store) that names the database (never 500); STOW-RS answers 503 with
 * 0x0110 and the reason per part and leaves no object; liveness stays 200, and once the server is
 * back the same requests succeed without a restart of the API.
 */
import assert from "node:assert/strict";
import { createApp } from "../../app.ts";
import { loadConfig } from "../../platform/config.ts";
import { createServices } from "../../services.ts";
import { databaseUnavailable } from "../../db/unavailable.ts";
import { encodeMultipartRelated } from "../../dicom/synth/stow.ts";
import { postgresBin, startPrivatePostgres } from "../_private_postgres.ts";
import { sphereStudy } from "../sidecar/_study.ts";
import { ADMIN_PASSWORD, startAuthStack } from "../auth/_auth_harness.ts";

Deno.test("databaseUnavailable() knows connection errors and server shutdowns, not query errors", () => {
  assert.match(databaseUnavailable({ code: "ECONNREFUSED" })!, /refused/);
  assert.match(databaseUnavailable({ code: "CONNECTION_CLOSED" })!, /lost/);
  assert.match(databaseUnavailable({ code: "57P01" })!, /57P01/);
  assert.match(databaseUnavailable({ code: "08006" })!, /08006/);
  assert.match(databaseUnavailable(new Error("x", { cause: { code: "ECONNRESET" } }))!, /lost/);
  assert.equal(databaseUnavailable({ code: "23505" }), null); // unique violation: a real error
  assert.equal(databaseUnavailable({ code: "42P01" }), null);
  assert.equal(databaseUnavailable(new TypeError("bug")), null);
});

Deno.test({
  name: "database down: 503 + Retry-After + OperationOutcome, liveness 200, back by itself",
  ignore: !postgresBin(),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const pg = await startPrivatePostgres();
    const config = loadConfig({
      DATABASE_URL: pg.url,
      DATABASE_POOL_SIZE: "4",
      OBJECT_DIR: await Deno.makeTempDir({ prefix: "objects-" }),
      LOG_LEVEL: "error",
      AUTH: "off",
      AUDIT: "off",
    });
    const services = await createServices(config);
    const app = createApp(services);
    const call = async (method: string, path: string, body?: unknown) => {
      const r = await app.request(path, {
        method,
        headers: body ? { "Content-Type": "application/fhir+json" } : {},
        body: body ? JSON.stringify(body) : undefined,
      });
      const text = await r.text();
      return { status: r.status, headers: r.headers, json: text ? JSON.parse(text) : undefined };
    };
    try {
      const created = await call("POST", "/fhir/Patient", { resourceType: "Patient" });
      assert.equal(created.status, 201);
      const id = created.json.id;
      await pg.stop();
      for (
        const [method, path, body] of [
          ["GET", `/fhir/Patient/${id}`],
          ["GET", "/fhir/Patient?_count=5"],
          ["POST", "/fhir/Patient", { resourceType: "Patient" }],
          ["GET", "/dicomweb/studies"],
        ] as const
      ) {
        const r = await call(method, path, body);
        assert.equal(r.status, 503, `${method} ${path}: ${JSON.stringify(r.json)}`);
        assert.equal(r.headers.get("Retry-After"), "5", `${method} ${path}`);
        assert.equal(r.json.resourceType, "OperationOutcome");
        assert.equal(r.json.issue[0].code, "no-store");
        assert.match(r.json.issue[0].diagnostics, /database/);
      }
      // STOW-RS answers per part (0x0110, the reason) and leaves no object behind.
      const study = sphereStudy({ seed: 61, slices: 3, spheres: [] });
      const multipart = encodeMultipartRelated(study.instances);
      const stow = () =>
        app.request("/dicomweb/studies", {
          method: "POST",
          headers: { "Content-Type": multipart.contentType, Accept: "application/dicom+json" },
          body: multipart.body,
        });
      const refused = await stow();
      assert.equal(refused.status, 503);
      assert.equal(refused.headers.get("Retry-After"), "5");
      const failed = (await refused.json())["00081198"].Value;
      assert.equal(failed.length, 3);
      for (const f of failed) assert.equal(f["00081197"].Value[0], 0x0110);
      assert.match(refused.headers.get("Warning") ?? "", /database is unavailable/);
      assert.deepEqual(await Array.fromAsync(services.store.list("dicom/")), []);
      assert.equal((await app.request("/health/ready")).status, 503);
      assert.equal((await app.request("/health/live")).status, 200);
      await pg.start();
      let back = 0;
      const deadline = Date.now() + 15_000;
      while (Date.now() < deadline) {
        back = (await call("GET", `/fhir/Patient/${id}`)).status;
        if (back === 200) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.equal(back, 200, "the API did not come back with the database");
      assert.equal((await call("POST", "/fhir/Patient", { resourceType: "Patient" })).status, 201);
      const stored = await stow();
      assert.equal(stored.status, 200, await stored.text());
      assert.equal((await Array.fromAsync(services.store.list("dicom/"))).length, 3);
    } finally {
      await services.close?.().catch(() => {});
      await pg.close();
    }
  },
});

Deno.test({
  name:
    "database down with AUTH=on: the token endpoint and authenticated calls answer 503, not 401 or 500",
  ignore: !postgresBin(),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const pg = await startPrivatePostgres();
    const stack = await startAuthStack({ DATABASE_URL: pg.url, DATABASE_POOL_SIZE: "4" });
    try {
      assert.equal(
        (await stack.call("/fhir/Patient?_count=1", { token: stack.tokens.admin })).status,
        200,
      );
      await pg.stop();
      const login = await stack.login("admin", ADMIN_PASSWORD);
      assert.equal(login.status, 503, await login.clone().text());
      assert.equal(login.headers.get("Retry-After"), "5");
      // The token endpoint answers in OAuth's error shape, which OAuth clients parse.
      const oauth = await login.json();
      assert.equal(oauth.error, "temporarily_unavailable");
      assert.match(oauth.error_description, /database is unavailable/);
      const read = await stack.call("/fhir/Patient?_count=1", { token: stack.tokens.admin });
      assert.equal(read.status, 503);
      assert.equal((await read.json()).issue[0].code, "no-store");
      await pg.start();
      let back = 0;
      const deadline = Date.now() + 15_000;
      while (back !== 200 && Date.now() < deadline) {
        const r = await stack.login("admin", ADMIN_PASSWORD);
        back = r.status;
        await r.body?.cancel();
        if (back !== 200) await new Promise((r) => setTimeout(r, 200));
      }
      assert.equal(back, 200, "logins did not come back with the database");
    } finally {
      await stack.close();
      await pg.close();
    }
  },
});
