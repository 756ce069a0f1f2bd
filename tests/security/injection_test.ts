// deno-lint-ignore-file no-explicit-any
/**
 * @module Injection sweep (security): SQL metacharacters, control characters (NUL included),
 * unicode and very long values sent in every search parameter the CapabilityStatement lists for
 * Patient, Observation, ImagingStudy, DiagnosticReport and Task (with every modifier, chains,
 * `_has` and the result parameters), in every QIDO-RS query key at each level, in the UIDs of
 * WADO-RS paths, and in the strings of FHIR JSON bodies. Proves that each answer is a client error
 * (400/404 with an OperationOutcome) or a normal answer (a searchset Bundle, a DICOM JSON array),
 * never a 5xx, that the seeded data is unchanged afterwards (same versions, same content, same
 * counts), that the tables still answer searches, that the audit trail still writes, and that an
 * invalid body stores nothing. Values past 64 KiB go in a form body (POST _search) and on a raw
 * socket. The last test, ignored until its causes outside fhir/search are fixed, pins U+0000 in
 * FHIR path ids and history `_page` overflows.
 */
import assert from "node:assert/strict";
import {
  type Backend,
  backendTest,
  context,
  fhirJson,
  type TestContext,
  uniq,
} from "../_harness.ts";
import { dicomJson, newUid, seedStudy, uids, value } from "../dicom/_dicomweb_util.ts";
import { assertOutcome, create, searchIds, tagged, tagQ } from "../fhir/_util.ts";

const enc = encodeURIComponent;
const TYPES = ["Patient", "Observation", "ImagingStudy", "DiagnosticReport", "Task"] as const;
const BATCH = 16;

/** A value as the client sends it: text (percent-encoded here) or raw query text (sent as is). */
type Hostile = string | { raw: string };

const LONG_10K = "x".repeat(10_000);
/** Close to the longest URL a client (and Deno's HTTP server) takes: about 64 KiB. */
const LONG_60K = "y".repeat(60_000);
/** Past it: sent in a form body (POST _search) and, on a raw socket, as a GET. */
const LONG_100K = "'".repeat(50_000) + "y".repeat(50_000);

/** Values sent to every parameter, whatever its type. */
const GENERIC: Hostile[] = [
  "",
  "'",
  "''",
  "' OR '1'='1",
  "'; DROP TABLE resource; --",
  "\\",
  "%",
  "_",
  "$$",
  "$1",
  "\u0000",
  "a\u0000b",
  { raw: "%00" },
  "\u0001\u0002\u0007\b\u000b\f\u001b\u001f",
  "\t\r\n",
  "\u007f\u0085\u009f",
  '"',
  "*",
  "(",
  ")",
  ";",
  "--",
  "/*",
  "😀🩻",
  "\u202eevil\u202c\u200f\u200e",
  "\ufeff\ufffd\uffff",
  "|",
  "||",
  "|x|y",
  "'|'",
  ",,,",
  "$",
  "a$b$c",
  "/",
  { raw: "%" },
  { raw: "%zz" },
  { raw: "%FF%FE" },
  { raw: "%ED%A0%80" },
  LONG_10K,
  LONG_60K,
  "'".repeat(10_000),
  "😀".repeat(4_000),
  ",".repeat(5_000),
  "\\".repeat(10_001),
];

/** A sample of GENERIC, where every value on every key would add time and no coverage. */
const SAMPLE: Hostile[] = [
  "",
  "'",
  "' OR '1'='1",
  "'; DROP TABLE resource; --",
  "\\",
  "%",
  "_",
  "$1",
  "\u0000",
  "\u0001\u001f",
  "😀🩻",
  "|'",
  ",,,",
  LONG_10K,
];

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

function pair(key: string, v: Hostile): string {
  return `${enc(key)}=${typeof v === "string" ? enc(v) : v.raw}`;
}

