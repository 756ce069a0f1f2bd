// deno-lint-ignore-file no-explicit-any
/**
 * @module Injection sweep (security) of FHIR search: SQL metacharacters, control characters (NUL
 * included), unicode and very long values sent in every search parameter the CapabilityStatement
 * lists for Patient, Observation, ImagingStudy, DiagnosticReport and Task (with every modifier,
 * chains, `_has` and the result parameters), and in the ids, versions and history parameters of
 * FHIR paths. Proves that each answer is a client error (400/404 with an OperationOutcome) or a
 * normal answer (a searchset Bundle), never a 5xx, that the seeded data is unchanged afterwards
 * (same versions, same content, same counts), that the tables still answer searches and that the
 * audit trail still writes. Values past 64 KiB go in a form body (POST _search) and on a raw
 * socket.
 */
import assert from "node:assert/strict";
import { backendTest, fhirJson, type TestContext, uniq } from "../_harness.ts";
import { newUid } from "../dicom/_dicomweb_util.ts";
import { create, searchIds, tagged, tagQ } from "../fhir/_util.ts";
import {
  assertAuditWrites,
  assertNoFailures,
  enc,
  GENERIC,
  type Hostile,
  LONG_100K,
  LONG_10K,
  pair,
  pathProbe,
  type Probe,
  rawGet,
  SAMPLE,
  sweep,
  TYPES,
} from "./_injection.ts";

/** Values for the ordered types (number, date, quantity), whose prefixes are glued to SQL. */
const ORDERED: Hostile[] = [
  "ge'1",
  "ge1'",
  "eq1e999999",
  "1e999999",
  "1e-999999",
  "1e2147483648",
  "gt1e-400",
  "lt-",
  "lt-1",
  "ap-0",
  "ne",
  "eq",
  "0x10",
  "1_000",
  "NaN",
  "Infinity",
  "-Infinity",
  "1.",
  ".5",
  "--1",
  "9".repeat(2_000),
  `0.${"1".repeat(20_000)}`,
  "2020-13-45",
  "9999-99-99T99:99",
  "ge2020-01-01'",
  "2020-01-01T00:00:00+99:99",
  "2020-01-01T25:00",
  "2020-02-30",
  "0000",
  "0001",
  "ap0001",
  "9999",
  "ge9999-12-31T23:59:59.999Z",
  "ap9999",
  "lt0000",
  "infinity",
  "-infinity",
  "99999",
  "2020-01-01T00:00:00.1234567890123",
  "5.4|'|'",
  "5.4|http://unitsofmeasure.org|mg'",
  "eq1e999999||",
  "1|2|3|4",
  "ap1e308|x|y",
];

/** Values for tokens, references, URIs and composites. */
const SHAPED: Hostile[] = [
  "system|'code",
  "'|'",
  "'|",
  "|'",
  "http://x.org/'|'); DELETE FROM resource; --",
  "Patient/'1",
  "Patient/../x",
  "Patient/1/_history/'",
  "Patient/",
  "/Patient/1",
  "'/1",
  "Patient'/1",
  "urn:uuid:'",
  `http://x.org/'"<>/Patient/1`,
  "http://127.0.0.1/fhir/Patient/'",
  "http://127.0.0.1/fhir/Patient/1%27",
  "'$'",
  "a$b",
  "$$$",
  "x$ge'1",
  "x$9999-99-99",
  "x$1e999999",
];

/** Modifiers tried on every parameter (each with a few hostile values). */
const MODIFIERS = [
  "exact",
  "contains",
  "not",
  "text",
  "above",
  "below",
  "in",
  "not-in",
  "of-type",
  "identifier",
  "iterate",
  "Patient",
  "Observation'",
  "bogus",
  "'",
  "",
];
/** Per modifier: an OR-list of SQL-shaped values (each reaches the SQL) and a NUL. */
const MODIFIER_VALUES: Hostile[] = ["' OR '1'='1,|',ge'1,%_\\,$1,Patient/'1", "a\u0000b"];

/** Ids no resource can have (the pattern is [A-Za-z0-9\-.]{1,64}), as they appear in a path. */
const HOSTILE_IDS = ["'", "' OR '1'='1", "%01", "..", "%2e%2e", "x'--", "😀", "9".repeat(65)];

