// deno-lint-ignore-file no-explicit-any
import assert from "node:assert/strict";
import { backendTest, fhirJson, uniq } from "../_harness.ts";
import { create, link } from "./_util.ts";

async function history(ctx: any, path: string): Promise<any> {
  const res = await fhirJson(ctx, "GET", path);
  assert.equal(res.status, 200, `${path}: ${JSON.stringify(res.body)}`);
  assert.equal(res.body.resourceType, "Bundle");
  assert.equal(res.body.type, "history");
  return res.body;
}

async function lifecycle(ctx: any) {
  const p = await create(ctx, { resourceType: "Patient", name: [{ family: uniq() }] });
  const v2 = await fhirJson(ctx, "PUT", `Patient/${p.id}`, { ...p, gender: "male" });
  assert.equal(v2.status, 200);
  const v3 = await fhirJson(ctx, "PUT", `Patient/${p.id}`, { ...p, gender: "female" });
  assert.equal(v3.status, 200);
  const del = await fhirJson(ctx, "DELETE", `Patient/${p.id}`);
  assert.ok(del.status < 300);
  return p;
}

backendTest(
  "instance history lists every version newest first, including the delete",
  async (ctx) => {
    const p = await lifecycle(ctx);
    const b = await history(ctx, `Patient/${p.id}/_history`);
    assert.equal(b.entry.length, 4);
    const [del, v3, v2, v1] = b.entry;
    assert.equal(del.request.method, "DELETE");
    assert.equal(del.resource, undefined);
    assert.match(del.request.url, new RegExp(`Patient/${p.id}$`));
    assert.equal(v3.resource.meta.versionId, "3");
    assert.equal(v3.resource.gender, "female");
    assert.equal(v3.request.method, "PUT");
    assert.equal(v2.resource.meta.versionId, "2");
    assert.equal(v2.resource.gender, "male");
    assert.equal(v1.resource.meta.versionId, "1");
    assert.equal(v1.resource.gender, undefined);
    assert.equal(v1.request.method, "POST");
    for (const e of [v3, v2, v1]) {
      assert.equal(e.fullUrl, `${ctx.base}/Patient/${p.id}`);
      assert.ok(e.response?.status, "history entries carry a response");
    }
    const times = [v3, v2, v1].map((e) => Date.parse(e.resource.meta.lastUpdated));
    assert.ok(times[0] >= times[1] && times[1] >= times[2], "newest first");
  },
);

backendTest("vread returns each historical version; unknown versions are 404", async (ctx) => {
  const p = await lifecycle(ctx);
  const v2 = await fhirJson(ctx, "GET", `Patient/${p.id}/_history/2`);
  assert.equal(v2.status, 200);
  assert.equal(v2.body.gender, "male");
  assert.equal(v2.headers.get("etag"), 'W/"2"');
  const v3 = await fhirJson(ctx, "GET", `Patient/${p.id}/_history/3`);
  assert.equal(v3.body.gender, "female");
  assert.equal((await fhirJson(ctx, "GET", `Patient/${p.id}/_history/99`)).status, 404);
  assert.equal((await fhirJson(ctx, "GET", `Patient/${uniq()}/_history/1`)).status, 404);
});

backendTest("instance history of an unknown resource is 404", async (ctx) => {
  const res = await fhirJson(ctx, "GET", `Patient/${uniq()}/_history`);
  assert.equal(res.status, 404);
  assert.equal(res.body.resourceType, "OperationOutcome");
});

backendTest("instance history _count pages with a next link", async (ctx) => {
  const p = await lifecycle(ctx);
  const b = await history(ctx, `Patient/${p.id}/_history?_count=2`);
  assert.equal(b.entry.length, 2);
  const next = link(b, "next");
  assert.ok(next, "next link");
  const res = await fetch(next, { headers: { accept: "application/fhir+json" } });
  const b2 = await res.json();
  assert.equal(b2.type, "history");
  assert.equal(b2.entry.length, 2);
  const versions = [...b.entry, ...b2.entry].map((e: any) => e.resource?.meta.versionId ?? "del");
  assert.deepEqual(versions, ["del", "3", "2", "1"]);
});

backendTest("type history with _since lists only that type's changes since then", async (ctx) => {
  const before = await create(ctx, { resourceType: "Patient" });
  await new Promise((r) => setTimeout(r, 20));
  const since = new Date().toISOString();
  await new Promise((r) => setTimeout(r, 20));
  const p = await create(ctx, { resourceType: "Patient" });
  const o = await create(ctx, {
    resourceType: "Observation",
    status: "final",
    code: { text: "x" },
  });
  const b = await history(ctx, `Patient/_history?_since=${encodeURIComponent(since)}`);
  const ids = b.entry.map((e: any) => e.resource?.id ?? e.request.url.split("/")[1]);
  assert.ok(ids.includes(p.id));
  assert.ok(!ids.includes(before.id), "changes before _since are excluded");
  assert.ok(!ids.includes(o.id));
  for (const e of b.entry) {
    if (e.resource) assert.equal(e.resource.resourceType, "Patient");
    assert.ok(Date.parse(e.resource?.meta.lastUpdated ?? since) >= Date.parse(since));
  }
});

backendTest("system history with _since and _count covers all types, newest first", async (ctx) => {
  await new Promise((r) => setTimeout(r, 20));
  const since = new Date().toISOString();
  await new Promise((r) => setTimeout(r, 20));
  const p = await create(ctx, { resourceType: "Patient" });
  const o = await create(ctx, {
    resourceType: "Observation",
    status: "final",
    code: { text: "x" },
  });
  const upd = await fhirJson(ctx, "PUT", `Patient/${p.id}`, { ...p, gender: "other" });
  assert.equal(upd.status, 200);
  const all = await history(ctx, `_history?_since=${encodeURIComponent(since)}&_count=100`);
  const keys = all.entry.map((e: any) =>
    `${e.resource?.resourceType}/${e.resource?.id}/${e.resource?.meta.versionId}`
  );
  for (const k of [`Patient/${p.id}/2`, `Observation/${o.id}/1`, `Patient/${p.id}/1`]) {
    assert.ok(keys.includes(k), `${k} in ${keys}`);
  }
  assert.ok(keys.indexOf(`Patient/${p.id}/2`) < keys.indexOf(`Observation/${o.id}/1`));
  assert.ok(keys.indexOf(`Observation/${o.id}/1`) < keys.indexOf(`Patient/${p.id}/1`));
  const one = await history(ctx, `_history?_since=${encodeURIComponent(since)}&_count=1`);
  assert.equal(one.entry.length, 1);
  assert.ok(link(one, "next"), "next link when more history exists");
});

backendTest(
  "history of a resource created by update-as-create starts at version 1 with PUT",
  async (ctx) => {
    const id = uniq();
    const c = await fhirJson(ctx, "PUT", `Patient/${id}`, { resourceType: "Patient", id });
    assert.equal(c.status, 201);
    const b = await history(ctx, `Patient/${id}/_history`);
    assert.equal(b.entry.length, 1);
    assert.equal(b.entry[0].resource.meta.versionId, "1");
    assert.equal(b.entry[0].request.method, "PUT");
  },
);
