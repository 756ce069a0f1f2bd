// deno-lint-ignore-file no-explicit-any
/**
 * Uses @medplum/core's MedplumClient as a real client would, against the running server (no auth).
 */
import assert from "node:assert/strict";
import { ClientStorage, MedplumClient, MemoryStorage } from "@medplum/core";
import type { Bundle, Observation, Patient } from "@medplum/fhirtypes";
import { backendTest, uniq } from "../_harness.ts";
import type { TestContext } from "../_harness.ts";

function client(ctx: TestContext): MedplumClient {
  return new MedplumClient({
    baseUrl: ctx.base.replace(/fhir$/, ""),
    fhirUrlPath: "fhir",
    fetch: (url: string, opts: any) => fetch(url, opts),
    storage: new ClientStorage(new MemoryStorage()),
    cacheTime: 0,
    maxRetries: 0,
  });
}

backendTest("MedplumClient: create, read, update and delete a Patient", async (ctx) => {
  const medplum = client(ctx);
  const u = uniq();
  const created = await medplum.createResource<Patient>({
    resourceType: "Patient",
    name: [{ family: u, given: ["Client"] }],
  });
  assert.ok(created.id);
  assert.equal(created.meta?.versionId, "1");
  const read = await medplum.readResource("Patient", created.id);
  assert.equal(read.name?.[0].family, u);
  const updated = await medplum.updateResource<Patient>({ ...read, gender: "female" });
  assert.equal(updated.gender, "female");
  assert.equal(updated.meta?.versionId, "2");
  const patched = await medplum.patchResource("Patient", created.id, [
    { op: "replace", path: "/gender", value: "male" },
  ]);
  assert.equal(patched.gender, "male");
  const v1 = await medplum.readVersion("Patient", created.id, "1");
  assert.equal(v1.gender, undefined);
  const hist = await medplum.readHistory("Patient", created.id);
  assert.equal(hist.type, "history");
  assert.equal(hist.entry?.length, 3);
  await medplum.deleteResource("Patient", created.id);
  await assert.rejects(() => medplum.readResource("Patient", created.id));
});

backendTest(
  "MedplumClient: an If-Match conflict rejects with the server's OperationOutcome",
  async (ctx) => {
    const medplum = client(ctx);
    const p = await medplum.createResource<Patient>({ resourceType: "Patient" });
    await medplum.updateResource<Patient>({ ...p, gender: "male" });
    await assert.rejects(
      () =>
        medplum.updateResource<Patient>({ ...p, gender: "female" }, {
          headers: { "If-Match": 'W/"1"' },
        }),
      (err: any) => {
        assert.equal(err.outcome?.resourceType, "OperationOutcome");
        return true;
      },
    );
  },
);

backendTest(
  "MedplumClient: searchResources and searchResourcePages page through every match once",
  async (ctx) => {
    const medplum = client(ctx);
    const u = uniq();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const p = await medplum.createResource<Patient>({
        resourceType: "Patient",
        name: [{ family: `${u}${i}` }],
      });
      ids.push(p.id);
    }
    const first = await medplum.searchResources("Patient", { family: u, _count: "2" });
    assert.equal(first.length, 2);
    assert.equal(first.bundle.total, 5);
    const seen: string[] = [];
    let pages = 0;
    for await (const page of medplum.searchResourcePages("Patient", { family: u, _count: "2" })) {
      pages++;
      seen.push(...page.map((p) => p.id as string));
      assert.ok(pages < 10);
    }
    assert.equal(pages, 3);
    assert.deepEqual([...seen].sort(), [...ids].sort());
    const one = await medplum.searchOne("Patient", { family: `${u}3` });
    assert.equal(one?.id, ids[3]);
    const count = await medplum.search("Patient", `family=${u}&_summary=count`);
    assert.equal(count.total, 5);
  },
);

backendTest(
  "MedplumClient: createResourceIfNoneExist returns the existing resource",
  async (ctx) => {
    const medplum = client(ctx);
    const u = uniq();
    const patient: Patient = {
      resourceType: "Patient",
      identifier: [{ system: "urn:test:medplum", value: u }],
    };
    const a = await medplum.createResourceIfNoneExist(patient, `identifier=urn:test:medplum|${u}`);
    const b = await medplum.createResourceIfNoneExist(
      { ...patient, gender: "male" },
      `identifier=urn:test:medplum|${u}`,
    );
    assert.equal(a.id, b.id);
    assert.equal(b.gender, undefined);
    const all = await medplum.searchResources("Patient", { identifier: `urn:test:medplum|${u}` });
    assert.equal(all.length, 1);
  },
);

backendTest(
  "MedplumClient: executeBatch runs a transaction with urn:uuid references",
  async (ctx) => {
    const medplum = client(ctx);
    const u = uniq();
    const pUrn = `urn:uuid:${crypto.randomUUID()}`;
    const bundle: Bundle = {
      resourceType: "Bundle",
      type: "transaction",
      entry: [
        {
          fullUrl: pUrn,
          resource: { resourceType: "Patient", name: [{ family: u }] },
          request: { method: "POST", url: "Patient" },
        },
        {
          resource: {
            resourceType: "Observation",
            status: "final",
            code: { text: u },
            subject: { reference: pUrn },
          } as Observation,
          request: { method: "POST", url: "Observation" },
        },
      ],
    };
    const res = await medplum.executeBatch(bundle);
    assert.equal(res.type, "transaction-response");
    assert.equal(res.entry?.length, 2);
    for (const e of res.entry ?? []) assert.match(e.response?.status ?? "", /^201/);
    const patient = await medplum.searchOne("Patient", { family: u });
    assert.ok(patient);
    const obs = await medplum.searchResources("Observation", { subject: `Patient/${patient.id}` });
    assert.equal(obs.length, 1);
    assert.equal(obs[0].subject?.reference, `Patient/${patient.id}`);
  },
);

backendTest("MedplumClient: a failing transaction rejects and commits nothing", async (ctx) => {
  const medplum = client(ctx);
  const u = uniq();
  await assert.rejects(() =>
    medplum.executeBatch({
      resourceType: "Bundle",
      type: "transaction",
      entry: [
        {
          resource: { resourceType: "Patient", name: [{ family: u }] },
          request: { method: "POST", url: "Patient" },
        },
        {
          resource: { resourceType: "Observation", status: "bogus" as any, code: { text: u } },
          request: { method: "POST", url: "Observation" },
        },
      ],
    })
  );
  assert.equal((await medplum.searchResources("Patient", { family: u })).length, 0);
});