/** Every request leaves an AuditEvent: the hostile ones too, and the trail still writes. */
async function assertAuditWrites(ctx: TestContext): Promise<void> {
  await ctx.services.audit.flush();
  assert.equal(ctx.services.audit.pending, 0, "audit events are all written");
}

interface Probe {
  label: string;
  run: () => Promise<Response>;
  /**
   * How to check the answer: a searchset Bundle (FHIR search) or a DICOM JSON array (QIDO) when
   * 2xx, an OperationOutcome when 4xx; `any` (other FHIR and WADO-RS paths) and `raw` (a raw
   * socket, where Deno's HTTP server may answer a bare 400) check only that it is below 500.
   */
  kind: "fhir" | "qido" | "any" | "raw";
}

/**
 * GET over a raw socket, for URLs longer than fetch() sends (64 KiB): the status, and the body as
 * received (possibly chunked).
 */
async function rawGet(origin: string, target: string): Promise<Response> {
  const { hostname, port } = new URL(origin);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  try {
    const head = `GET ${target} HTTP/1.1\r\nHost: ${hostname}\r\nAccept: */*\r\n` +
      "Connection: close\r\n\r\n";
    await conn.write(new TextEncoder().encode(head));
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(65536);
    for (;;) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
    }
    const bytes = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of chunks) (bytes.set(c, at), at += c.length);
    const text = new TextDecoder().decode(bytes);
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
    if (!status) throw new Error(`no status line: ${text.slice(0, 100)}`);
    return new Response(text.slice(text.indexOf("\r\n\r\n") + 4), { status });
  } finally {
    try {
      conn.close();
    } catch { /* closed by the server */ }
  }
}

/**
 * Runs every probe, BATCH at a time; returns the failures (a 5xx, or a body of the wrong shape).
 * Each response body is read whole, so nothing is left streaming.
 */
async function sweep(probes: Probe[]): Promise<string[]> {
  const failures: string[] = [];
  const short = (s: string) => (s.length > 300 ? `${s.slice(0, 300)}…` : s);
  const one = async (p: Probe) => {
    const label = short(p.label);
    let res: Response;
    try {
      res = await p.run();
    } catch (e) {
      failures.push(`${label}: request failed: ${short(String(e))}`);
      return;
    }
    const text = await res.text();
    if (res.status >= 500) {
      failures.push(`${label} → ${res.status} ${short(text)}`);
      return;
    }
    let body: any;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = undefined;
    }
    if (p.kind === "any" || p.kind === "raw") return;
    if (res.status >= 400) {
      // Every client error of this API is an OperationOutcome.
      if (body?.resourceType !== "OperationOutcome") {
        failures.push(`${label} → ${res.status} without an OperationOutcome: ${short(text)}`);
      }
      return;
    }
    if (p.kind === "fhir" && (body?.resourceType !== "Bundle" || body.type !== "searchset")) {
      failures.push(`${label} → ${res.status} not a searchset: ${short(text)}`);
    }
    if (p.kind === "qido" && !Array.isArray(body)) {
      failures.push(`${label} → ${res.status} not a DICOM JSON array: ${short(text)}`);
    }
  };
  for (let i = 0; i < probes.length; i += BATCH) {
    await Promise.all(probes.slice(i, i + BATCH).map(one));
  }
  return failures;
}

function assertNoFailures(failures: string[], total: number, what: string): void {
  assert.equal(
    failures.length,
    0,
    `${failures.length} of ${total} ${what} failed:\n${failures.slice(0, 40).join("\n")}`,
  );
}

/** Ids no resource can have (the pattern is [A-Za-z0-9\-.]{1,64}), as they appear in a path. */
const HOSTILE_IDS = ["'", "' OR '1'='1", "%01", "..", "%2e%2e", "x'--", "😀", "9".repeat(65)];

