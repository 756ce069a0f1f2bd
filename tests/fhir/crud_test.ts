// deno-lint-ignore-file no-explicit-any
import assert from "node:assert/strict";
import { backendTest, fhirJson, uniq } from "../_harness.ts";
import { assertOutcome, create, searchIds, tagged, tagQ } from "./_util.ts";

const patient = (u: string, extra: any = {}) => ({
  resourceType: "Patient",
  meta: tagged(u),
  name: [{ family: `${u}Fam`, given: ["Ann"] }],
  ...extra,
});

backendTest(
  'create returns 201 with Location [base]/Patient/id/_history/1, ETag W/"1", Last-Modified',
  async (ctx) => {
    const u = uniq();
    const res = await fhirJson(ctx, "POST", "Patient", patient(u));
    assert.equal(res.status, 201);
    const id = res.body.id;
    assert.match(id, /^[A-Za-z0-9\-.]{1,64}$/);
    assert.equal(res.headers.get("location"), `${ctx.base}/Patient/${id}/_history/1`);
    assert.equal(res.headers.get("etag"), 'W/"1"');
    const lm = res.headers.get("last-modified");
    assert.ok(lm && !Number.isNaN(Date.parse(lm)), `Last-Modified: ${lm}`);
    assert.equal(res.body.resourceType, "Patient");
    assert.equal(res.body.meta.versionId, "1");
    assert.ok(!Number.isNaN(Date.parse(res.body.meta.lastUpdated)));
    assert.ok(Math.abs(Date.parse(res.body.meta.lastUpdated) - Date.now()) < 60_000);
    assert.equal(res.body.name[0].family, `${u}Fam`);
    assert.match(res.headers.get("content-type") ?? "", /^application\/fhir\+json/);
  },
);

backendTest("create ignores a client-supplied id and meta.versionId", async (ctx) => {
  const u = uniq();
  const res = await fhirJson(ctx, "POST", "Patient", {
    ...patient(u),
    id: u,
    meta: { ...tagged(u), versionId: "42" },
  });
  assert.equal(res.status, 201);
  assert.notEqual(res.body.id, u);
  assert.equal(res.body.meta.versionId, "1");
  assert.equal((await fhirJson(ctx, "GET", `Patient/${u}`)).status, 404);
});

backendTest("read returns the stored resource with ETag and Last-Modified", async (ctx) => {
  const u = uniq();
  const created = await create(ctx, patient(u, { birthDate: "1974-05-06" }));
  const res = await fhirJson(ctx, "GET", `Patient/${created.id}`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("etag"), 'W/"1"');
  assert.ok(res.headers.get("last-modified"));
  assert.deepEqual(res.body, created);
});

backendTest("read of an unknown id is 404 with an OperationOutcome", async (ctx) => {
  const res = await fhirJson(ctx, "GET", `Patient/${uniq("missing")}`);
  assert.equal(res.status, 404);
  assertOutcome(res.body);
});

backendTest(
  "update returns 200, increments the version, and vread keeps both versions",
  async (ctx) => {
    const u = uniq();
    const created = await create(ctx, patient(u));
    const res = await fhirJson(ctx, "PUT", `Patient/${created.id}`, {
      ...created,
      gender: "female",
    });
    assert.equal(res.status, 200);
    assert.equal(res.body.meta.versionId, "2");
    assert.equal(res.headers.get("etag"), 'W/"2"');
    assert.ok(res.headers.get("last-modified"));
    assert.equal(res.body.gender, "female");
    const v1 = await fhirJson(ctx, "GET", `Patient/${created.id}/_history/1`);
    assert.equal(v1.status, 200);
    assert.equal(v1.body.gender, undefined);
    assert.equal(v1.body.meta.versionId, "1");
    assert.equal(v1.headers.get("etag"), 'W/"1"');
    const v2 = await fhirJson(ctx, "GET", `Patient/${created.id}/_history/2`);
    assert.equal(v2.status, 200);
    assert.equal(v2.body.gender, "female");
    assert.equal((await fhirJson(ctx, "GET", `Patient/${created.id}/_history/3`)).status, 404);
  },
);

backendTest(
  "update with a client id on a new resource creates it: 201 with Location",
  async (ctx) => {
    const id = uniq("client-id.");
    const res = await fhirJson(ctx, "PUT", `Patient/${id}`, { ...patient(id), id });
    assert.equal(res.status, 201);
    assert.equal(res.body.id, id);
    assert.equal(res.body.meta.versionId, "1");
    assert.equal(res.headers.get("etag"), 'W/"1"');
    const loc = res.headers.get("location");
    assert.equal(loc, `${ctx.base}/Patient/${id}/_history/1`);
    assert.equal((await fhirJson(ctx, "GET", `Patient/${id}`)).status, 200);
  },
);

