/**
 * @module Tokens bound to a patient (SMART `patient` claim, patient/ scopes) over HTTP with
 * AUTH=on: accounts bound by admins, then every read, search, include, history, write,
 * conditional write, Bundle, operation, DICOMweb call and export kept to the patient's
 * compartment: another patient's data is not found, never shown in an include, never written.
 */
import assert from "node:assert/strict";
import { issueAccessToken } from "../../auth/jwt.ts";
import { stowInstances } from "../../dicom/synth/stow.ts";
import { fhir, until } from "../sidecar/_process.ts";
import { smallStudy } from "../sidecar/_study.ts";
import { type AuthStack, PASSWORD, startAuthStack } from "./_auth_harness.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

interface World {
  st: AuthStack;
  /** Patient ids (made by STOW-RS from each study's Patient ID). */
  pa: string;
  pb: string;
  studyA: string;
  studyB: string;
  imagingA: string;
  imagingB: string;
  /** A token of a viewer bound to pa, and of a clinician bound to pa. */
  viewerA: string;
  clinicianA: string;
}

const ids = (bundle: Json): string[] =>
  (bundle.entry ?? []).map((e: Json) => `${e.resource.resourceType}/${e.resource.id}`).sort();

async function put(st: AuthStack, resource: Json): Promise<void> {
  const res = await fhir(
    st.origin,
    "PUT",
    `${resource.resourceType}/${resource.id}`,
    resource,
    st.tokens.admin,
  );
  assert.ok(res.status === 201 || res.status === 200, JSON.stringify(res.body));
}