/** A request to a FHIR path (a JSON body for PUT and PATCH) where only "below 500" is asked. */
function pathProbe(ctx: TestContext, method: string, path: string): Probe {
  const body = method === "PUT"
    ? JSON.stringify({ resourceType: path.split("/")[0], id: "x" })
    : method === "PATCH"
    ? JSON.stringify([{ op: "replace", path: "/active", value: true }])
    : undefined;
  const type = method === "PATCH" ? "application/json-patch+json" : "application/fhir+json";
  return {
    label: `${method} ${path}`,
    kind: "any",
    run: () =>
      ctx.fetch(path, {
        method,
        headers: { accept: "application/fhir+json", ...(body ? { "content-type": type } : {}) },
        body,
      }),
  };
}

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

/** Five linked resources under one tag: Patient ← Observation, ImagingStudy ← DiagnosticReport ← Task. */
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
    // history parameters. (NUL in a path: the pending test at the end of this file.)
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

/** Hostile values for QIDO-RS keys: the generic ones and DICOM-shaped ones with wildcards. */
const QIDO_VALUES: Hostile[] = [
  ...GENERIC,
  "*'*",
  "'*",
  "?'",
  "%*",
  "_?",
  "\\*",
  "*\u0000*",
  "O'Brien*",
  "*' OR '1'='1",
  "20200101-'",
  "'-20200101",
  "20200101-20201399",
  "99999999",
  "00000000-99999999",
  "20200101--",
  "-",
  "--",
  "12'",
  "120000-'",
  "250000",
  "12.1234567",
  "1.2,'",
  "1.2\\'",
  "','",
  "1.2,,",
  "1.2,\u0000",
  "CT,'",
  "CT\\'",
  "99999999999999999999",
  "2147483648",
  "-2147483649",
  "1,99999999999999999999",
  "1e3",
  "0x1",
  "1.2.3.".repeat(2_000),
];

/** The matching keys, by keyword and by tag, and the result parameters. */
const QIDO_KEYS = [
  "PatientName",
  "PatientID",
  "StudyDate",
  "StudyTime",
  "AccessionNumber",
  "ModalitiesInStudy",
  "ReferringPhysicianName",
  "StudyDescription",
  "StudyID",
  "StudyInstanceUID",
  "SeriesInstanceUID",
  "SeriesDescription",
  "BodyPartExamined",
  "SOPInstanceUID",
  "SOPClassUID",
  "Modality",
  "SeriesNumber",
  "InstanceNumber",
  "PatientBirthDate",
  "00100010",
  "00100020",
  "00080020",
  "00080030",
  "00080050",
  "00080061",
  "00080090",
  "00081030",
  "00200010",
  "0020000D",
  "0020000E",
  "0008103E",
  "00180015",
  "00080018",
  "00080016",
  "00080060",
  "00200011",
  "00200013",
  "0020000d",
  "includefield",
  "limit",
  "offset",
  "fuzzymatching",
];

