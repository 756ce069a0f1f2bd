// deno-lint-ignore-file no-explicit-any
/**
 * @module Every R4 resource type is served: the types an imaging order and its results bring
 * (ServiceRequest, Practitioner, PractitionerRole, Organization, Encounter, Condition, Procedure,
 * Provenance, Media, BodyStructure, Specimen, Consent, Group, …) are created, read, validated and
 * searched with their standard parameters, and every type answers a search.
 */
import assert from "node:assert/strict";
import { backendTest, fhirJson, uniq } from "../_harness.ts";
import { RESOURCE_TYPES } from "../../fhir/resource_types.ts";
import { assertOutcome, create, searchIds, tagged, tagQ } from "./_util.ts";

backendTest("every served type answers a search with a searchset Bundle", async (ctx) => {
  assert.equal(RESOURCE_TYPES.length, 145);
  for (const type of RESOURCE_TYPES) {
    const res = await fhirJson(ctx, "GET", `${type}?_count=1&_total=none`);
    assert.equal(res.status, 200, `${type}: ${JSON.stringify(res.body)}`);
    assert.equal(res.body.type, "searchset", type);
  }
});

backendTest("an imaging order's resources are stored, validated and searched", async (ctx) => {
  const u = uniq("order");
  const meta = tagged(u);
  const patient = await create(ctx, { resourceType: "Patient", meta, name: [{ family: u }] });
  const org = await create(ctx, {
    resourceType: "Organization",
    meta,
    name: `Radiology ${u}`,
    identifier: [{ system: "urn:test:org", value: u }],
  });
  const doc = await create(ctx, {
    resourceType: "Practitioner",
    meta,
    name: [{ family: `Ray-${u}`, given: ["Ada"] }],
  });
  const role = await create(ctx, {
    resourceType: "PractitionerRole",
    meta,
    practitioner: { reference: `Practitioner/${doc.id}` },
    organization: { reference: `Organization/${org.id}` },
  });
  const encounter = await create(ctx, {
    resourceType: "Encounter",
    meta,
    status: "in-progress",
    class: { system: "http://terminology.hl7.org/CodeSystem/v3-ActCode", code: "AMB" },
    subject: { reference: `Patient/${patient.id}` },
  });
  const condition = await create(ctx, {
    resourceType: "Condition",
    meta,
    subject: { reference: `Patient/${patient.id}` },
    code: { coding: [{ system: "http://snomed.info/sct", code: "27550009" }] },
  });
  const order = await create(ctx, {
    resourceType: "ServiceRequest",
    meta,
    status: "active",
    intent: "order",
    subject: { reference: `Patient/${patient.id}` },
    encounter: { reference: `Encounter/${encounter.id}` },
    requester: { reference: `PractitionerRole/${role.id}` },
    reasonReference: [{ reference: `Condition/${condition.id}` }],
    code: { coding: [{ system: "http://loinc.org", code: "24627-2", display: "CT Chest" }] },
  });
  for (
    const r of [
      {
        resourceType: "Procedure",
        status: "completed",
        subject: { reference: `Patient/${patient.id}` },
      },
      {
        resourceType: "BodyStructure",
        patient: { reference: `Patient/${patient.id}` },
        location: { coding: [{ system: "http://snomed.info/sct", code: "39607008" }] },
      },
      { resourceType: "Specimen", subject: { reference: `Patient/${patient.id}` } },
      {
        resourceType: "Media",
        status: "completed",
        subject: { reference: `Patient/${patient.id}` },
        content: { contentType: "image/png", url: "http://example.org/x.png" },
      },
      {
        resourceType: "Consent",
        status: "active",
        scope: {
          coding: [{
            system: "http://terminology.hl7.org/CodeSystem/consentscope",
            code: "patient-privacy",
          }],
        },
        category: [{ coding: [{ system: "http://loinc.org", code: "59284-0" }] }],
        patient: { reference: `Patient/${patient.id}` },
        policyRule: {
          coding: [{ system: "http://terminology.hl7.org/CodeSystem/v3-ActCode", code: "OPTIN" }],
        },
      },
      {
        resourceType: "Provenance",
        target: [{ reference: `ServiceRequest/${order.id}` }],
        recorded: "2026-12-07T10:00:00Z",
        agent: [{ who: { reference: `Practitioner/${doc.id}` } }],
      },
      {
        resourceType: "Group",
        type: "person",
        actual: true,
        member: [{ entity: { reference: `Patient/${patient.id}` } }],
      },
    ]
  ) await create(ctx, { ...r, meta });

  // Standard search parameters of the new types, references and chains included.
  const q = tagQ(u);
  assert.deepEqual(await searchIds(ctx, `ServiceRequest?${q}&subject=Patient/${patient.id}`), [
    order.id,
  ]);
  assert.deepEqual(
    await searchIds(ctx, `ServiceRequest?${q}&code=http://loinc.org|24627-2&status=active`),
    [order.id],
  );
  assert.deepEqual(
    await searchIds(
      ctx,
      `ServiceRequest?${q}&requester:PractitionerRole.practitioner.name=Ray-${u}`,
    ),
    [order.id],
  );
  assert.deepEqual(await searchIds(ctx, `Practitioner?${q}&family=Ray-${u}`), [doc.id]);
  assert.deepEqual(await searchIds(ctx, `Organization?identifier=urn:test:org|${u}`), [org.id]);
  assert.deepEqual(
    await searchIds(ctx, `Encounter?${q}&patient=${patient.id}&status=in-progress`),
    [
      encounter.id,
    ],
  );
  assert.deepEqual(
    await searchIds(ctx, `Provenance?${q}&target=ServiceRequest/${order.id}`).then((x) => x.length),
    1,
  );
  assert.deepEqual((await searchIds(ctx, `Group?${q}&member=Patient/${patient.id}`)).length, 1);
  // _revinclude over the new types.
  const withConditions = await fhirJson(
    ctx,
    "GET",
    `Patient?_id=${patient.id}&_revinclude=Condition:subject&_revinclude=ServiceRequest:subject`,
  );
  const types = withConditions.body.entry.map((e: any) => e.resource.resourceType).sort();
  assert.deepEqual(types, ["Condition", "Patient", "ServiceRequest"]);

  // Validation applies to the new types as to the old: a ServiceRequest without intent is a 400.
  const bad = await fhirJson(ctx, "POST", "ServiceRequest", {
    resourceType: "ServiceRequest",
    status: "active",
    subject: { reference: `Patient/${patient.id}` },
  });
  assert.equal(bad.status, 400);
  assertOutcome(bad.body);
  assert.match(JSON.stringify(bad.body), /intent/);
});