/** A FHIR search probe: GET `type?query`, or POST `type/_search` with the query as a form. */
function fhirProbe(ctx: TestContext, type: string, query: string, post = false): Probe {
  const headers = { accept: "application/fhir+json" };
  return {
    label: `${post ? "POST" : "GET"} ${type}?${query}`,
    kind: "fhir",
    run: () =>
      post
        ? ctx.fetch(`${type}/_search`, {
          method: "POST",
          headers: { ...headers, "content-type": "application/x-www-form-urlencoded" },
          body: query,
        })
        : ctx.fetch(`${type}?${query}`, { headers }),
  };
}

/**
 * Five linked resources under one tag: Patient ← Observation, ImagingStudy ← DiagnosticReport
 * ← Task.
 */
async function seedFhir(ctx: TestContext, u: string): Promise<Record<string, any>> {
  const patient = await create(ctx, {
    resourceType: "Patient",
    meta: tagged(u),
    identifier: [{ system: `urn:mrn:${u}`, value: "p'1" }],
    name: [{ family: `O'Brien${u}`, given: ["Robert'); DROP TABLE resource; --"] }],
    gender: "male",
    birthDate: "1970-01-02",
    telecom: [{ system: "email", value: `${u}@example.org` }],
    address: [{ city: "Quote'ville", postalCode: "12%_4" }],
  });
  const subject = { reference: `Patient/${patient.id}` };
  const observation = await create(ctx, {
    resourceType: "Observation",
    meta: tagged(u),
    status: "final",
    code: { coding: [{ system: "http://loinc.org", code: "8867-4" }], text: "Heart rate" },
    subject,
    effectiveDateTime: "2020-05-06T07:08:09Z",
    valueQuantity: {
      value: 72,
      unit: "beats/min",
      system: "http://unitsofmeasure.org",
      code: "/min",
    },
  });
  const study = await create(ctx, {
    resourceType: "ImagingStudy",
    meta: tagged(u),
    status: "available",
    identifier: [{ system: "urn:dicom:uid", value: `urn:oid:${newUid()}` }],
    subject,
    started: "2020-05-06T07:00:00Z",
    numberOfSeries: 1,
    series: [{
      uid: newUid(),
      modality: { system: "http://dicom.nema.org/resources/ontology/DCM", code: "CT" },
    }],
  });
  const report = await create(ctx, {
    resourceType: "DiagnosticReport",
    meta: tagged(u),
    status: "final",
    code: { text: "CT chest" },
    subject,
    effectiveDateTime: "2020-05-06",
    result: [{ reference: `Observation/${observation.id}` }],
    imagingStudy: [{ reference: `ImagingStudy/${study.id}` }],
    conclusion: "No' finding",
  });
  const task = await create(ctx, {
    resourceType: "Task",
    meta: tagged(u),
    status: "completed",
    intent: "order",
    code: { text: "Analyse imaging study" },
    focus: { reference: `ImagingStudy/${study.id}` },
    for: subject,
    output: [{
      type: { text: "report" },
      valueReference: { reference: `DiagnosticReport/${report.id}` },
    }],
    authoredOn: "2020-05-06T08:00:00Z",
  });
  return {
    Patient: patient,
    Observation: observation,
    ImagingStudy: study,
    DiagnosticReport: report,
    Task: task,
  };
}

async function counts(ctx: TestContext): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const type of TYPES) {
    const res = await fhirJson(ctx, "GET", `${type}?_summary=count`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    out[type] = res.body.total;
  }
  return out;
}