backendTest("update without an id in the body is 400", async (ctx) => {
  const created = await create(ctx, patient(uniq()));
  const { id: _id, ...noId } = created;
  const res = await fhirJson(ctx, "PUT", `Patient/${created.id}`, noId);
  assert.equal(res.status, 400);
  assertOutcome(res.body);
});

backendTest("PATCH with a JSON Patch applies it and increments the version", async (ctx) => {
  const created = await create(ctx, patient(uniq()));
  const res = await fhirJson(ctx, "PATCH", `Patient/${created.id}`, [
    { op: "add", path: "/gender", value: "male" },
    { op: "replace", path: "/name/0/given/0", value: "Bob" },
  ], { "content-type": "application/json-patch+json" });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.gender, "male");
  assert.equal(res.body.name[0].given[0], "Bob");
  assert.equal(res.body.meta.versionId, "2");
  assert.equal(res.headers.get("etag"), 'W/"2"');
  const read = await fhirJson(ctx, "GET", `Patient/${created.id}`);
  assert.equal(read.body.gender, "male");
});

backendTest("PATCH whose result is invalid is rejected and changes nothing", async (ctx) => {
  const u = uniq();
  const obs = await create(ctx, {
    resourceType: "Observation",
    meta: tagged(u),
    status: "final",
    code: { text: u },
  });
  const res = await fhirJson(ctx, "PATCH", `Observation/${obs.id}`, [
    { op: "replace", path: "/status", value: "bogus" },
  ], { "content-type": "application/json-patch+json" });
  assert.ok(res.status === 400 || res.status === 422, `status ${res.status}`);
  assertOutcome(res.body);
  const read = await fhirJson(ctx, "GET", `Observation/${obs.id}`);
  assert.equal(read.body.status, "final");
  assert.equal(read.body.meta.versionId, "1");
});

backendTest("PATCH with a failing JSON Patch test op is a 4xx and changes nothing", async (ctx) => {
  const created = await create(ctx, patient(uniq()));
  const res = await fhirJson(ctx, "PATCH", `Patient/${created.id}`, [
    { op: "test", path: "/gender", value: "other" },
    { op: "add", path: "/gender", value: "male" },
  ], { "content-type": "application/json-patch+json" });
  assert.ok(res.status >= 400 && res.status < 500, `status ${res.status}`);
  assertOutcome(res.body);
  assert.equal((await fhirJson(ctx, "GET", `Patient/${created.id}`)).body.meta.versionId, "1");
});

backendTest(
  "delete makes read 410 with an OperationOutcome; vread of the old version still works",
  async (ctx) => {
    const created = await create(ctx, patient(uniq()));
    const del = await fhirJson(ctx, "DELETE", `Patient/${created.id}`);
    assert.ok(del.status === 200 || del.status === 204, `delete status ${del.status}`);
    const read = await fhirJson(ctx, "GET", `Patient/${created.id}`);
    assert.equal(read.status, 410);
    assertOutcome(read.body);
    const v1 = await fhirJson(ctx, "GET", `Patient/${created.id}/_history/1`);
    assert.equal(v1.status, 200);
    assert.equal(v1.body.id, created.id);
  },
);

backendTest("a deleted resource is no longer found by search", async (ctx) => {
  const u = uniq();
  const created = await create(ctx, patient(u));
  assert.deepEqual(await searchIds(ctx, `Patient?${tagQ(u)}`), [created.id]);
  await fhirJson(ctx, "DELETE", `Patient/${created.id}`);
  assert.deepEqual(await searchIds(ctx, `Patient?${tagQ(u)}`), []);
});

backendTest("update after delete brings the resource back with a new version", async (ctx) => {
  const created = await create(ctx, patient(uniq()));
  await fhirJson(ctx, "DELETE", `Patient/${created.id}`);
  const res = await fhirJson(ctx, "PUT", `Patient/${created.id}`, { ...created, gender: "other" });
  assert.ok(res.status === 200 || res.status === 201, `status ${res.status}`);
  assert.notEqual(res.body.meta.versionId, "1");
  assert.notEqual(res.body.meta.versionId, "2");
  const read = await fhirJson(ctx, "GET", `Patient/${created.id}`);
  assert.equal(read.status, 200);
  assert.equal(read.body.gender, "other");
});

