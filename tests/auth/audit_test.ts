/**
 * @module The audit trail with AUTH=on: reads, searches, creates, refusals, logins and failed
 * logins each leave one R4-valid AuditEvent (who, what, when, from where, outcome); admins search
 * them as FHIR, others may not; nobody writes them through the API; a clean shutdown writes every
 * buffered event.
 */
import assert from "node:assert/strict";
import type { AuditEvent } from "@medplum/fhirtypes";
import { validate } from "../../fhir/validate.ts";
import { type AuthStack, PASSWORD, startAuthStack } from "./_auth_harness.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

let stack: AuthStack | undefined;
const s = async () => stack ??= await startAuthStack();

async function events(st: AuthStack, query: string): Promise<AuditEvent[]> {
  await st.services.audit.flush();
  const res = await st.call(`/fhir/AuditEvent?${query}`, { token: st.tokens.admin });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  return (body.entry ?? []).map((e: Json) => e.resource);
}

Deno.test("each access leaves one AuditEvent: who, what, when, from where, outcome", async () => {
  const st = await s();
  const me = await (await st.call("/auth/me", { token: st.tokens.viewer })).json();
  const agent = `user/${me.sub}`;
  const before = Date.now();
  const created = await st.call("/fhir/Patient", {
    method: "POST",
    token: st.tokens.clinician,
    headers: { "Content-Type": "application/fhir+json" },
    body: JSON.stringify({ resourceType: "Patient", name: [{ family: "Audited" }] }),
  });
  const patient = await created.json();
  assert.equal(created.status, 201);
  for (
    const [path, init] of [
      [`/fhir/Patient/${patient.id}`, {}],
      ["/fhir/Patient?family=Audited", {}],
      ["/fhir/Patient", {
        method: "POST",
        headers: { "Content-Type": "application/fhir+json" },
        body: JSON.stringify({ resourceType: "Patient" }),
      }],
    ] as [string, RequestInit][]
  ) {
    await (await st.call(path, { ...init, token: st.tokens.viewer })).body?.cancel();
  }
  const mine = await events(st, `agent=${agent}&_sort=date`);
  const recent = mine.filter((e) =>
    Date.parse(e.recorded!) >= before - 1000 &&
    (e.entity?.[0].name === "Patient" ||
      e.entity?.[0].description?.startsWith("Patient ") ||
      e.entity?.[0].what?.reference?.startsWith("Patient/"))
  );
  assert.deepEqual(
    recent.map((e) => [e.subtype?.[0].code, e.action, e.outcome]),
    [["read", "R", "0"], ["search-type", "R", "0"], ["create", "C", "4"]],
  );
  const [read, search, refused] = recent;
  assert.equal(read.entity?.[0].what?.reference, `Patient/${patient.id}`);
  assert.ok(read.entity?.some((e) => e.type?.code === "4"), "the request id is kept");
  assert.equal(read.agent[0].who?.display, "viewer");
  assert.equal(read.agent[0].network?.address, "127.0.0.1");
  assert.equal(read.type.code, "rest");
  assert.equal(atob(search.entity![0].query!), "family=Audited");
  assert.equal(search.entity![0].description, "Patient search-type");
  assert.match(refused.outcomeDesc ?? "", /403/);
  for (const e of recent) assert.deepEqual(validate(e), [], JSON.stringify(e));
  // The creation by the clinician is there under its own agent, with the new id.
  const byEntity = await events(st, `entity=Patient/${patient.id}`);
  assert.deepEqual(
    byEntity.map((e) => [e.subtype?.[0].code, e.agent[0].who?.display]).sort(),
    [["read", "viewer"]],
    "the create names the type (the id is not known before), the read names the resource",
  );
  const patientEvents = await events(st, `patient=Patient/${patient.id}`);
  assert.equal(patientEvents.length, 1);
});

Deno.test("logins and failed logins are AuditEvents (DICOM 110114 / 110122)", async () => {
  const st = await s();
  await (await st.login("clinician", "not the password")).body?.cancel();
  await (await st.login("clinician", PASSWORD)).body?.cancel();
  const logins = await events(st, "type=110114&agent=user/clinician&_count=2");
  assert.deepEqual(logins.map((e) => e.outcome), ["0", "4"], "newest first");
  assert.equal(logins[0].subtype?.[0].code, "110122");
  assert.match(logins[1].outcomeDesc ?? "", /Wrong username or password/);
  for (const e of logins) assert.deepEqual(validate(e), []);
});

Deno.test("only admins read the audit trail; nobody writes it; search parameters are checked", async () => {
  const st = await s();
  for (const who of ["viewer", "clinician", "system"] as const) {
    const res = await st.call("/fhir/AuditEvent", { token: st.tokens[who] });
    assert.equal(res.status, 403, who);
    await res.body?.cancel();
  }
  const post = await st.call("/fhir/AuditEvent", {
    method: "POST",
    token: st.tokens.admin,
    headers: { "Content-Type": "application/fhir+json" },
    body: JSON.stringify({ resourceType: "AuditEvent" }),
  });
  assert.equal(post.status, 405);
  await post.body?.cancel();
  const bad = await st.call("/fhir/AuditEvent?nonsense=1", { token: st.tokens.admin });
  assert.equal(bad.status, 400);
  await bad.body?.cancel();
  // Paging: two at a time, no event twice.
  const first = await (await st.call("/fhir/AuditEvent?_count=2", { token: st.tokens.admin }))
    .json();
  const next = first.link.find((l: Json) => l.relation === "next").url;
  const second = await (await fetch(next, {
    headers: { Authorization: `Bearer ${st.tokens.admin}` },
  })).json();
  const ids = [...first.entry, ...second.entry].map((e: Json) => e.resource.id);
  assert.equal(new Set(ids).size, 4);
  const today = new Date().toISOString().slice(0, 10);
  assert.ok((await events(st, `date=${today}&_count=1`)).length === 1);
  assert.equal((await events(st, `date=lt2000-01-01`)).length, 0);
  const one = await st.call(`/fhir/AuditEvent/${ids[0]}`, { token: st.tokens.admin });
  assert.equal((await one.json()).id, ids[0]);
});

Deno.test("a clean shutdown writes every buffered AuditEvent", async () => {
  const st = await startAuthStack();
  try {
    for (let i = 0; i < 30; i++) {
      await (await st.call(`/fhir/Observation?code=n${i}`, { token: st.tokens.viewer })).body
        ?.cancel();
    }
    assert.ok(st.services.audit.pending > 0, "events are still buffered");
    await st.services.audit.close();
    assert.equal(st.services.audit.pending, 0);
    const [row] = await st.services.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM audit_event WHERE subtype = 'search-type' AND entity = 'Observation'`,
    );
    assert.equal(row.n, 30);
  } finally {
    await st.close();
  }
});

Deno.test("the audit suite's service stops", async () => {
  await stack?.close();
});