backendTest("Binary in its native form: raw content in, raw content out", async (ctx) => {
  const bytes = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0, 1, 2, 255]);
  const created = await ctx.fetch("Binary", {
    method: "POST",
    headers: { "Content-Type": "image/png", "X-Security-Context": "Patient/p1" },
    body: bytes,
  });
  assert.equal(created.status, 201);
  const stored = await created.json();
  assert.equal(stored.resourceType, "Binary");
  assert.equal(stored.contentType, "image/png");
  assert.equal(stored.securityContext.reference, "Patient/p1");
  assert.match(created.headers.get("location") ?? "", /\/Binary\/[^/]+\/_history\/1$/);

  const raw = await ctx.fetch(`Binary/${stored.id}`, { headers: { Accept: "image/png" } });
  assert.equal(raw.status, 200);
  assert.equal(raw.headers.get("content-type"), "image/png");
  assert.equal(raw.headers.get("x-security-context"), "Patient/p1");
  assert.equal(raw.headers.get("etag"), 'W/"1"');
  assert.deepEqual(new Uint8Array(await raw.arrayBuffer()), bytes);

  const asFhir = await fhirJson(ctx, "GET", `Binary/${stored.id}`);
  assert.equal(asFhir.status, 200);
  assert.equal(asFhir.body.data, btoa(String.fromCharCode(...bytes)));

  const updated = await ctx.fetch(`Binary/${stored.id}`, {
    method: "PUT",
    headers: { "Content-Type": "text/plain" },
    body: "hello",
  });
  assert.equal(updated.status, 200);
  await updated.body?.cancel();
  const text = await ctx.fetch(`Binary/${stored.id}`, { headers: { Accept: "*/*" } });
  assert.equal(text.headers.get("content-type"), "text/plain");
  assert.equal(await text.text(), "hello");
});
