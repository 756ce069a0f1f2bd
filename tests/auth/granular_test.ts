/**
 * SMART v2 fine-grained scopes over HTTP (`user/Observation.rs?category=laboratory`): searches,
 * reads, histories and includes reach only what the scope's query matches; writes must stay in it
 * (and start from a resource in it), refused writes leave nothing; a query the server cannot read
 * grants nothing; endpoints that cannot apply a query refuse such tokens.
 */
import assert from "node:assert/strict";
import { fhir } from "../sidecar/_process.ts";
import { type AuthStack, PASSWORD, startAuthStack } from "./_auth_harness.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

const CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category";
const LAB = `category=${encodeURIComponent(`${CATEGORY}|laboratory`)}`;

const observation = (id: string | undefined, code: string): Json => ({
  resourceType: "Observation",
  ...(id ? { id } : {}),
  status: "final",
  category: [{ coding: [{ system: CATEGORY, code }] }],
  code: { text: `${code} result` },
  subject: { reference: "Patient/granular" },
});

const ids = (bundle: Json): string[] =>
  (bundle.entry ?? []).map((e: Json) => `${e.resource.resourceType}/${e.resource.id}`).sort();

let stack: AuthStack | undefined;
let tokens: { lab: string; labWriter: string; bogus: string } | undefined;

async function setUp() {
  const st = stack ??= await startAuthStack();
  if (tokens) return { st, ...tokens };
  const admin = st.tokens.admin;
  for (const r of [observation("lab1", "laboratory"), observation("vital1", "vital-signs")]) {
    assert.equal((await fhir(st.origin, "PUT", `Observation/${r.id}`, r, admin)).status, 201);
  }
  await fhir(
    st.origin,
    "PUT",
    "Patient/granular",
    { resourceType: "Patient", id: "granular" },
    admin,
  );
  await fhir(st.origin, "PUT", "DiagnosticReport/rep", {
    resourceType: "DiagnosticReport",
    id: "rep",
    status: "final",
    code: { text: "panel" },
    result: [{ reference: "Observation/lab1" }, { reference: "Observation/vital1" }],
  }, admin);
  const login = async (user: string, scope: string) => {
    const res = await st.login(user, PASSWORD, scope);
    const body = await res.json();
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.scope, scope, "granted as asked (covered by the role's user/*)");
    return body.access_token as string;
  };
  tokens = {
    lab: await login("viewer", `user/Observation.rs?${LAB} user/DiagnosticReport.rs`),
    labWriter: await login("clinician", `user/Observation.crus?${LAB}`),
    bogus: await login("viewer", "user/Observation.rs?no-such-parameter=1"),
  };
  return { st, ...tokens };
}

Deno.test("fine-grained read scopes: searches, reads, histories and includes reach the query's resources", async () => {
  const { st, lab } = await setUp();
  const get = (path: string) => fhir(st.origin, "GET", path, undefined, lab);
  assert.deepEqual(ids((await get("Observation")).body), ["Observation/lab1"]);
  assert.equal((await get("Observation?_summary=count")).body.total, 1);
  assert.deepEqual(ids((await get("Observation?code:text=vital")).body), []);
  assert.equal((await get("Observation/lab1")).status, 200);
  for (
    const path of [
      "Observation/vital1",
      "Observation/vital1/_history/1",
      "Observation/vital1/_history",
    ]
  ) {
    const res = await get(path);
    assert.equal(res.status, 403, `${path}: ${JSON.stringify(res.body)}`);
    assert.match(res.body.issue[0].diagnostics, /outside the granted scopes/);
  }
  // The report's results: only the laboratory one is included.
  assert.deepEqual(
    ids((await get("DiagnosticReport?_id=rep&_include=DiagnosticReport:result")).body),
    ["DiagnosticReport/rep", "Observation/lab1"],
  );
  assert.equal((await get("Patient")).status, 403, "no Patient scope at all");
  const dicomweb = await st.call("/dicomweb/studies", { token: lab });
  assert.equal(dicomweb.status, 403);
  await dicomweb.body?.cancel();
});

Deno.test("fine-grained write scopes: writes stay in the query, refused ones leave nothing", async () => {
  const { st, labWriter } = await setUp();
  const admin = st.tokens.admin;
  const count = async () =>
    (await fhir(st.origin, "GET", "Observation?_summary=count", undefined, admin)).body.total;
  const before = await count();
  const made = await fhir(
    st.origin,
    "POST",
    "Observation",
    observation(undefined, "laboratory"),
    labWriter,
  );
  assert.equal(made.status, 201, JSON.stringify(made.body));
  const refused = await fhir(
    st.origin,
    "POST",
    "Observation",
    observation(undefined, "vital-signs"),
    labWriter,
  );
  assert.equal(refused.status, 403, JSON.stringify(refused.body));
  assert.equal(await count(), before + 1, "the refused create was rolled back");
  // Out of scope afterwards: refused, and lab1 unchanged.
  const moved = await fhir(
    st.origin,
    "PUT",
    "Observation/lab1",
    observation("lab1", "vital-signs"),
    labWriter,
  );
  assert.equal(moved.status, 403);
  // Out of scope before: refused, though the new content would be in scope.
  const taken = await fhir(
    st.origin,
    "PUT",
    "Observation/vital1",
    observation("vital1", "laboratory"),
    labWriter,
  );
  assert.equal(taken.status, 403);
  for (const id of ["lab1", "vital1"]) {
    const r = await fhir(st.origin, "GET", `Observation/${id}`, undefined, admin);
    assert.equal(r.body.meta.versionId, "1", `${id} untouched`);
  }
});

Deno.test("a fine-grained scope whose query the server cannot read grants nothing", async () => {
  const { st, bogus } = await setUp();
  const search = await fhir(st.origin, "GET", "Observation", undefined, bogus);
  assert.equal(search.status, 200);
  assert.deepEqual(ids(search.body), []);
  assert.equal((await fhir(st.origin, "GET", "Observation/lab1", undefined, bogus)).status, 403);
});

Deno.test("the granular suite's service stops", async () => {
  await stack?.close();
});