backendTest(
  "injection: hostile values in every FHIR search parameter answer < 500 and change nothing",
  async (ctx) => {
    const u = uniq("inj");
    const seeded = await seedFhir(ctx, u);
    const before = await counts(ctx);

    const cs = await fhirJson(ctx, "GET", "metadata");
    assert.equal(cs.status, 200);
    const probes: Probe[] = [];
    const add = (type: string, query: string, post = false) =>
      probes.push(fhirProbe(ctx, type, query, post));
    let paramCount = 0;
    for (const type of TYPES) {
      const entry = cs.body.rest[0].resource.find((r: any) => r.type === type);
      assert.ok(entry, `${type} is in the CapabilityStatement`);
      const params: { name: string; type: string }[] = entry.searchParam;
      assert.ok(params.length > 5, `${type} lists its search parameters`);
      const names = new Set(params.map((p) => p.name));
      for (const common of ["_id", "_lastUpdated", "_tag", "_profile", "_security", "_source"]) {
        if (!names.has(common)) params.push({ name: common, type: "token" });
      }
      for (const { name, type: kind } of params) {
        paramCount++;
        const values = [
          ...GENERIC,
          ...(["number", "date", "quantity"].includes(kind) ? ORDERED : []),
          ...(["token", "reference", "uri", "composite", "string"].includes(kind) ? SHAPED : []),
        ];
        for (const v of values) add(type, pair(name, v));
        // Several hostile values OR-ed, and the same parameter repeated (AND).
        add(type, pair(name, "',\"',\\,,%00,$1"));
        add(type, `${pair(name, "'")}&${pair(name, "' OR 1=1 --")}&${pair(name, "\u0000")}`);
        // The longest values again through the form body of POST _search.
        add(type, pair(name, LONG_100K), true);
        add(type, pair(name, "a\u0000b"), true);
        for (const m of MODIFIERS) {
          for (const v of MODIFIER_VALUES) add(type, pair(`${name}:${m}`, v));
        }
        for (const v of ["maybe", "'", "true'", "\u0000", "TRUE", ""]) {
          add(type, pair(`${name}:missing`, v));
        }
        // Hostile key shapes around a real name.
        for (const key of [`${name}'`, `${name}:'--`, `${name}\u0000`, `'${name}`, `${name}.`]) {
          add(type, pair(key, "1"));
        }
      }
      // Result parameters.
      // Every generic value on Patient; a sample on the other types (the code is shared).
      const g = type === "Patient" ? GENERIC : SAMPLE;
      const result: [string, Hostile[]][] = [
        ["_sort", [...g, "-'", "_id,'", "-_lastUpdated,--", "name,-'"]],
        ["_count", [...g, "-1", "1e999", "99999999999999999999", "0x10", "1.5", " 1"]],
        ["_total", g],
        ["_summary", g],
        ["_elements", [...g, "id,'", "meta.'", "*"]],
        ["_include", [...g, `${type}:'`, `${type}:subject:'`, "'':'':''", `${type}:*`]],
        ["_include:iterate", [`${type}:'`, "\u0000:\u0000", LONG_10K]],
        ["_include:'", [`${type}:subject`]],
        ["_revinclude", [...g, `Observation:'`, `'${type}:subject`, "Observation:subject:'"]],
        ["_revinclude:iterate", ["Observation:'", "\u0000", LONG_10K]],
        ["_cursor", [...g, btoa('[0,["\'",1]]'), btoa('[0,["x"]]'), btoa("{}")]],
        ["_format", ["'", "\u0000", "json'", LONG_10K]],
        ["_pretty", ["'", "\u0000", LONG_10K]],
        ["_text", ["'", "\u0000", LONG_10K]],
        ["_content", ["'", "\u0000", LONG_10K]],
        ["_query", ["'", "\u0000"]],
        ["_list", ["'", "\u0000"]],
        ["_filter", ["name eq '", "\u0000"]],
      ];
      for (const [key, values] of result) for (const v of values) add(type, pair(key, v));
      // Sort by each parameter, with a hostile cursor built for that sort.
      for (const { name } of params.slice(0, 40)) {
        add(type, pair("_sort", `-${name}`));
        add(type, `${pair("_sort", name)}&${pair("_cursor", btoa(JSON.stringify([0, ["'", 1]])))}`);
        add(
          type,
          `${pair("_sort", name)}&${
            pair("_cursor", btoa(JSON.stringify([1, ["9999-99-99", "x"]])))
          }`,
        );
      }
      // Hostile keys.
      for (const key of ["'", "\u0000", "' OR '1'='1", "_has", "_has:", "_has:'", "--", LONG_10K]) {
        add(type, pair(key, "1"));
      }
    }
    // Chains and _has, with hostile pieces in the key and the value.
    const chains: [string, string][] = [
      ["Observation", "subject:Patient.name"],
      ["Observation", "subject.name"],
      ["Observation", "subject:Patient.identifier"],
      ["Observation", "subject:Patient.birthdate"],
      ["Observation", "patient._id"],
      ["Observation", "subject:Patient.organization.name"],
      ["Observation", "subject:Patient.'"],
      ["Observation", "subject:'.name"],
      ["Observation", "subject:Patient.name:'"],
      ["Observation", "subject:Patient.name:exact"],
      ["Observation", "subject:Patient.name:contains"],
      ["Observation", "subject:Patient.name:missing"],
      ["Observation", "subject.'; DROP TABLE resource; --"],
      ["DiagnosticReport", "result.code"],
      ["DiagnosticReport", "result.value-quantity"],
      ["DiagnosticReport", "imaging-study.identifier"],
      ["Task", "focus:ImagingStudy.patient.name"],
      ["Task", "focus:ImagingStudy.subject:Patient.birthdate"],
      ["Patient", "_has:Observation:subject:code"],
      ["Patient", "_has:Observation:patient:value-quantity"],
      ["Patient", "_has:Observation:subject:date"],
      ["Patient", "_has:Observation:subject:code:not"],
      ["Patient", "_has:Observation:subject:subject.name"],
      ["Patient", "_has:Observation:'':code"],
      ["Patient", "_has:':subject:code"],
      ["Patient", "_has:Observation:subject:'"],
      ["Patient", "_has:Observation:subject:_has:Observation:subject:code"],
      ["Patient", "_has:Observation:subject"],
      ["ImagingStudy", "_has:DiagnosticReport:imaging-study:status"],
      ["ImagingStudy", "_has:Task:focus:status"],
      ["DiagnosticReport", "_has:Task:focus:status"],
    ];
    for (const [type, key] of chains) {
      for (const v of [...SAMPLE, "ge'1", "2020-13-45", "system|'code", "Patient/'1"]) {
        add(type, pair(key, v));
      }
    }
    // A value past 64 KiB in the URL itself (a raw socket: fetch() will not send it).
    for (const type of TYPES) {
      for (const key of ["_id", "name", "_lastUpdated", "identifier", "subject"]) {
        probes.push({
          label: `GET (raw) ${type}?${key}=<100 000 characters>`,
          kind: "raw",
          run: () => rawGet(ctx.origin, `/fhir/${type}?${pair(key, LONG_100K)}`),
        });
      }
    }
    // Hostile ids and versions in the path (read, vread, history, delete, patch), and hostile
    // history parameters. (NUL in a path: injection_fhir_path_test.ts.)
    for (const type of TYPES) {
      const real = seeded[type].id;
      for (const id of HOSTILE_IDS) {
        const encoded = /%/.test(id) ? id : enc(id);
        for (const p of [`${type}/${encoded}`, `${type}/${encoded}/_history`]) {
          probes.push(pathProbe(ctx, "GET", p));
        }
        probes.push(pathProbe(ctx, "GET", `${type}/${encoded}/_history/1`));
        probes.push(pathProbe(ctx, "GET", `${type}/${real}/_history/${encoded}`));
        if (!id.includes(".") && !id.includes("%2e")) {
          probes.push(pathProbe(ctx, "DELETE", `${type}/${encoded}`));
          probes.push(pathProbe(ctx, "PATCH", `${type}/${encoded}`));
          probes.push(pathProbe(ctx, "PUT", `${type}/${encoded}`));
        }
      }
      const history = [
        ...SAMPLE,
        "9999",
        "ap9999",
        "ge'1",
        "-1.-1.-1",
        "1.2",
      ];
      for (const v of history) {
        for (const key of ["_since", "_at", "_count", "_page", "_cursor"]) {
          for (const path of [`${type}/_history`, `${type}/${real}/_history`, "_history"]) {
            probes.push({ ...fhirProbe(ctx, path, pair(key, v)), kind: "any" });
          }
        }
      }
    }
    const failures = await sweep(probes);
    console.log(
      `[${ctx.backend}] FHIR search: ${probes.length} requests over ${paramCount} parameters`,
    );
    assertNoFailures(failures, probes.length, "hostile searches");
    await assertAuditWrites(ctx);

    // Nothing changed: the same resources, versions and content; the same counts per type.
    for (const type of TYPES) {
      const s = seeded[type];
      const res = await fhirJson(ctx, "GET", `${type}/${s.id}`);
      assert.equal(res.status, 200, `${type}/${s.id}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.meta.versionId, s.meta.versionId, `${type} version`);
      assert.deepEqual(res.body, s, `${type} content`);
      assert.deepEqual(await searchIds(ctx, `${type}?${tagQ(u)}`), [s.id], `${type} by tag`);
    }
    assert.deepEqual(await counts(ctx), before, "counts per type");
    // The index tables still answer (a string, a token, a reference, a date and a chain).
    const p = seeded.Patient.id;
    assert.deepEqual(await searchIds(ctx, `Patient?name=${enc(`O'Brien${u}`)}`), [p]);
    assert.deepEqual(await searchIds(ctx, `Patient?identifier=${enc(`urn:mrn:${u}|p'1`)}`), [p]);
    assert.deepEqual(await searchIds(ctx, `Observation?${tagQ(u)}&subject=Patient/${p}`), [
      seeded.Observation.id,
    ]);
    assert.deepEqual(await searchIds(ctx, `Patient?${tagQ(u)}&birthdate=1970-01-02`), [p]);
    assert.deepEqual(
      await searchIds(ctx, `DiagnosticReport?${tagQ(u)}&result.code=8867-4`),
      [seeded.DiagnosticReport.id],
    );
  },
);
