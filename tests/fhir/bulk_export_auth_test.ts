// deno-lint-ignore-file no-explicit-any
/**
 * FHIR Bulk Data `$export` with AUTH=on: a Backend Services client (`client_credentials` with a
 * `private_key_jwt` assertion, `system/*.rs`) runs it end to end through MedplumClient (a real
 * FHIR client's `bulkExport`); the status and files need the same token and are another caller's
 * 404; a patient-bound token exports its patient's compartment only; fine-grained scope queries
 * apply; a type the scopes do not allow is a 403.
 */
import assert from "node:assert/strict";
import { ClientStorage, MedplumClient, MemoryStorage } from "@medplum/core";
import { issueAccessToken } from "../../auth/jwt.ts";
import { type AuthStack, startAuthStack } from "../auth/_auth_harness.ts";
import { auth, bulkExport, counts, download, idsOf, kickOff } from "./_bulk.ts";

const CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category";
const MINE = new Set(["Observation", "Patient", "Practitioner"]);

let stack: AuthStack | undefined;

/** Patients a and b with 6 Observations each (every other one laboratory) and a Practitioner. */
async function setUp(): Promise<AuthStack> {
  const st = await startAuthStack();
  const entry: any[] = [{ resourceType: "Practitioner", id: "dr" }];
  for (const p of ["a", "b"]) {
    entry.push({ resourceType: "Patient", id: p });
    for (let i = 0; i < 6; i++) {
      entry.push({
        resourceType: "Observation",
        id: `o-${p}-${i}`,
        status: "final",
        category: [{ coding: [{ system: CATEGORY, code: i % 2 ? "vital-signs" : "laboratory" }] }],
        code: { text: "weight" },
        subject: { reference: `Patient/${p}` },
      });
    }
  }
  const res = await st.call("/fhir", {
    method: "POST",
    token: st.tokens.admin,
    headers: { "Content-Type": "application/fhir+json" },
    body: JSON.stringify({
      resourceType: "Bundle",
      type: "transaction",
      entry: entry.map((r) => ({
        resource: r,
        request: { method: "PUT", url: `${r.resourceType}/${r.id}` },
      })),
    }),
  });
  assert.equal(res.status, 200, await res.text());
  return st;
}
const world = async () => stack ??= await setUp();

/** An access token minted by the server's key ring (a SMART app's, without the launch dance). */
async function token(st: AuthStack, claims: { sub: string; scope: string; patient?: string }) {
  const { token } = await issueAccessToken(st.services.auth.ring, { kind: "user", ...claims }, {
    issuer: st.services.config.auth.issuer,
    audience: st.services.auth.audience,
    ttlSeconds: 300,
  });
  return token;
}

function mine(files: Map<string, any[]>): Record<string, number> {
  return counts(new Map([...files].filter(([type]) => MINE.has(type))));
}

function test(name: string, fn: (st: AuthStack) => Promise<void>): void {
  Deno.test({
    name,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => fn(await world()),
  });
}

test("a backend-services client with system/*.rs exports through MedplumClient", async (st) => {
  const res = await st.clientToken("system", st.clientKeys.system, "system/*.rs");
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.scope, "system/*.rs");
  const medplum = new MedplumClient({
    baseUrl: `${st.origin}/`,
    fhirUrlPath: "fhir",
    fetch: (url: string, init: any) => fetch(url, init),
    storage: new ClientStorage(new MemoryStorage()),
    cacheTime: 0,
  });
  medplum.setAccessToken(body.access_token);
  const manifest: any = await medplum.bulkExport(
    "",
    "Patient,Observation,Practitioner",
    undefined,
    {
      pollStatusOnAccepted: true,
      pollStatusPeriod: 200,
    },
  );
  assert.equal(manifest.requiresAccessToken, true);
  const files = await download(manifest, body.access_token);
  assert.deepEqual(counts(files), { Observation: 12, Patient: 2, Practitioner: 1 });

  // The files and the status need a token, and are nobody else's.
  const file = manifest.output[0].url as string;
  assert.ok(file.startsWith(`${st.origin}/fhir/$export-file/`), "files are served by the server");
  const noToken = await fetch(file);
  assert.equal(noToken.status, 401);
  await noToken.body?.cancel();
  for (const other of [st.tokens.admin, st.tokens.viewer]) {
    const res = await fetch(file, { headers: auth(other) });
    assert.equal(res.status, 404, "another caller's file does not exist to it");
    await res.body?.cancel();
  }
});

test("another caller cannot see, read or cancel an export", async (st) => {
  const done = await bulkExport(`${st.origin}/fhir/$export?_type=Patient`, {
    token: st.tokens.clinician,
  });
  for (const other of [st.tokens.admin, st.tokens.viewer, st.tokens.system]) {
    for (const method of ["GET", "DELETE"]) {
      const res = await fetch(done.statusUrl, { method, headers: auth(other) });
      assert.equal(res.status, 404, `${method} status as another caller`);
      await res.body?.cancel();
    }
    const file = await fetch(done.manifest.output[0].url, { headers: auth(other) });
    assert.equal(file.status, 404);
    await file.body?.cancel();
  }
  const unauthenticated = await fetch(done.statusUrl);
  assert.equal(unauthenticated.status, 401);
  await unauthenticated.body?.cancel();
  // The owner still can.
  const own = await fetch(done.statusUrl, { headers: auth(st.tokens.clinician) });
  assert.equal(own.status, 200);
  await own.body?.cancel();
});

test("a patient-bound token exports its patient's compartment only", async (st) => {
  const bound = await token(st, { sub: "bound-a", scope: "patient/*.rs", patient: "a" });
  for (const path of ["$export", "Patient/$export"]) {
    const done = await bulkExport(`${st.origin}/fhir/${path}`, { token: bound });
    // No Practitioner (outside any compartment), nothing of b's.
    assert.deepEqual(mine(done.files), { Observation: 6, Patient: 1 }, path);
    assert.deepEqual(idsOf(done.files, "Patient"), ["a"]);
    assert.ok(done.files.get("Observation")!.every((o) => o.subject.reference === "Patient/a"));
  }
  // Naming a type outside the compartment is refused.
  const res = await kickOff(`${st.origin}/fhir/$export?_type=Practitioner`, { token: bound });
  assert.equal(res.status, 403);
  await res.body?.cancel();
});

test("fine-grained scope queries limit the export; a type not granted is a 403", async (st) => {
  const lab = await token(st, {
    sub: "lab-reader",
    scope: `user/Observation.rs?category=${encodeURIComponent(`${CATEGORY}|laboratory`)}`,
  });
  const done = await bulkExport(`${st.origin}/fhir/$export`, { token: lab });
  assert.deepEqual(mine(done.files), { Observation: 6 });
  assert.ok(
    done.files.get("Observation")!.every((o) => o.category[0].coding[0].code === "laboratory"),
  );
  const refused = await kickOff(`${st.origin}/fhir/$export?_type=Patient`, { token: lab });
  assert.equal(refused.status, 403);
  assert.equal((await refused.json()).resourceType, "OperationOutcome");
  // The narrow client (system/Patient.rs): Patients only; Observations refused.
  const narrow = await bulkExport(`${st.origin}/fhir/$export`, { token: st.tokens.narrow });
  assert.deepEqual(counts(narrow.files), { Patient: 2 });
  const obs = await kickOff(`${st.origin}/fhir/$export?_type=Observation`, {
    token: st.tokens.narrow,
  });
  assert.equal(obs.status, 403);
  await obs.body?.cancel();
});

Deno.test({
  name: "the bulk export auth stack stops",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => await stack?.close(),
});