backendTest(
  "injection: hostile QIDO-RS keys and WADO-RS path UIDs answer < 500 and change nothing",
  async (ctx) => {
    const a = await seedStudy(ctx, { PatientName: "O'Brien^Mary", StudyDescription: "CT '; --" });
    const b = await seedStudy(ctx);
    const mine = (rows: any[]) =>
      uids(rows, "0020000D").filter((s: string) => s === a.study || s === b.study);
    const before = await dicomJson(ctx, `studies?PatientID=${a.patientId}&includefield=all`);
    assert.equal(before.status, 200);

    const probes: Probe[] = [];
    const qidoProbe = (path: string): Probe => ({
      label: `GET /dicomweb/${path}`,
      kind: "qido",
      run: () =>
        fetch(`${ctx.origin}/dicomweb/${path}`, { headers: { accept: "application/dicom+json" } }),
    });
    const levels = [
      "studies",
      "series",
      "instances",
      `studies/${a.study}/series`,
      `studies/${a.study}/instances`,
      `studies/${a.study}/series/${a.series[0]}/instances`,
    ];
    for (const key of QIDO_KEYS) {
      // Every value at the instance level (where every key matches), a sample at the others.
      for (const v of QIDO_VALUES) probes.push(qidoProbe(`instances?${pair(key, v)}`));
      for (const level of levels.filter((l) => l !== "instances")) {
        for (const v of ["'", "a\u0000b", "*'*", "20200101-'", "1.2,'", "2147483648", LONG_10K]) {
          probes.push(qidoProbe(`${level}?${pair(key, v)}`));
        }
      }
      probes.push({
        label: `GET (raw) /dicomweb/studies?${key}=<100 000 characters>`,
        kind: "raw",
        run: () => rawGet(ctx.origin, `/dicomweb/studies?${pair(key, LONG_100K)}`),
      });
    }
    // Hostile keys, several keys at once, repeated keys.
    for (
      const key of ["'", "\u0000", "PatientName'", "0010001G", "00100010'", "(0010,0010)", LONG_10K]
    ) {
      probes.push(qidoProbe(`studies?${pair(key, "x")}`));
    }
    probes.push(
      qidoProbe(
        `instances?${pair("PatientName", "'*")}&${pair("StudyDate", "-'")}&${
          pair("Modality", "CT\\'")
        }&${pair("limit", "'")}`,
      ),
    );
    probes.push(qidoProbe(`studies?${pair("PatientID", "'")}&${pair("PatientID", "\u0000")}`));

    // WADO-RS: hostile UIDs in the path (the route takes [0-9.]{1,64}; anything else is no route).
    const s = a.study;
    const se = a.series[0];
    const sop = a.instances[0].sop;
    const bad = [
      "'",
      "1.2'",
      "1.2%27",
      "%00",
      "1.2%00",
      "1.2;--",
      "..",
      "%2e%2e",
      "1..2",
      ".",
      "9".repeat(64),
      "9".repeat(65),
      "1".repeat(10_000),
      "%F0%9F%98%80",
      "1.2%2F3",
      "1.2%5C",
      "*",
      "1.2,3.4",
    ];
    const wadoPaths: string[] = [];
    for (const x of bad) {
      wadoPaths.push(
        `studies/${x}`,
        `studies/${x}/metadata`,
        `studies/${x}/series`,
        `studies/${x}/instances`,
        `studies/${s}/series/${x}`,
        `studies/${s}/series/${x}/metadata`,
        `studies/${s}/series/${x}/instances`,
        `studies/${s}/series/${se}/instances/${x}`,
        `studies/${s}/series/${se}/instances/${x}/metadata`,
        `studies/${s}/series/${se}/instances/${sop}/frames/${x}`,
        `studies/${s}/series/${se}/instances/${sop}/frames/${x}/rendered`,
        `studies/${s}/series/${se}/instances/${sop}/bulkdata/${x}`,
        `studies/${s}/series/${se}/instances/${sop}/rendered?window=${x}`,
        `studies/${s}/series/${se}/instances/${sop}/rendered?quality=${x}`,
        `studies/${s}/series/${se}/instances/${sop}/rendered?viewport=${x}`,
      );
    }
    for (const path of wadoPaths) {
      const accept = path.includes("rendered")
        ? "image/png"
        : /metadata$|series$|instances$/.test(path)
        ? "application/dicom+json"
        : 'multipart/related; type="application/dicom"';
      probes.push({
        label: `GET /dicomweb/${path}`,
        kind: "any",
        run: () => fetch(`${ctx.origin}/dicomweb/${path}`, { headers: { accept } }),
      });
    }
    const failures = await sweep(probes);
    console.log(
      `[${ctx.backend}] DICOMweb: ${probes.length} requests (${wadoPaths.length} WADO-RS paths)`,
    );
    assertNoFailures(failures, probes.length, "hostile DICOMweb requests");
    await assertAuditWrites(ctx);

    // Nothing changed: both studies found, the same attributes, WADO-RS still serves them.
    const after = await dicomJson(ctx, `studies?PatientID=${a.patientId}&includefield=all`);
    assert.deepEqual(after.body, before.body);
    const both = await dicomJson(ctx, `studies?PatientID=${a.patientId},${b.patientId}`);
    assert.equal(both.status, 200);
    assert.deepEqual(
      mine([
        ...(await dicomJson(ctx, `studies?PatientID=${a.patientId}`)).body,
        ...(await dicomJson(ctx, `studies?PatientID=${b.patientId}`)).body,
      ]),
      [a.study, b.study].sort(),
    );
    const named = await dicomJson(ctx, `studies?PatientName=${enc("o'brien^*")}`);
    assert.ok(mine(named.body).includes(a.study), "a name with a quote still matches");
    const instances = await dicomJson(ctx, `studies/${a.study}/instances`);
    assert.equal(instances.body.length, 4);
    assert.equal(value(instances.body[0], "0020000D"), a.study);
    const meta = await dicomJson(ctx, `studies/${a.study}/metadata`);
    assert.equal(meta.status, 200);
    assert.equal(meta.body.length, 4);
  },
);