backendTest(
  "If-Match with a stale version is 412 on update, patch and delete; a matching one succeeds",
  async (ctx) => {
    const created = await create(ctx, patient(uniq()));
    const upd = await fhirJson(
      ctx,
      "PUT",
      `Patient/${created.id}`,
      { ...created, gender: "male" },
      {
        "if-match": 'W/"1"',
      },
    );
    assert.equal(upd.status, 200);
    const stale = { "if-match": 'W/"1"' };
    const put = await fhirJson(ctx, "PUT", `Patient/${created.id}`, created, stale);
    assert.equal(put.status, 412);
    assertOutcome(put.body);
    const patch = await fhirJson(ctx, "PATCH", `Patient/${created.id}`, [
      { op: "add", path: "/gender", value: "female" },
    ], { "content-type": "application/json-patch+json", ...stale });
    assert.equal(patch.status, 412);
    const del = await fhirJson(ctx, "DELETE", `Patient/${created.id}`, undefined, stale);
    assert.equal(del.status, 412);
    const read = await fhirJson(ctx, "GET", `Patient/${created.id}`);
    assert.equal(read.status, 200);
    assert.equal(read.body.gender, "male");
    assert.equal(read.body.meta.versionId, "2");
    const ok = await fhirJson(ctx, "PATCH", `Patient/${created.id}`, [
      { op: "add", path: "/gender", value: "female" },
    ], { "content-type": "application/json-patch+json", "if-match": 'W/"2"' });
    assert.equal(ok.status, 200);
    const del2 = await fhirJson(ctx, "DELETE", `Patient/${created.id}`, undefined, {
      "if-match": 'W/"3"',
    });
    assert.ok(del2.status === 200 || del2.status === 204);
  },
);

backendTest(
  "conditional create: 0 matches 201, 1 match 200 with the existing resource, 2 matches 412",
  async (ctx) => {
    const u = uniq();
    const ident = { system: "urn:test:mrn", value: u };
    const cond = { "if-none-exist": `identifier=urn:test:mrn|${u}` };
    const first = await fhirJson(ctx, "POST", "Patient", patient(u, { identifier: [ident] }), cond);
    assert.equal(first.status, 201);
    const again = await fhirJson(
      ctx,
      "POST",
      "Patient",
      patient(u, { identifier: [ident], gender: "male" }),
      cond,
    );
    assert.equal(again.status, 200);
    assert.equal(again.body.id, first.body.id);
    assert.equal(again.body.gender, undefined);
    assert.equal(again.body.meta.versionId, "1");
    await create(ctx, patient(u, { identifier: [ident] }));
    const third = await fhirJson(ctx, "POST", "Patient", patient(u, { identifier: [ident] }), cond);
    assert.equal(third.status, 412);
    assertOutcome(third.body);
    assert.equal((await searchIds(ctx, `Patient?${tagQ(u)}`)).length, 2);
  },
);

backendTest(
  "conditional update: no match creates, one match updates it, several matches 412",
  async (ctx) => {
    const u = uniq();
    const ident = [{ system: "urn:test:mrn", value: u }];
    const path = `Patient?identifier=${encodeURIComponent(`urn:test:mrn|${u}`)}`;
    const c = await fhirJson(ctx, "PUT", path, patient(u, { identifier: ident }));
    assert.equal(c.status, 201);
    const id = c.body.id;
    assert.ok(id);
    const up = await fhirJson(ctx, "PUT", path, patient(u, { identifier: ident, gender: "male" }));
    assert.equal(up.status, 200);
    assert.equal(up.body.id, id);
    assert.equal(up.body.meta.versionId, "2");
    assert.equal(up.body.gender, "male");
    await create(ctx, patient(u, { identifier: ident }));
    const many = await fhirJson(ctx, "PUT", path, patient(u, { identifier: ident }));
    assert.equal(many.status, 412);
    assertOutcome(many.body);
  },
);

backendTest("conditional delete removes the single matching resource", async (ctx) => {
  const u = uniq();
  const keep = await create(ctx, patient(u, { identifier: [{ system: "urn:k", value: u }] }));
  const gone = await create(ctx, patient(u, { identifier: [{ system: "urn:d", value: u }] }));
  const res = await fhirJson(
    ctx,
    "DELETE",
    `Patient?identifier=${encodeURIComponent(`urn:d|${u}`)}`,
  );
  assert.ok(res.status === 200 || res.status === 204, `status ${res.status}`);
  assert.equal((await fhirJson(ctx, "GET", `Patient/${gone.id}`)).status, 410);
  assert.equal((await fhirJson(ctx, "GET", `Patient/${keep.id}`)).status, 200);
  assert.deepEqual(await searchIds(ctx, `Patient?${tagQ(u)}`), [keep.id]);
});

