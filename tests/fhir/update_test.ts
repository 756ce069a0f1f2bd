import assert from "node:assert/strict";
import { backendTest, fhirJson, uniq } from "../_harness.ts";
import { assertOutcome, create } from "./_util.ts";

backendTest(
  "update ignores a stale meta.versionId in the body when there is no If-Match",
  async (ctx) => {
    const p = await create(ctx, { resourceType: "Patient" });
    const v2 = await fhirJson(ctx, "PUT", `Patient/${p.id}`, { ...p, gender: "male" });
    assert.equal(v2.status, 200);
    const v3 = await fhirJson(ctx, "PUT", `Patient/${p.id}`, { ...p, gender: "female" });
    assert.equal(v3.status, 200);
    assert.equal(v3.body.meta.versionId, "3");
    assert.equal(v3.body.gender, "female");
  },
);

backendTest("update ignores a client-supplied meta.lastUpdated", async (ctx) => {
  const p = await create(ctx, { resourceType: "Patient" });
  const res = await fhirJson(ctx, "PUT", `Patient/${p.id}`, {
    ...p,
    meta: { ...p.meta, lastUpdated: "2001-01-01T00:00:00Z" },
  });
  assert.equal(res.status, 200);
  assert.ok(Date.parse(res.body.meta.lastUpdated) >= Date.parse(p.meta.lastUpdated));
});

backendTest("an update with no change still answers 200 with the current resource", async (ctx) => {
  const p = await create(ctx, { resourceType: "Patient", gender: "male" });
  const res = await fhirJson(ctx, "PUT", `Patient/${p.id}`, p);
  assert.equal(res.status, 200);
  assert.equal(res.body.gender, "male");
  assert.equal(res.headers.get("etag"), `W/"${res.body.meta.versionId}"`);
});

backendTest(
  "Prefer: return=OperationOutcome on create answers 201 with an outcome and Location",
  async (ctx) => {
    const res = await fhirJson(ctx, "POST", "Patient", { resourceType: "Patient" }, {
      prefer: "return=OperationOutcome",
    });
    assert.equal(res.status, 201);
    assertOutcome(res.body);
    assert.match(res.headers.get("location") ?? "", /\/Patient\/[^/]+\/_history\/1$/);
  },
);

backendTest(
  "conditional update whose body id differs from the single match is 400",
  async (ctx) => {
    const u = uniq();
    const ident = [{ system: "urn:test:cu", value: u }];
    const p = await create(ctx, { resourceType: "Patient", identifier: ident });
    const res = await fhirJson(
      ctx,
      "PUT",
      `Patient?identifier=${encodeURIComponent(`urn:test:cu|${u}`)}`,
      { resourceType: "Patient", id: uniq(), identifier: ident },
    );
    assert.equal(res.status, 400);
    assertOutcome(res.body);
    const read = await fhirJson(ctx, "GET", `Patient/${p.id}`);
    assert.equal(read.body.meta.versionId, "1");
  },
);

backendTest("conditional update with the matching id in the body updates it", async (ctx) => {
  const u = uniq();
  const ident = [{ system: "urn:test:cu", value: u }];
  const p = await create(ctx, { resourceType: "Patient", identifier: ident });
  const res = await fhirJson(
    ctx,
    "PUT",
    `Patient?identifier=${encodeURIComponent(`urn:test:cu|${u}`)}`,
    { resourceType: "Patient", id: p.id, identifier: ident, gender: "other" },
  );
  assert.equal(res.status, 200);
  assert.equal(res.body.id, p.id);
  assert.equal(res.body.meta.versionId, "2");
});

backendTest(
  "If-None-Exist with an unknown search parameter is rejected, creating nothing",
  async (ctx) => {
    const u = uniq();
    const res = await fhirJson(
      ctx,
      "POST",
      "Patient",
      { resourceType: "Patient", name: [{ family: u }] },
      { "if-none-exist": `bogusparam=${u}` },
    );
    assert.equal(res.status, 400);
    assertOutcome(res.body);
    const s = await fhirJson(ctx, "GET", `Patient?family=${u}`);
    assert.equal(s.body.total ?? s.body.entry?.length ?? 0, 0);
  },
);

backendTest("If-Match on a resource that does not exist does not create it", async (ctx) => {
  const id = uniq();
  const res = await fhirJson(ctx, "PUT", `Patient/${id}`, { resourceType: "Patient", id }, {
    "if-match": 'W/"1"',
  });
  assert.ok([404, 409, 412].includes(res.status), `status ${res.status}`);
  assert.equal((await fhirJson(ctx, "GET", `Patient/${id}`)).status, 404);
});

backendTest("deleting a resource twice is idempotent and does not add versions", async (ctx) => {
  const p = await create(ctx, { resourceType: "Patient" });
  const d1 = await fhirJson(ctx, "DELETE", `Patient/${p.id}`);
  assert.ok(d1.status === 200 || d1.status === 204);
  const d2 = await fhirJson(ctx, "DELETE", `Patient/${p.id}`);
  assert.ok([200, 204, 404, 410].includes(d2.status), `status ${d2.status}`);
  const h = await fhirJson(ctx, "GET", `Patient/${p.id}/_history`);
  assert.equal(h.body.entry.length, 2);
});

backendTest("PATCH of a deleted resource is 410 or 404, and of an unknown one 404", async (ctx) => {
  const p = await create(ctx, { resourceType: "Patient" });
  await fhirJson(ctx, "DELETE", `Patient/${p.id}`);
  const ops = [{ op: "add", path: "/gender", value: "male" }];
  const h = { "content-type": "application/json-patch+json" };
  const gone = await fhirJson(ctx, "PATCH", `Patient/${p.id}`, ops, h);
  assert.ok(gone.status === 410 || gone.status === 404, `status ${gone.status}`);
  assertOutcome(gone.body);
  const missing = await fhirJson(ctx, "PATCH", `Patient/${uniq()}`, ops, h);
  assert.equal(missing.status, 404);
  assertOutcome(missing.body);
});

backendTest("vread of a deleted version is 410; of a non-numeric version 404", async (ctx) => {
  const p = await create(ctx, { resourceType: "Patient" });
  await fhirJson(ctx, "DELETE", `Patient/${p.id}`);
  const h = await fhirJson(ctx, "GET", `Patient/${p.id}/_history`);
  const delVersion = h.body.entry[0].response?.etag?.match(/W\/"(.+)"/)?.[1] ?? "2";
  const res = await fhirJson(ctx, "GET", `Patient/${p.id}/_history/${delVersion}`);
  assert.equal(res.status, 410);
  assertOutcome(res.body);
  assert.equal((await fhirJson(ctx, "GET", `Patient/${p.id}/_history/abc`)).status, 404);
});