backendTest(
  "injection: a FHIR body with NUL, control characters, lone surrogates or a 1 MB+ string is a 400 and stores nothing",
  async (ctx) => {
    const u = uniq("body");
    const patient = (marker: string, extra: Record<string, unknown>) => ({
      resourceType: "Patient",
      meta: tagged(u),
      identifier: [{ system: "urn:test:injection", value: marker }],
      ...extra,
    });
    // Each case puts the hostile string where a different FHIR type is validated.
    const cases: [string, (s: string) => Record<string, unknown>][] = [
      ["string", (s) => ({ name: [{ family: s }] })],
      [
        "code",
        (s) => ({ identifier: [{ system: "urn:x", value: "1", type: { coding: [{ code: s }] } }] }),
      ],
      ["uri", (s) => ({ identifier: [{ system: `urn:x:${s}`, value: "1" }] })],
      ["extension url", (s) => ({ extension: [{ url: `urn:x:${s}`, valueString: "v" }] })],
      [
        "xhtml",
        (s) => ({
          text: {
            status: "generated",
            div: `<div xmlns="http://www.w3.org/1999/xhtml">${s}</div>`,
          },
        }),
      ],
      ["date", (s) => ({ birthDate: `1970-01-01${s}` })],
      ["id", (s) => ({ id: `x${s}` })],
      ["key", (s) => ({ [`name${s}`]: [{ family: "x" }] })],
    ];
    const hostile: [string, string][] = [
      ["NUL", "a\u0000b"],
      ["a lone NUL", "\u0000"],
      ["control characters", "a\u0001\u0007\u001bb"],
      ["a vertical tab", "a\u000bb"],
      ["a lone high surrogate", "a\ud800b"],
      ["a lone low surrogate", "a\udc00b"],
    ];
    const probes: Probe[] = [];
    const markers: string[] = [];
    for (const [where, place] of cases) {
      for (const [what, s] of hostile) {
        const marker = uniq("m");
        markers.push(marker);
        const body = JSON.stringify(patient(marker, place(s)));
        const label = `${what} in ${where}`;
        // (A create ignores the id of its body: only PUT tries the id.)
        if (where !== "id") {
          probes.push({
            label: `POST Patient with ${label}`,
            kind: "fhir",
            run: () =>
              ctx.fetch("Patient", {
                method: "POST",
                headers: {
                  "content-type": "application/fhir+json",
                  accept: "application/fhir+json",
                },
                body,
              }),
          });
        }
        const id = uniq("id");
        probes.push({
          label: `PUT Patient/${id} with ${label}`,
          kind: "fhir",
          run: () =>
            ctx.fetch(`Patient/${id}`, {
              method: "PUT",
              headers: { "content-type": "application/fhir+json", accept: "application/fhir+json" },
              body: JSON.stringify({ id, ...patient(marker, place(s)) }),
            }),
        });
      }
    }
    // 1 MB+ strings: in a string, a uri and a code.
    const big = "b".repeat(1024 * 1024 + 1);
    for (const [where, place] of cases.slice(0, 3)) {
      const marker = uniq("m");
      markers.push(marker);
      const body = JSON.stringify(patient(marker, place(big)));
      probes.push({
        label: `POST Patient with a 1 MB+ ${where}`,
        kind: "fhir",
        run: () =>
          ctx.fetch("Patient", {
            method: "POST",
            headers: { "content-type": "application/fhir+json", accept: "application/fhir+json" },
            body,
          }),
      });
    }
    const statuses = new Map<string, number>();
    const wrapped = probes.map((p) => ({
      ...p,
      run: async () => {
        const res = await p.run();
        statuses.set(p.label, res.status);
        return res;
      },
    }));
    const failures = await sweep(wrapped);
    console.log(`[${ctx.backend}] FHIR bodies: ${probes.length} requests`);
    assertNoFailures(failures, probes.length, "hostile bodies");
    const accepted = [...statuses].filter(([, s]) => s !== 400);
    assert.deepEqual(accepted, [], "every hostile body is a 400");

    // A transaction and a JSON Patch carrying NUL: 400, nothing stored or changed.
    const marker = uniq("m");
    markers.push(marker);
    const tx = await fhirJson(ctx, "POST", "", {
      resourceType: "Bundle",
      type: "transaction",
      entry: [{
        request: { method: "POST", url: "Patient" },
        resource: patient(marker, { name: [{ family: "ok" }] }),
      }, {
        request: { method: "POST", url: "Patient" },
        resource: patient(marker, { name: [{ family: "a\u0000b" }] }),
      }],
    });
    assert.equal(tx.status, 400, JSON.stringify(tx.body));
    assertOutcome(tx.body);
    const good = await create(ctx, patient(uniq("m"), { name: [{ family: "Good" }] }));
    const patch = await ctx.fetch(`Patient/${good.id}`, {
      method: "PATCH",
      headers: { "content-type": "application/json-patch+json", accept: "application/fhir+json" },
      body: JSON.stringify([{ op: "add", path: "/name/0/given", value: ["a\u0000b"] }]),
    });
    assert.equal(patch.status, 400, await patch.text());
    const reread = await fhirJson(ctx, "GET", `Patient/${good.id}`);
    assert.deepEqual(reread.body, good, "the patched Patient is unchanged");

    // Conditional interactions whose criteria carry NUL: 400 (the search parser), nothing written.
    const condMarker = uniq("m");
    const cond = await fhirJson(ctx, "POST", "Patient", patient(condMarker, {}), {
      "if-none-exist": `identifier=urn:test:injection|${condMarker}`,
    });
    assert.equal(cond.status, 201, "a plain If-None-Exist still works");
    const conditional: [string, string, unknown, Record<string, string>][] = [
      [
        "PUT",
        `Patient?identifier=${enc("urn:test:injection|a\u0000b")}`,
        patient(condMarker, {}),
        {},
      ],
      ["DELETE", `Patient?identifier=${enc("a\u0000b")}`, undefined, {}],
      ["POST", "", {
        resourceType: "Bundle",
        type: "transaction",
        entry: [{
          request: { method: "POST", url: "Patient", ifNoneExist: "identifier=a\u0000b" },
          resource: patient(condMarker, {}),
        }],
      }, {}],
      ["POST", "", {
        resourceType: "Bundle",
        type: "batch",
        entry: [{ request: { method: "GET", url: `Patient?name=a\u0000b&_id=${good.id}` } }],
      }, {}],
    ];
    for (const [method, path, body, headers] of conditional) {
      const res = await fhirJson(ctx, method, path, body, headers);
      assert.ok(res.status < 500, `${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
      if (method === "POST" && (body as any).type === "batch") {
        assert.equal(res.body.entry[0].response.status.slice(0, 3), "400");
      } else assert.equal(res.status, 400, `${method} ${path}: ${JSON.stringify(res.body)}`);
    }
    const same = await fhirJson(ctx, "GET", `Patient/${cond.body.id}`);
    assert.equal(same.body.meta.versionId, "1", "the If-None-Exist Patient is unchanged");

    // Year 9999 (its upper bound is 10000-01-01, past 4-digit years): stored, indexed, found.
    const far = await create(ctx, patient(uniq("m"), { birthDate: "9999-12-31" }));
    for (
      const q of ["9999-12-31", "9999", "ap9999", "ge9999-12-31", "gt9999-12-30", "sa9999-12-30"]
    ) {
      assert.deepEqual(await searchIds(ctx, `Patient?${tagQ(u)}&birthdate=${q}`), [far.id], q);
    }
    assert.deepEqual(await searchIds(ctx, `Patient?${tagQ(u)}&birthdate=lt9999`), [], "lt9999");

    for (const m of markers) {
      const found = await fhirJson(
        ctx,
        "GET",
        `Patient?identifier=${enc(`urn:test:injection|${m}`)}&_summary=count`,
      );
      assert.equal(found.body.total, 0, `nothing stored for ${m}`);
    }
    assert.deepEqual(
      await searchIds(ctx, `Patient?${tagQ(u)}`),
      [good.id, cond.body.id, far.id].sort(),
    );
  },
);

/**
 * U+0000 in the id of a FHIR path, and history `_page` cursors with out-of-range numbers: read,
 * vread, history, delete and patch answer 404 or 400 (fhir/resource_ops.ts, fhir/history.ts), and
 * the audit trail keeps writing (audit/log.ts cleans NUL out of its rows, and a row the database
 * refuses is set aside without holding up the others).
 */
/** History `_page` parts past what a Date or the integer columns hold (fhir/history.ts: 500). */
const PAGE_OVERFLOWS = [
  "99999999999999999999.1.1",
  "1.99999999999999999999.1",
  "1.1.99999999999999999999",
];
for (const backend of ["pglite", "postgres"] as Backend[]) {
  const noDb = backend === "postgres" && !Deno.env.get("DATABASE_URL");
  Deno.test({
    name: noDb
      ? `injection: U+0000 in a FHIR path id and history _page overflows [postgres: skipped, ` +
        `DATABASE_URL not set]`
      : `injection: U+0000 in a FHIR path id and history _page overflows answer < 500, and the ` +
        `audit trail still writes [${backend}]`,
    ignore: noDb,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      const ctx = await context(backend);
      const p = await create(ctx, { resourceType: "Patient", meta: tagged(uniq("nul")) });
      const probes: Probe[] = [];
      for (const type of TYPES) {
        for (const id of ["%00", "a%00b"]) {
          for (
            const path of [`${type}/${id}`, `${type}/${id}/_history`, `${type}/${id}/_history/1`]
          ) {
            probes.push(pathProbe(ctx, "GET", path));
          }
          probes.push(pathProbe(ctx, "DELETE", `${type}/${id}`));
          probes.push(pathProbe(ctx, "PATCH", `${type}/${id}`));
          probes.push(pathProbe(ctx, "PUT", `${type}/${id}`));
        }
      }
      probes.push(pathProbe(ctx, "GET", `Patient/${p.id}/_history/%00`));
      for (const page of PAGE_OVERFLOWS) {
        for (const path of ["_history", "Patient/_history", `Patient/${p.id}/_history`]) {
          probes.push(pathProbe(ctx, "GET", `${path}?_page=${page}`));
        }
      }
      const failures = await sweep(probes);
      assertNoFailures(failures, probes.length, "paths with U+0000");
      await assertAuditWrites(ctx);
    },
  });
}