async function createUser(st: AuthStack, body: Json): Promise<Response> {
  return await st.call("/auth/users", {
    method: "POST",
    token: st.tokens.admin,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

async function setUp(): Promise<World> {
  const st = await startAuthStack({ DICOM_STABLE_SECONDS: "0" });
  const studies: { uid: string; imaging: Json }[] = [];
  for (const seed of [71, 72]) {
    const s = smallStudy(seed);
    const stow = await stowInstances(`${st.origin}/dicomweb`, s.instances, {
      headers: { Authorization: `Bearer ${st.tokens.admin}` },
    });
    assert.equal(stow.status, 200, JSON.stringify(stow));
    const uid = s.plan.study.studyInstanceUid;
    const query = `ImagingStudy?identifier=${encodeURIComponent(`urn:dicom:uid|urn:oid:${uid}`)}`;
    const imaging = await until("the ImagingStudy", async () => {
      const found = (await fhir(st.origin, "GET", query, undefined, st.tokens.admin)).body
        .entry?.[0]?.resource;
      return found?.subject?.reference ? found : undefined;
    });
    studies.push({ uid, imaging });
  }
  const [pa, pb] = studies.map((s) => s.imaging.subject.reference.split("/")[1]);
  assert.notEqual(pa, pb);
  const obs = (id: string, subject: string, extra: Json = {}) => ({
    resourceType: "Observation",
    id,
    status: "final",
    code: { text: "nodule" },
    subject: { reference: `Patient/${subject}` },
    ...extra,
  });
  await put(st, obs("oa", pa));
  await put(st, obs("ob", pb, { identifier: [{ system: "urn:test", value: "shared" }] }));
  // pb's Observation performed by pa: in both compartments (Observation: subject, performer).
  await put(st, obs("operf", pb, { performer: [{ reference: `Patient/${pa}` }] }));
  for (const [id, subject, result] of [["ra", pa, "oa"], ["rb", pb, "ob"]]) {
    await put(st, {
      resourceType: "DiagnosticReport",
      id,
      status: "final",
      code: { text: "CT chest" },
      subject: { reference: `Patient/${subject}` },
      result: [{ reference: `Observation/${result}` }],
    });
  }
  await put(st, { resourceType: "Device", id: "scanner", status: "active" });

  for (const [username, role] of [["portal-a", "viewer"], ["carer-a", "clinician"]]) {
    const res = await createUser(st, {
      username,
      password: PASSWORD,
      role,
      patient: `Patient/${pa}`,
    });
    const body = await res.json();
    assert.equal(res.status, 201, JSON.stringify(body));
    assert.equal(body.patient, `Patient/${pa}`);
  }
  const token = async (username: string) => {
    const res = await st.login(username, PASSWORD);
    const body = await res.json();
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.patient, pa, "SMART: the token response names the patient");
    return body.access_token as string;
  };
  return {
    st,
    pa,
    pb,
    studyA: studies[0].uid,
    studyB: studies[1].uid,
    imagingA: studies[0].imaging.id,
    imagingB: studies[1].imaging.id,
    viewerA: await token("portal-a"),
    clinicianA: await token("carer-a"),
  };
}

let world: World | undefined;
const w = async () => world ??= await setUp();

Deno.test("binding accounts: admins bind viewers and clinicians to an existing Patient only", async () => {
  const { st, pa } = await w();
  const refused: [Json, RegExp][] = [
    [{ role: "admin", patient: `Patient/${pa}` }, /admin account cannot be bound/],
    [{ role: "viewer", patient: "Patient/nobody" }, /does not exist/],
    [{ role: "viewer", patient: "Observation/oa" }, /Patient\/\{id\}/],
    [{ role: "viewer", patient: "Patient/x'; DROP TABLE auth_user; --" }, /Patient\/\{id\}/],
  ];
  for (const [extra, reason] of refused) {
    const res = await createUser(st, { username: "bound-x", password: PASSWORD, ...extra });
    const body = await res.json();
    assert.equal(res.status, 400, JSON.stringify(body));
    assert.match(JSON.stringify(body), reason);
  }
  const me = await (await st.call("/auth/me", { token: (await w()).viewerA })).json();
  assert.equal(me.patient, pa);
  assert.match(me.scope, /patient\/\*\.rs/);
  assert.match(me.scope, /launch\/patient/);
  assert.doesNotMatch(me.scope, /user\//);
  const smart = await (await st.call("/.well-known/smart-configuration")).json();
  assert.ok(smart.capabilities.includes("permission-patient"));
});

Deno.test("a bound token reads and searches its patient's compartment only", async () => {
  const { st, pa, pb, viewerA } = await w();
  const get = (path: string) => fhir(st.origin, "GET", path, undefined, viewerA);
  assert.equal((await get(`Patient/${pa}`)).status, 200);
  for (
    const path of [
      `Patient/${pb}`,
      "Observation/ob",
      "Observation/ob/_history/1",
      "Observation/ob/_history",
      "DiagnosticReport/rb",
    ]
  ) {
    const res = await get(path);
    assert.equal(res.status, 404, `${path}: ${JSON.stringify(res.body)}`);
    assert.equal(res.body.resourceType, "OperationOutcome");
  }
  assert.equal((await get("Observation/oa/_history")).body.entry.length, 1);
  assert.deepEqual(ids((await get("Patient")).body), [`Patient/${pa}`]);
  assert.deepEqual(ids((await get("Observation")).body), ["Observation/oa", "Observation/operf"]);
  assert.equal((await get("Observation?_summary=count")).body.total, 2);
  assert.equal((await get(`Observation?subject=Patient/${pb}`)).body.total, 1, "operf only");
  assert.deepEqual(ids((await get("Observation?identifier=urn:test|shared")).body), []);
  assert.deepEqual(ids((await get("DiagnosticReport")).body), ["DiagnosticReport/ra"]);
  // The self link carries the client's criteria, not the compartment.
  const self = (await get("Observation?status=final")).body.link[0].url as string;
  assert.doesNotMatch(self, /compartment|Patient/);
  // Paging stays inside: two pages of one each, then no more.
  const first = (await get("Observation?_count=1")).body;
  const next = first.link.find((l: Json) => l.relation === "next").url as string;
  const second = (await get(next.slice(next.indexOf("/fhir/") + 6))).body;
  assert.deepEqual([...ids(first), ...ids(second)].sort(), ["Observation/oa", "Observation/operf"]);
  assert.equal(second.link.find((l: Json) => l.relation === "next"), undefined);
  // POST _search is the same search.
  const posted = await st.call("/fhir/Observation/_search", {
    method: "POST",
    token: viewerA,
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: "status=final",
  });
  assert.deepEqual(ids(await posted.json()), ["Observation/oa", "Observation/operf"]);
});

Deno.test("a bound token's Patient/$everything: its own compartment, no other patient", async () => {
  const { st, pa, pb, viewerA } = await w();
  const get = (path: string) => fhir(st.origin, "GET", path, undefined, viewerA);
  assert.equal((await get(`Patient/${pb}/$everything`)).status, 404);
  const all = await get(`Patient/${pa}/$everything?_count=1000`);
  assert.equal(all.status, 200, JSON.stringify(all.body));
  const keys = ids(all.body);
  for (const k of [`Patient/${pa}`, "Observation/oa", "Observation/operf", "DiagnosticReport/ra"]) {
    assert.ok(keys.includes(k), `${k} in ${keys.join()}`);
  }
  // operf's subject is pb: referenced, but outside the token's reach, so not included.
  assert.ok(!keys.includes(`Patient/${pb}`), keys.join());
  assert.ok(!keys.some((k) => k === "Observation/ob" || k === "DiagnosticReport/rb"));
  // The compartment search: its own patient's, never another's.
  assert.equal((await get(`Patient/${pb}/Observation`)).status, 404);
  assert.deepEqual(ids((await get(`Patient/${pa}/Observation`)).body), [
    "Observation/oa",
    "Observation/operf",
  ]);
});

Deno.test("a bound token's includes, chains and reverse includes stay in the compartment", async () => {
  const { st, pa, viewerA } = await w();
  const get = async (path: string) => (await fhir(st.origin, "GET", path, undefined, viewerA)).body;
  assert.deepEqual(
    ids(await get("DiagnosticReport?_include=DiagnosticReport:result")),
    ["DiagnosticReport/ra", "Observation/oa"],
  );
  // operf's subject is pb: the Observation is pa's (performer), its subject is not shown.
  assert.deepEqual(
    ids(await get("Observation?_id=operf&_include=Observation:subject")),
    ["Observation/operf"],
  );
  assert.deepEqual(
    ids(await get("Patient?_revinclude=Observation:subject&_revinclude=DiagnosticReport:subject")),
    ["DiagnosticReport/ra", "Observation/oa", `Patient/${pa}`],
  );
  assert.deepEqual(
    ids(await get("Observation?_revinclude=DiagnosticReport:result&_id=ob,oa")),
    ["DiagnosticReport/ra", "Observation/oa"],
  );
});

Deno.test("a bound token: types outside the compartment and histories across types are refused", async () => {
  const { st, viewerA } = await w();
  for (const path of ["Device", "Device/scanner", "Observation/_history", "_history", "Endpoint"]) {
    const res = await fhir(st.origin, "GET", path, undefined, viewerA);
    assert.equal(res.status, 403, `${path}: ${JSON.stringify(res.body)}`);
    assert.equal(res.body.resourceType, "OperationOutcome");
  }
  const created = await fhir(st.origin, "POST", "Observation", {
    resourceType: "Observation",
    status: "final",
    code: { text: "x" },
  }, viewerA);
  assert.equal(created.status, 403, "a viewer has no create scope");
});

Deno.test("a bound clinician writes inside its patient's compartment only", async () => {
  const { st, pa, pb, clinicianA } = await w();
  const call = (method: string, path: string, body?: unknown) =>
    fhir(st.origin, method, path, body, clinicianA);
  const obs = (subject?: string, extra: Json = {}) => ({
    resourceType: "Observation",
    status: "preliminary",
    code: { text: "note" },
    ...(subject ? { subject: { reference: `Patient/${subject}` } } : {}),
    ...extra,
  });
  assert.equal((await call("POST", "Observation", obs(pa))).status, 201);
  for (const body of [obs(pb), obs()]) {
    const res = await call("POST", "Observation", body);
    assert.equal(res.status, 403, JSON.stringify(res.body));
    assert.match(res.body.issue[0].diagnostics, /compartment/);
  }
  // Moving its patient's Observation to another patient: refused.
  const moved = await call("PUT", "Observation/oa", obs(pb, { id: "oa" }));
  assert.equal(moved.status, 403, JSON.stringify(moved.body));
  // Another patient's Observation is not there to overwrite, by PUT or PATCH.
  const over = await call("PUT", "Observation/ob", obs(pa, { id: "ob" }));
  assert.equal(over.status, 404, JSON.stringify(over.body));
  const patched = await st.call("/fhir/Observation/ob", {
    method: "PATCH",
    token: clinicianA,
    headers: { "Content-Type": "application/json-patch+json" },
    body: JSON.stringify([{ op: "replace", path: "/status", value: "cancelled" }]),
  });
  assert.equal(patched.status, 404, await patched.text());
  // A conditional update matches only inside: ob (pb's) carries the identifier, so a new one is made.
  const conditional = await call(
    "PUT",
    "Observation?identifier=urn:test|shared",
    obs(pa, { identifier: [{ system: "urn:test", value: "shared" }] }),
  );
  assert.equal(conditional.status, 201, JSON.stringify(conditional.body));
  const ob = await fhir(st.origin, "GET", "Observation/ob", undefined, st.tokens.admin);
  assert.equal(ob.body.meta.versionId, "1", "pb's Observation untouched");
  assert.equal(ob.body.subject.reference, `Patient/${pb}`);
  // A transaction with one entry outside the compartment writes nothing.
  const before = (await call("GET", "Observation?_summary=count")).body.total;
  const tx = await call("POST", "", {
    resourceType: "Bundle",
    type: "transaction",
    entry: [obs(pa), obs(pb)].map((resource) => ({
      resource,
      request: { method: "POST", url: "Observation" },
    })),
  });
  assert.equal(tx.status, 403, JSON.stringify(tx.body));
  assert.equal((await call("GET", "Observation?_summary=count")).body.total, before);
  // A batch runs each entry as itself: pa's read is 200, pb's is 404.
  const batch = await call("POST", "", {
    resourceType: "Bundle",
    type: "batch",
    entry: ["Observation/oa", "Observation/ob"].map((url) => ({ request: { method: "GET", url } })),
  });
  assert.deepEqual(batch.body.entry.map((e: Json) => e.response.status.slice(0, 3)), [
    "200",
    "404",
  ]);
  // Operations run on its own patient's resources only.
  const analyze = await call("POST", `ImagingStudy/${(await w()).imagingB}/$analyze`, {
    resourceType: "Parameters",
    parameter: [{ name: "model", valueString: "threshold-demo" }],
  });
  assert.equal(analyze.status, 404, JSON.stringify(analyze.body));
});

Deno.test("a bound token: DICOMweb and exports of its own patient only; uploads and events refused", async () => {
  const { st, studyA, studyB, viewerA } = await w();
  const get = (path: string, accept = "application/dicom+json") =>
    st.call(path, { token: viewerA, headers: { Accept: accept } });
  const studies = await (await get("/dicomweb/studies")).json();
  assert.deepEqual(studies.map((s: Json) => s["0020000D"].Value[0]), [studyA]);
  const series = await (await get("/dicomweb/series")).json();
  assert.ok(series.length > 0);
  assert.ok(series.every((s: Json) => s["0020000D"].Value[0] === studyA));
  const own = await get(`/dicomweb/studies/${studyA}/metadata`);
  assert.equal(own.status, 200, await own.text());
  for (
    const path of [`/dicomweb/studies/${studyB}/metadata`, `/dicomweb/studies/${studyB}/series`]
  ) {
    const res = await get(path);
    assert.equal(res.status, 404, `${path}: ${await res.text()}`);
  }
  const stow = await stowInstances(`${st.origin}/dicomweb`, smallStudy(73).instances, {
    headers: { Authorization: `Bearer ${viewerA}` },
  });
  assert.equal(stow.status, 403);

  const own2 = await get("/reports/ra/findings.json", "application/json");
  assert.equal(own2.status, 200, await own2.text());
  const other = await get("/reports/rb/findings.json", "application/json");
  assert.equal(other.status, 404, await other.text());
  for (const path of ["/events?types=Task", `/uploads/nifti/${crypto.randomUUID()}`]) {
    const res = await get(path, "*/*");
    assert.equal(res.status, 403, `${path}: ${await res.text()}`);
  }
});

Deno.test("patient/ scopes without a bound patient grant nothing", async () => {
  const { st, pa } = await w();
  const { token } = await issueAccessToken(st.services.auth.ring, {
    sub: "someone",
    kind: "user",
    scope: "patient/*.rs patient/Patient.read",
  }, {
    issuer: st.services.config.auth.issuer,
    audience: st.services.auth.audience,
    ttlSeconds: 60,
  });
  for (const path of [`/fhir/Patient/${pa}`, `/fhir/Patient?_id=${pa}`, "/fhir/Observation"]) {
    const res = await st.call(path, { token });
    assert.equal(res.status, 403, path);
    await res.body?.cancel();
  }
});

Deno.test("unbinding an account ends its sessions; its next login has user/ scopes", async () => {
  const { st } = await w();
  const login = await (await st.login("portal-a", PASSWORD)).json();
  assert.ok(login.refresh_token);
  const users = await (await st.call("/auth/users", { token: st.tokens.admin })).json();
  const portal = users.find((u: Json) => u.username === "portal-a");
  const res = await st.call(`/auth/users/${portal.id}`, {
    method: "PATCH",
    token: st.tokens.admin,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ patient: null }),
  });
  assert.equal(res.status, 200, await res.text());
  const refreshed = await st.call("/auth/token", {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: login.refresh_token }),
  });
  assert.equal(refreshed.status, 400, "the bound session's refresh token was revoked");
  await refreshed.body?.cancel();
  const again = await (await st.login("portal-a", PASSWORD)).json();
  assert.equal(again.patient, undefined);
  assert.match(again.scope, /user\/\*\.rs/);
});

Deno.test("the compartment suite's service stops", async () => {
  await world?.st.close();
});