backendTest(
  "Prefer: return=minimal gives an empty body; return=OperationOutcome an outcome",
  async (ctx) => {
    const u = uniq();
    const min = await fhirJson(ctx, "POST", "Patient", patient(u), { prefer: "return=minimal" });
    assert.equal(min.status, 201);
    assert.equal(min.body, undefined);
    const loc = min.headers.get("location") ?? "";
    assert.match(loc, new RegExp(`^${ctx.base}/Patient/[^/]+/_history/1$`));
    assert.equal(min.headers.get("etag"), 'W/"1"');
    const id = loc.split("/").at(-3)!;
    const read = await fhirJson(ctx, "GET", `Patient/${id}`);
    const oo = await fhirJson(ctx, "PUT", `Patient/${id}`, read.body, {
      prefer: "return=OperationOutcome",
    });
    assert.equal(oo.status, 200);
    assertOutcome(oo.body);
    const rep = await fhirJson(ctx, "PUT", `Patient/${id}`, read.body, {
      prefer: "return=representation",
    });
    assert.equal(rep.status, 200);
    assert.equal(rep.body.resourceType, "Patient");
    assert.equal(rep.body.id, id);
    const minUpd = await fhirJson(ctx, "PUT", `Patient/${id}`, read.body, {
      prefer: "return=minimal",
    });
    assert.equal(minUpd.status, 200);
    assert.equal(minUpd.body, undefined);
  },
);

backendTest("_format=json and _pretty=true are honoured", async (ctx) => {
  const created = await create(ctx, patient(uniq()));
  for (const f of ["json", "application/fhir+json", "application/json"]) {
    const res = await ctx.fetch(`Patient/${created.id}?_format=${encodeURIComponent(f)}`);
    assert.equal(res.status, 200, f);
    assert.match(res.headers.get("content-type") ?? "", /json/);
    assert.equal((await res.json()).id, created.id);
  }
  const pretty = await ctx.fetch(`Patient/${created.id}?_pretty=true`);
  const text = await pretty.text();
  assert.ok(text.includes("\n  "), "pretty output is indented");
  assert.equal(JSON.parse(text).id, created.id);
});

backendTest("every supported resource type can be created and read", async (ctx) => {
  const u = uniq();
  const pat = await create(ctx, patient(u));
  const subject = { reference: `Patient/${pat.id}` };
  const samples: any[] = [
    { resourceType: "ImagingStudy", status: "available", subject },
    { resourceType: "DiagnosticReport", status: "final", code: { text: u } },
    { resourceType: "Observation", status: "final", code: { text: u } },
    {
      resourceType: "Endpoint",
      status: "active",
      connectionType: {
        system: "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
        code: "dicom-wado-rs",
      },
      payloadType: [{ text: "DICOM" }],
      address: "https://example.org/wado",
    },
    { resourceType: "Device", status: "active" },
    { resourceType: "Task", status: "requested", intent: "order" },
    {
      resourceType: "Subscription",
      status: "requested",
      reason: "test",
      criteria: "Observation?code=1",
      channel: { type: "rest-hook", endpoint: "https://example.org/hook" },
    },
    { resourceType: "Communication", status: "completed" },
    {
      resourceType: "DocumentReference",
      status: "current",
      content: [{ attachment: { contentType: "text/plain", url: "https://example.org/d" } }],
    },
  ];
  for (const r of samples) {
    const c = await create(ctx, { ...r, meta: tagged(u) });
    const read = await fhirJson(ctx, "GET", `${r.resourceType}/${c.id}`);
    assert.equal(read.status, 200, r.resourceType);
    assert.equal(read.body.resourceType, r.resourceType);
  }
  // AuditEvents are the server's audit trail (audit/): read and searched, never written by clients.
  const audit = await fhirJson(ctx, "POST", "AuditEvent", {
    resourceType: "AuditEvent",
    type: { system: "http://dicom.nema.org/resources/ontology/DCM", code: "110100" },
    recorded: "2024-01-01T00:00:00Z",
    agent: [{ requestor: true, who: { display: "x" } }],
    source: { observer: { display: "y" } },
  });
  assert.equal(audit.status, 405);
  assert.equal((await fhirJson(ctx, "GET", "AuditEvent?_count=1")).status, 200);
});
