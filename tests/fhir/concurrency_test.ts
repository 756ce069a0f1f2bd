// deno-lint-ignore-file no-explicit-any
import assert from "node:assert/strict";
import { backendTest, fhirJson, uniq } from "../_harness.ts";
import { create, searchIds } from "./_util.ts";

const COUNTER = "urn:test:counter";

backendTest(
  "20 concurrent PUTs with the same If-Match: exactly one 200, the rest 412",
  async (ctx) => {
    const p = await create(ctx, { resourceType: "Patient" });
    const results = await Promise.all(
      Array.from(
        { length: 20 },
        (_, i) =>
          fhirJson(ctx, "PUT", `Patient/${p.id}`, { ...p, name: [{ family: `n${i}` }] }, {
            "if-match": 'W/"1"',
          }),
      ),
    );
    const statuses = results.map((r) => r.status).sort();
    assert.equal(statuses.filter((s) => s === 200).length, 1, `statuses ${statuses}`);
    assert.equal(statuses.filter((s) => s === 412).length, 19, `statuses ${statuses}`);
    const winner = results.find((r) => r.status === 200)!;
    const read = await fhirJson(ctx, "GET", `Patient/${p.id}`);
    assert.equal(read.body.meta.versionId, "2");
    assert.deepEqual(read.body.name, winner.body.name);
    const hist = await fhirJson(ctx, "GET", `Patient/${p.id}/_history`);
    assert.equal(hist.body.entry.length, 2);
  },
);

backendTest(
  "concurrent PATCH and DELETE with the same If-Match: exactly one succeeds",
  async (ctx) => {
    const p = await create(ctx, { resourceType: "Patient" });
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        i % 2
          ? fhirJson(ctx, "PATCH", `Patient/${p.id}`, [{
            op: "add",
            path: "/gender",
            value: "male",
          }], {
            "content-type": "application/json-patch+json",
            "if-match": 'W/"1"',
          })
          : fhirJson(ctx, "DELETE", `Patient/${p.id}`, undefined, { "if-match": 'W/"1"' })),
    );
    const ok = results.filter((r) => r.status < 300).length;
    assert.equal(ok, 1, `statuses ${results.map((r) => r.status)}`);
    assert.ok(
      results.every((r) => r.status < 300 || [404, 410, 412].includes(r.status)),
      `statuses ${results.map((r) => r.status)}`,
    );
  },
);

function counterOf(p: any): number {
  return p.extension?.find((e: any) => e.url === COUNTER)?.valueInteger ?? 0;
}

backendTest("concurrent read-modify-write clients retrying on 412 lose no update", async (ctx) => {
  const p = await create(ctx, {
    resourceType: "Patient",
    extension: [{ url: COUNTER, valueInteger: 0 }],
  });
  const clients = 8;
  const perClient = 5;
  let retries = 0;
  const client = async () => {
    for (let i = 0; i < perClient; i++) {
      for (let attempt = 0;; attempt++) {
        assert.ok(attempt < 500, "too many retries");
        const cur = await fhirJson(ctx, "GET", `Patient/${p.id}`);
        assert.equal(cur.status, 200);
        const etag = cur.headers.get("etag")!;
        const next = {
          ...cur.body,
          extension: [{ url: COUNTER, valueInteger: counterOf(cur.body) + 1 }],
        };
        const put = await fhirJson(ctx, "PUT", `Patient/${p.id}`, next, { "if-match": etag });
        if (put.status === 200) break;
        assert.equal(put.status, 412, `unexpected ${put.status}: ${JSON.stringify(put.body)}`);
        retries++;
      }
    }
  };
  await Promise.all(Array.from({ length: clients }, client));
  const final = await fhirJson(ctx, "GET", `Patient/${p.id}`);
  assert.equal(counterOf(final.body), clients * perClient, `retries ${retries}`);
  assert.equal(final.body.meta.versionId, String(1 + clients * perClient));
});

backendTest(
  "10 concurrent conditional creates with the same If-None-Exist create one resource",
  async (ctx) => {
    const u = uniq();
    const ident = { system: "urn:test:cc", value: u };
    const results = await Promise.all(
      Array.from(
        { length: 10 },
        () =>
          fhirJson(ctx, "POST", "Patient", { resourceType: "Patient", identifier: [ident] }, {
            "if-none-exist": `identifier=urn:test:cc|${u}`,
          }),
      ),
    );
    const statuses = results.map((r) => r.status);
    assert.equal(statuses.filter((s) => s === 201).length, 1, `statuses ${statuses}`);
    assert.ok(statuses.every((s) => s === 201 || s === 200), `statuses ${statuses}`);
    const ids = new Set(results.map((r) => r.body.id));
    assert.equal(ids.size, 1, "all answers name the same resource");
    assert.deepEqual(
      await searchIds(ctx, `Patient?identifier=${encodeURIComponent(`urn:test:cc|${u}`)}`),
      [...ids],
    );
  },
);

backendTest(
  "concurrent conditional transactions with ifNoneExist create one resource",
  async (ctx) => {
    const u = uniq();
    const bundle = () => ({
      resourceType: "Bundle",
      type: "transaction",
      entry: [{
        fullUrl: `urn:uuid:${crypto.randomUUID()}`,
        resource: { resourceType: "Patient", identifier: [{ system: "urn:test:ct", value: u }] },
        request: { method: "POST", url: "Patient", ifNoneExist: `identifier=urn:test:ct|${u}` },
      }],
    });
    const results = await Promise.all(
      Array.from({ length: 8 }, () => fhirJson(ctx, "POST", "", bundle())),
    );
    for (const r of results) assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(
      (await searchIds(ctx, `Patient?identifier=${encodeURIComponent(`urn:test:ct|${u}`)}`)).length,
      1,
    );
  },
);

backendTest(
  "concurrent creates of different resources all succeed with distinct ids",
  async (ctx) => {
    const u = uniq();
    const results = await Promise.all(
      Array.from({ length: 25 }, (_, i) =>
        fhirJson(ctx, "POST", "Patient", {
          resourceType: "Patient",
          identifier: [{ system: "urn:test:many", value: `${u}-${i}` }],
        })),
    );
    assert.ok(results.every((r) => r.status === 201), `${results.map((r) => r.status)}`);
    assert.equal(new Set(results.map((r) => r.body.id)).size, 25);
    assert.equal(
      (await searchIds(
        ctx,
        `Patient?identifier=${encodeURIComponent("urn:test:many|")}&_count=100`,
      ))
        .filter((id) => results.some((r) => r.body.id === id)).length,
      25,
    );
  },
);
