// deno-lint-ignore-file no-explicit-any
import assert from "node:assert/strict";
import { backendTest, fhirJson, uniq } from "../_harness.ts";
import { assertOutcome, create, searchIds, tagged, tagQ } from "./_util.ts";

const urn = () => `urn:uuid:${crypto.randomUUID()}`;

function postEntry(fullUrl: string, resource: any, ifNoneExist?: string) {
  return {
    fullUrl,
    resource,
    request: {
      method: "POST",
      url: resource.resourceType,
      ...(ifNoneExist ? { ifNoneExist } : {}),
    },
  };
}

backendTest(
  "transaction resolves urn:uuid references and answers transaction-response",
  async (ctx) => {
    const u = uniq();
    const pUrn = urn();
    const oUrn = urn();
    const res = await fhirJson(ctx, "POST", "", {
      resourceType: "Bundle",
      type: "transaction",
      entry: [
        postEntry(oUrn, {
          resourceType: "Observation",
          meta: tagged(u),
          status: "final",
          code: { text: "x" },
          subject: { reference: pUrn },
        }),
        postEntry(pUrn, { resourceType: "Patient", meta: tagged(u), name: [{ family: u }] }),
        postEntry(urn(), {
          resourceType: "DiagnosticReport",
          meta: tagged(u),
          status: "final",
          code: { text: "r" },
          subject: { reference: pUrn },
          result: [{ reference: oUrn }],
        }),
      ],
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.resourceType, "Bundle");
    assert.equal(res.body.type, "transaction-response");
    assert.equal(res.body.entry.length, 3);
    for (const e of res.body.entry) {
      assert.match(e.response.status, /^201/);
      assert.match(
        e.response.location,
        /^(.*\/)?(Observation|Patient|DiagnosticReport)\/[^/]+\/_history\/1$/,
      );
      assert.equal(e.response.etag, 'W/"1"');
      assert.ok(e.response.lastModified);
    }
    const [oLoc, pLoc, dLoc] = res.body.entry.map((e: any) => e.response.location as string);
    assert.match(oLoc, /Observation\//);
    assert.match(pLoc, /Patient\//);
    const pid = pLoc.split("/").at(-3);
    const oid = oLoc.split("/").at(-3);
    const did = dLoc.split("/").at(-3);
    const obs = await fhirJson(ctx, "GET", `Observation/${oid}`);
    assert.equal(obs.body.subject.reference, `Patient/${pid}`);
    const dr = await fhirJson(ctx, "GET", `DiagnosticReport/${did}`);
    assert.equal(dr.body.subject.reference, `Patient/${pid}`);
    assert.equal(dr.body.result[0].reference, `Observation/${oid}`);
    assert.deepEqual(await searchIds(ctx, `Observation?patient=${pid}`), [oid]);
  },
);

backendTest("a transaction with one invalid entry is 4xx and commits nothing", async (ctx) => {
  const u = uniq();
  const existing = await create(ctx, { resourceType: "Patient", meta: tagged(u) });
  const res = await fhirJson(ctx, "POST", "", {
    resourceType: "Bundle",
    type: "transaction",
    entry: [
      postEntry(urn(), { resourceType: "Patient", meta: tagged(u), name: [{ family: u }] }),
      {
        fullUrl: `${ctx.base}/Patient/${existing.id}`,
        resource: { ...existing, gender: "male" },
        request: { method: "PUT", url: `Patient/${existing.id}` },
      },
      postEntry(urn(), {
        resourceType: "Observation",
        meta: tagged(u),
        status: "bogus",
        code: { text: "x" },
      }),
    ],
  });
  assert.ok(res.status >= 400 && res.status < 500, `status ${res.status}`);
  assertOutcome(res.body);
  assert.deepEqual(await searchIds(ctx, `Patient?_id=${existing.id}`), [existing.id]);
  const read = await fhirJson(ctx, "GET", `Patient/${existing.id}`);
  assert.equal(read.status, 200);
  assert.equal(read.body.meta.versionId, "1");
  assert.equal(read.body.gender, undefined);
  assert.deepEqual(await searchIds(ctx, `Patient?family=${u}`), []);
  assert.deepEqual(await searchIds(ctx, `Observation?${tagQ(u)}`), []);
});

backendTest("a transaction with a failing If-Match is 412 and commits nothing", async (ctx) => {
  const u = uniq();
  const p = await create(ctx, { resourceType: "Patient", meta: tagged(u) });
  const res = await fhirJson(ctx, "POST", "", {
    resourceType: "Bundle",
    type: "transaction",
    entry: [
      postEntry(urn(), { resourceType: "Patient", name: [{ family: u }] }),
      {
        resource: { ...p, gender: "female" },
        request: { method: "PUT", url: `Patient/${p.id}`, ifMatch: 'W/"7"' },
      },
    ],
  });
  assert.equal(res.status, 412);
  assertOutcome(res.body);
  assert.deepEqual(await searchIds(ctx, `Patient?family=${u}`), []);
});

backendTest(
  "a transaction resolves conditional references Patient?identifier=sys|val",
  async (ctx) => {
    const u = uniq();
    const p = await create(ctx, {
      resourceType: "Patient",
      identifier: [{ system: "urn:mrn", value: u }],
    });
    const res = await fhirJson(ctx, "POST", "", {
      resourceType: "Bundle",
      type: "transaction",
      entry: [
        postEntry(urn(), {
          resourceType: "Observation",
          status: "final",
          code: { text: "x" },
          subject: { reference: `Patient?identifier=urn:mrn|${u}` },
        }),
      ],
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const oid = res.body.entry[0].response.location.split("/").at(-3);
    const obs = await fhirJson(ctx, "GET", `Observation/${oid}`);
    assert.equal(obs.body.subject.reference, `Patient/${p.id}`);
  },
);

backendTest("a conditional reference matching nothing fails the transaction", async (ctx) => {
  const u = uniq();
  const res = await fhirJson(ctx, "POST", "", {
    resourceType: "Bundle",
    type: "transaction",
    entry: [
      postEntry(urn(), {
        resourceType: "Observation",
        meta: tagged(u),
        status: "final",
        code: { text: "x" },
        subject: { reference: `Patient?identifier=urn:mrn|${u}` },
      }),
    ],
  });
  assert.ok(res.status >= 400 && res.status < 500, `status ${res.status}`);
  assertOutcome(res.body);
  assert.deepEqual(await searchIds(ctx, `Observation?${tagQ(u)}`), []);
});

backendTest(
  "transaction conditional create (ifNoneExist) returns 200 for an existing match",
  async (ctx) => {
    const u = uniq();
    const p = await create(ctx, {
      resourceType: "Patient",
      identifier: [{ system: "urn:mrn", value: u }],
    });
    const pUrn = urn();
    const res = await fhirJson(ctx, "POST", "", {
      resourceType: "Bundle",
      type: "transaction",
      entry: [
        postEntry(
          pUrn,
          { resourceType: "Patient", identifier: [{ system: "urn:mrn", value: u }] },
          `identifier=urn:mrn|${u}`,
        ),
        postEntry(urn(), {
          resourceType: "Observation",
          status: "final",
          code: { text: "x" },
          subject: { reference: pUrn },
        }),
      ],
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.match(res.body.entry[0].response.status, /^200/);
    assert.match(res.body.entry[1].response.status, /^201/);
    const oid = res.body.entry[1].response.location.split("/").at(-3);
    const obs = await fhirJson(ctx, "GET", `Observation/${oid}`);
    assert.equal(obs.body.subject.reference, `Patient/${p.id}`);
    assert.deepEqual(
      await searchIds(ctx, `Patient?identifier=${encodeURIComponent(`urn:mrn|${u}`)}`),
      [p.id],
    );
  },
);

backendTest(
  "transaction with PUT (If-Match), DELETE, create-on-update PUT and GET entries",
  async (ctx) => {
    const u = uniq();
    const a = await create(ctx, { resourceType: "Patient", meta: tagged(u) });
    const b = await create(ctx, { resourceType: "Patient", meta: tagged(u) });
    const cid = uniq("c");
    const res = await fhirJson(ctx, "POST", "", {
      resourceType: "Bundle",
      type: "transaction",
      entry: [
        {
          resource: { ...a, gender: "female" },
          request: { method: "PUT", url: `Patient/${a.id}`, ifMatch: 'W/"1"' },
        },
        { request: { method: "DELETE", url: `Patient/${b.id}` } },
        {
          resource: { resourceType: "Patient", id: cid, meta: tagged(u) },
          request: { method: "PUT", url: `Patient/${cid}` },
        },
        { request: { method: "GET", url: `Patient/${a.id}` } },
      ],
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const st = res.body.entry.map((e: any) => e.response.status);
    assert.match(st[0], /^200/);
    assert.match(st[1], /^20[04]/);
    assert.match(st[2], /^201/);
    assert.match(st[3], /^200/);
    assert.equal(res.body.entry[0].response.etag, 'W/"2"');
    assert.equal(res.body.entry[3].resource.gender, "female");
    assert.equal((await fhirJson(ctx, "GET", `Patient/${b.id}`)).status, 410);
    assert.equal((await fhirJson(ctx, "GET", `Patient/${cid}`)).status, 200);
  },
);

backendTest("batch processes entries independently and answers batch-response", async (ctx) => {
  const u = uniq();
  const res = await fhirJson(ctx, "POST", "", {
    resourceType: "Bundle",
    type: "batch",
    entry: [
      postEntry(urn(), { resourceType: "Patient", meta: tagged(u), name: [{ family: u }] }),
      postEntry(urn(), { resourceType: "Observation", status: "bogus", code: { text: "x" } }),
      { request: { method: "GET", url: `Patient/${uniq()}` } },
      { request: { method: "GET", url: `Patient?${tagQ(u)}` } },
    ],
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.type, "batch-response");
  assert.equal(res.body.entry.length, 4);
  const [ok, bad, missing, searchE] = res.body.entry;
  assert.match(ok.response.status, /^201/);
  assert.match(ok.response.location, /Patient\/[^/]+\/_history\/1$/);
  assert.match(bad.response.status, /^4\d\d/);
  assert.equal(bad.response.outcome?.resourceType, "OperationOutcome");
  assert.match(missing.response.status, /^404/);
  assert.match(searchE.response.status, /^200/);
  assert.equal(searchE.resource.resourceType, "Bundle");
  assert.equal(searchE.resource.type, "searchset");
  assert.deepEqual(await searchIds(ctx, `Patient?family=${u}`), [
    ok.resource?.id ?? ok.response.location.split("/").at(-3),
  ]);
});

backendTest(
  "a Bundle that is not batch or transaction, or a non-Bundle, posted to the base is 400",
  async (ctx) => {
    for (
      const body of [
        { resourceType: "Bundle", type: "collection", entry: [] },
        { resourceType: "Bundle", type: "searchset" },
        { resourceType: "Patient" },
      ]
    ) {
      const res = await fhirJson(ctx, "POST", "", body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assertOutcome(res.body);
    }
  },
);

backendTest(
  "a transaction entry with an invalid request is 400 and commits nothing",
  async (ctx) => {
    const u = uniq();
    const res = await fhirJson(ctx, "POST", "", {
      resourceType: "Bundle",
      type: "transaction",
      entry: [
        postEntry(urn(), { resourceType: "Patient", name: [{ family: u }] }),
        { resource: { resourceType: "Patient" }, request: { method: "POST", url: "Foo" } },
      ],
    });
    assert.ok(res.status >= 400 && res.status < 500, `status ${res.status}`);
    assertOutcome(res.body);
    assert.deepEqual(await searchIds(ctx, `Patient?family=${u}`), []);
  },
);

backendTest("a transaction resolves circular and nested urn:uuid references", async (ctx) => {
  const u = uniq();
  const aUrn = urn();
  const bUrn = urn();
  const res = await fhirJson(ctx, "POST", "", {
    resourceType: "Bundle",
    type: "transaction",
    entry: [
      postEntry(aUrn, {
        resourceType: "Patient",
        name: [{ family: `${u}a` }],
        link: [{ other: { reference: bUrn }, type: "seealso" }],
      }),
      postEntry(bUrn, {
        resourceType: "Patient",
        name: [{ family: `${u}b` }],
        link: [{ other: { reference: aUrn }, type: "seealso" }],
        extension: [{ url: "urn:test:ref", valueReference: { reference: aUrn } }],
      }),
    ],
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const [a, b] = res.body.entry.map((e: any) => e.response.location.split("/").at(-3));
  const ra = await fhirJson(ctx, "GET", `Patient/${a}`);
  const rb = await fhirJson(ctx, "GET", `Patient/${b}`);
  assert.equal(ra.body.link[0].other.reference, `Patient/${b}`);
  assert.equal(rb.body.link[0].other.reference, `Patient/${a}`);
  assert.equal(rb.body.extension[0].valueReference.reference, `Patient/${a}`);
  assert.deepEqual(await searchIds(ctx, `Patient?link=Patient/${a}`), [b]);
});

backendTest(
  "a transaction touching the same resource twice is 400 and commits nothing",
  async (ctx) => {
    const u = uniq();
    const p = await create(ctx, { resourceType: "Patient" });
    const res = await fhirJson(ctx, "POST", "", {
      resourceType: "Bundle",
      type: "transaction",
      entry: [
        postEntry(urn(), { resourceType: "Patient", name: [{ family: u }] }),
        { resource: { ...p, gender: "male" }, request: { method: "PUT", url: `Patient/${p.id}` } },
        {
          resource: { ...p, gender: "female" },
          request: { method: "PUT", url: `Patient/${p.id}` },
        },
      ],
    });
    assert.equal(res.status, 400);
    assertOutcome(res.body);
    assert.deepEqual(await searchIds(ctx, `Patient?family=${u}`), []);
    assert.equal((await fhirJson(ctx, "GET", `Patient/${p.id}`)).body.meta.versionId, "1");
  },
);

backendTest(
  "a transaction conditional update matching several resources is 412, like the same PUT alone, and commits nothing",
  async (ctx) => {
    const u = uniq();
    await create(ctx, { resourceType: "Patient", meta: tagged(u), name: [{ family: u }] });
    await create(ctx, { resourceType: "Patient", meta: tagged(u), name: [{ family: u }] });
    const put = { resourceType: "Patient", meta: tagged(u), name: [{ family: `${u}x` }] };
    const alone = await fhirJson(ctx, "PUT", `Patient?family=${u}`, put);
    assert.equal(alone.status, 412);
    const res = await fhirJson(ctx, "POST", "", {
      resourceType: "Bundle",
      type: "transaction",
      entry: [
        postEntry(urn(), {
          resourceType: "Patient",
          meta: tagged(u),
          name: [{ family: `${u}new` }],
        }),
        { resource: put, request: { method: "PUT", url: `Patient?family=${u}` } },
      ],
    });
    assert.equal(res.status, 412);
    assertOutcome(res.body);
    assert.match(res.body.issue[0].diagnostics, /Bundle\.entry\[1\]/);
    assert.deepEqual(await searchIds(ctx, `Patient?${tagQ(u)}&family=${u}new`), []);
  },
);
