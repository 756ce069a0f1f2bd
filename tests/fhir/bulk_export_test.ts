// deno-lint-ignore-file no-explicit-any
/**
 * FHIR Bulk Data `$export` (fhir/bulk/, routes/bulk.ts) on PGlite and Postgres, AUTH off: system,
 * Patient and Group level; `_type`, `_since`, `_typeFilter`, `patient`; the manifest and the NDJSON
 * files (several per type: BULK_EXPORT_FILE_RESOURCES=25); the refusals; DELETE; expiry. Access
 * (tokens, scopes, other callers) is tests/fhir/bulk_export_auth_test.ts.
 */
import assert from "node:assert/strict";
import { type Backend, fhirJson, perBackend, startContext, type TestContext } from "../_harness.ts";
import { assertOutcome } from "./_util.ts";
import { bulkExport, counts, idsOf, kickOff, poll, readFile } from "./_bulk.ts";
import { findExport, insertExport } from "../../fhir/bulk/export_repo.ts";

const CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category";

interface World {
  ctx: TestContext;
  /** Between the first batch and the second. */
  since: string;
}

const obs = (id: string, patient: string, category: string) => ({
  resourceType: "Observation",
  id,
  status: "final",
  category: [{ coding: [{ system: CATEGORY, code: category }] }],
  code: { text: "weight" },
  subject: { reference: `Patient/${patient}` },
});

async function transaction(ctx: TestContext, resources: any[]): Promise<void> {
  const res = await fhirJson(ctx, "POST", "", {
    resourceType: "Bundle",
    type: "transaction",
    entry: resources.map((r) => ({
      resource: r,
      request: { method: "PUT", url: `${r.resourceType}/${r.id}` },
    })),
  });
  assert.equal(res.status, 200, JSON.stringify(res.body).slice(0, 400));
}

/**
 * Patients p1–p3 with 40 Observations each (half laboratory), 10 Conditions of p1, a Practitioner,
 * Group g1 (p1, p2); then, after `since`: Patient p4, its Observation, Condition c-p1-0 updated.
 */
async function seed(ctx: TestContext): Promise<string> {
  const first: any[] = [{ resourceType: "Practitioner", id: "dr1", name: [{ family: "Who" }] }];
  for (const p of ["p1", "p2", "p3"]) {
    first.push({ resourceType: "Patient", id: p, name: [{ family: p }] });
    for (let i = 0; i < 40; i++) {
      first.push(obs(`o-${p}-${i}`, p, i % 2 ? "vital-signs" : "laboratory"));
    }
  }
  const condition = (i: number, text: string) => ({
    resourceType: "Condition",
    id: `c-p1-${i}`,
    subject: { reference: "Patient/p1" },
    code: { text },
  });
  for (let i = 0; i < 10; i++) first.push(condition(i, "cough"));
  first.push({
    resourceType: "Group",
    id: "g1",
    type: "person",
    actual: true,
    member: [{ entity: { reference: "Patient/p1" } }, { entity: { reference: "Patient/p2" } }],
  });
  await transaction(ctx, first);
  await new Promise((r) => setTimeout(r, 20));
  const since = new Date().toISOString();
  await new Promise((r) => setTimeout(r, 20));
  await transaction(ctx, [
    { resourceType: "Patient", id: "p4", name: [{ family: "p4" }] },
    obs("o-p4-0", "p4", "vital-signs"),
    condition(0, "fever"),
  ]);
  return since;
}

const worlds = new Map<Backend, Promise<World>>();
function world(backend: Backend): Promise<World> {
  let w = worlds.get(backend);
  if (!w) {
    w = (async () => {
      const ctx = await startContext(backend, { BULK_EXPORT_FILE_RESOURCES: "25" });
      return { ctx, since: await seed(ctx) };
    })();
    worlds.set(backend, w);
  }
  return w;
}

function bulkTest(name: string, fn: (w: World) => Promise<void>): void {
  perBackend(name, async (backend) => fn(await world(backend)));
}

bulkTest("system-level $export: every type, files of at most 25, counts match", async (w) => {
  const url = `${w.ctx.base}/$export?_outputFormat=${
    encodeURIComponent("application/fhir+ndjson")
  }`;
  const before = Date.now();
  const done = await bulkExport(url);
  // Besides the server's own (the Endpoint, the models' Devices, its OperationDefinitions):
  const mine = new Set(["Condition", "Group", "Observation", "Patient", "Practitioner"]);
  for (const type of done.files.keys()) if (!mine.has(type)) done.files.delete(type);
  assert.deepEqual(counts(done.files), {
    Condition: 10,
    Group: 1,
    Observation: 121,
    Patient: 4,
    Practitioner: 1,
  });
  const m = done.manifest;
  assert.equal(m.request, url);
  assert.ok(Date.parse(m.transactionTime) >= before - 1000);
  assert.deepEqual(m.error, []);
  assert.ok(m.output.some((f: any) => f.type === "Endpoint"), "the server's own Endpoint too");
  const obsFiles = m.output.filter((f: any) => f.type === "Observation");
  assert.equal(obsFiles.length, 5, "121 Observations in files of 25");
  assert.ok(obsFiles.every((f: any) => f.count <= 25));
  assert.ok(done.expires && Date.parse(done.expires) > Date.now() + 23 * 3600_000, "Expires");
  // The current version only: c-p1-0 as updated.
  const c0 = done.files.get("Condition")!.find((c) => c.id === "c-p1-0");
  assert.equal(c0.code.text, "fever");
  // POST with a Parameters body, the same export.
  const post = await bulkExport(`${w.ctx.base}/$export`, {
    method: "POST",
    body: {
      resourceType: "Parameters",
      parameter: [{ name: "_type", valueString: "Patient,Practitioner" }],
    },
  });
  assert.deepEqual(counts(post.files), { Patient: 4, Practitioner: 1 });
});

bulkTest("$export with _type and _since", async (w) => {
  const since = encodeURIComponent(w.since);
  const done = await bulkExport(
    `${w.ctx.base}/$export?_type=Patient,Condition,Observation,Practitioner&_since=${since}`,
  );
  assert.deepEqual(counts(done.files), { Condition: 1, Observation: 1, Patient: 1 });
  assert.deepEqual(idsOf(done.files, "Patient"), ["p4"]);
  assert.deepEqual(idsOf(done.files, "Condition"), ["c-p1-0"]);
});

bulkTest("$export with _typeFilter: the server's own search, OR-ed per type", async (w) => {
  const lab = encodeURIComponent(
    `Observation?category=${encodeURIComponent(`${CATEGORY}|laboratory`)}`,
  );
  const one = await bulkExport(
    `${w.ctx.base}/$export?_type=Observation,Patient&_typeFilter=${lab}`,
  );
  assert.deepEqual(counts(one.files), { Observation: 60, Patient: 4 });
  assert.ok(
    one.files.get("Observation")!.every((o) => o.category[0].coding[0].code === "laboratory"),
  );
  // Two filters of one type (a POST's Parameters): either matches.
  const two = await bulkExport(`${w.ctx.base}/$export`, {
    method: "POST",
    body: {
      resourceType: "Parameters",
      parameter: [
        { name: "_type", valueString: "Observation" },
        { name: "_typeFilter", valueString: "Observation?category=laboratory&subject=Patient/p1" },
        { name: "_typeFilter", valueString: "Observation?subject=Patient/p3" },
      ],
    },
  });
  assert.deepEqual(counts(two.files), { Observation: 60 });
});

bulkTest("Patient-level $export: every patient's compartment", async (w) => {
  const done = await bulkExport(`${w.ctx.base}/Patient/$export`);
  // No Practitioner: it is in no patient's compartment.
  assert.deepEqual(counts(done.files), {
    Condition: 10,
    Group: 1,
    Observation: 121,
    Patient: 4,
  });
  const patient = await bulkExport(`${w.ctx.base}/Patient/$export?_type=Patient,Condition`, {
    method: "POST",
    body: {
      resourceType: "Parameters",
      parameter: [{ name: "patient", valueReference: { reference: "Patient/p2" } }],
    },
  });
  assert.deepEqual(counts(patient.files), { Patient: 1 });
});

bulkTest("Group-level $export: its Patient members' compartments", async (w) => {
  const done = await bulkExport(`${w.ctx.base}/Group/g1/$export`);
  assert.deepEqual(counts(done.files), { Condition: 10, Group: 1, Observation: 80, Patient: 2 });
  assert.deepEqual(idsOf(done.files, "Patient"), ["p1", "p2"]);
  const p2 = await bulkExport(`${w.ctx.base}/Group/g1/$export`, {
    method: "POST",
    body: {
      resourceType: "Parameters",
      parameter: [{ name: "patient", valueReference: { reference: "Patient/p2" } }],
    },
  });
  assert.deepEqual(counts(p2.files), { Group: 1, Observation: 40, Patient: 1 });
  const missing = await kickOff(`${w.ctx.base}/Group/nope/$export`);
  assert.equal(missing.status, 404);
  assertOutcome(await missing.json());
});

bulkTest("$export refusals: no respond-async, bad _type, _outputFormat, _since", async (w) => {
  const refused = async (path: string, headers: Record<string, string> = {}) => {
    const res = await kickOff(`${w.ctx.base}/${path}`, { headers });
    const body = await res.json();
    assert.equal(res.status, 400, `${path}: ${JSON.stringify(body)}`);
    assertOutcome(body, path);
    return body;
  };
  await refused("$export", { Prefer: "handling=strict" });
  await refused("$export?_type=NoSuchType");
  await refused("$export?_type=AuditEvent");
  await refused("Patient/$export?_type=Practitioner");
  await refused("$export?_outputFormat=text/csv");
  await refused("$export?_since=yesterday");
  await refused(`$export?_typeFilter=${encodeURIComponent("Observation?_count=3")}`);
  await refused(`$export?_typeFilter=${encodeURIComponent("Observation?nope=1")}`);
  await refused("$export?includeAssociatedData=LatestProvenanceResources");
  await refused("$export?_elements=id");
  // Lenient: the unsupported parameter is ignored, with a warning in the manifest's `error`.
  const res = await kickOff(`${w.ctx.base}/$export?_type=Practitioner&_elements=id`, {
    headers: { Prefer: "respond-async, handling=lenient" },
  });
  assert.equal(res.status, 202, await res.text());
  const done = await poll(res.headers.get("content-location")!);
  assert.equal(done.manifest.output.length, 1);
  assert.equal(done.manifest.error.length, 1);
  const [warning] = await readFile(done.manifest.error[0].url, "OperationOutcome");
  assert.match(warning.issue[0].diagnostics, /_elements/);
});

bulkTest("DELETE cancels an export and removes its files; then 404", async (w) => {
  const store = w.ctx.services.store;
  const files = async (id: string) => {
    const keys: string[] = [];
    for await (const o of store.list(`bulk/${id}/`)) keys.push(o.key);
    return keys;
  };
  // A running (or just queued) export.
  const res = await kickOff(`${w.ctx.base}/$export`);
  assert.equal(res.status, 202);
  const statusUrl = res.headers.get("content-location")!;
  const id = statusUrl.split("/").pop()!;
  const del = await fetch(statusUrl, { method: "DELETE" });
  assert.equal(del.status, 202);
  assertOutcome(await del.json());
  const after = await fetch(statusUrl);
  assert.equal(after.status, 404);
  assertOutcome(await after.json());
  assert.equal((await fetch(statusUrl, { method: "DELETE" })).status, 404);
  await w.ctx.services.bulk.idle();
  assert.deepEqual(await files(id), []);
  // A completed one: its files go too.
  const done = await bulkExport(`${w.ctx.base}/$export?_type=Patient`);
  const doneId = done.statusUrl.split("/").pop()!;
  assert.equal((await files(doneId)).length, 1);
  assert.equal((await fetch(done.statusUrl, { method: "DELETE" })).status, 202);
  assert.deepEqual(await files(doneId), []);
  const gone = await fetch(done.manifest.output[0].url);
  assert.equal(gone.status, 404);
  await gone.body?.cancel();
});

bulkTest("expired exports and their files are removed", async (w) => {
  const done = await bulkExport(`${w.ctx.base}/$export?_type=Practitioner`);
  const id = done.statusUrl.split("/").pop()!;
  await w.ctx.services.db.query(
    `UPDATE bulk_export SET due_at = now() - interval '1 second' WHERE id = $1`,
    [id],
  );
  await w.ctx.services.bulk.idle();
  const res = await fetch(done.statusUrl);
  assert.equal(res.status, 404);
  await res.body?.cancel();
  const keys: string[] = [];
  for await (const o of w.ctx.services.store.list(`bulk/${id}/`)) keys.push(o.key);
  assert.deepEqual(keys, []);
});

bulkTest("a job whose replica stopped resumes from its last file", async (w) => {
  const { db, store, bulk } = w.ctx.services;
  // A whole export, to copy a checkpoint from.
  const whole = await bulkExport(`${w.ctx.base}/$export?_type=Observation`);
  const wholeId = whole.statusUrl.split("/").pop()!;
  const job = (await findExport(db, wholeId))!;
  assert.equal(job.output.length, 5);
  // Another job, as a replica left it: two files written, the lease run out.
  const id = crypto.randomUUID();
  await insertExport(db, {
    id,
    owner: job.owner,
    request: job.request,
    plan: job.plan,
    transactionTime: job.transactionTime,
    errors: [],
  });
  // Its files, lines reversed: a resumed job leaves them as they are (a restart would rewrite them).
  const reversed = async (name: string) => {
    const text = new TextDecoder().decode((await store.get(`bulk/${wholeId}/${name}`))!);
    return text.trimEnd().split("\n").reverse().join("\n") + "\n";
  };
  for (const f of job.output.slice(0, 2)) {
    await store.put(`bulk/${id}/${f.name}`, new TextEncoder().encode(await reversed(f.name)));
  }
  const [key] = await db.query<{ updated: string; rid: string }>(
    `SELECT last_updated::text AS updated, rid::text AS rid FROM resource
     WHERE type = 'Observation' AND NOT deleted ORDER BY last_updated, rid OFFSET 49 LIMIT 1`,
  );
  const progress = {
    types: ["Observation"],
    index: 0,
    typeTotal: 121,
    after: key,
    part: 3,
    written: 50,
    read: 73,
  };
  await db.query(
    `UPDATE bulk_export SET state = 'running', progress = $2::jsonb, output = $3::jsonb,
       attempts = 1, lease_token = 'gone', due_at = now() - interval '1 second' WHERE id = $1`,
    [id, JSON.stringify(progress), JSON.stringify(job.output.slice(0, 2))],
  );
  await bulk.idle();
  const statusUrl = `${w.ctx.base}/$export-status/${id}`;
  const done = await poll(statusUrl);
  assert.equal(done.manifest.output.length, 5);
  for (const f of job.output.slice(0, 2)) {
    const kept = new TextDecoder().decode((await store.get(`bulk/${id}/${f.name}`))!);
    assert.equal(kept, await reversed(f.name), `${f.name} was not written again`);
  }
  const ids: string[] = [];
  for (const f of done.manifest.output) {
    ids.push(...(await readFile(f.url, "Observation")).map((o) => o.id));
  }
  assert.equal(ids.length, 121);
  assert.equal(new Set(ids).size, 121, "each Observation once");
  assert.deepEqual(ids.sort(), idsOf(whole.files, "Observation"));
});

bulkTest("status: 202 with X-Progress while it runs, 500 when it failed", async (w) => {
  const { db } = w.ctx.services;
  const done = await bulkExport(`${w.ctx.base}/$export?_type=Practitioner`);
  const job = (await findExport(db, done.statusUrl.split("/").pop()!))!;
  // A job another replica is running (its lease in the future), part way through Observations.
  const id = crypto.randomUUID();
  await insertExport(db, { ...job, id, errors: [] });
  const progress = { types: ["Patient", "Observation"], index: 1, typeTotal: 121, read: 73 };
  await db.query(
    `UPDATE bulk_export SET state = 'running', progress = $2::jsonb, lease_token = 'elsewhere',
       due_at = now() + interval '1 hour' WHERE id = $1`,
    [id, JSON.stringify(progress)],
  );
  const statusUrl = `${w.ctx.base}/$export-status/${id}`;
  const running = await fetch(statusUrl);
  assert.equal(running.status, 202);
  assert.equal(running.headers.get("x-progress"), "Exporting Observation: 73 of 121 (type 2 of 2)");
  assert.equal(running.headers.get("retry-after"), "1");
  await running.body?.cancel();
  await db.query(
    `UPDATE bulk_export SET state = 'failed', message = 'the disk caught fire' WHERE id = $1`,
    [id],
  );
  const failed = await fetch(statusUrl);
  assert.equal(failed.status, 500);
  const outcome = await failed.json();
  assertOutcome(outcome);
  assert.match(outcome.issue[0].diagnostics, /the disk caught fire/);
});

Deno.test({
  name: "bulk export test contexts close",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    for (const w of worlds.values()) await (await w).ctx.close();
  },
});

perBackend(
  "a system-level _since export lists what was deleted since as DELETE Bundles",
  async (backend) => {
    // A world of its own: deletions would change the shared world's counts.
    const ctx = await startContext(backend, {});
    try {
      await transaction(ctx, [
        { resourceType: "Basic", id: "gone-before", code: { text: "x" } },
        { resourceType: "Basic", id: "gone-after", code: { text: "x" } },
        { resourceType: "Basic", id: "kept", code: { text: "x" } },
        { resourceType: "Patient", id: "pd", name: [{ family: "pd" }] },
        {
          resourceType: "Observation",
          id: "od",
          status: "final",
          code: { text: "x" },
          subject: { reference: "Patient/pd" },
        },
      ]);
      assert.equal((await fhirJson(ctx, "DELETE", "Basic/gone-before")).status, 200);
      await new Promise((r) => setTimeout(r, 20));
      const since = new Date().toISOString();
      await new Promise((r) => setTimeout(r, 20));
      assert.equal((await fhirJson(ctx, "DELETE", "Basic/gone-after")).status, 200);
      assert.equal((await fhirJson(ctx, "DELETE", "Observation/od")).status, 200);

      const s = encodeURIComponent(since);
      const done = await bulkExport(`${ctx.base}/$export?_type=Basic,Observation&_since=${s}`);
      assert.deepEqual(counts(done.files), {});
      const deleted = done.manifest.deleted;
      assert.equal(deleted.length, 1);
      assert.equal(deleted[0].type, "Bundle");
      assert.equal(deleted[0].count, 2);
      const bundles = await readFile(deleted[0].url, "Bundle");
      assert.deepEqual(
        bundles.map((b) => {
          assert.equal(b.type, "transaction");
          assert.equal(b.entry[0].request.method, "DELETE");
          return b.entry[0].request.url;
        }).sort(),
        ["Basic/gone-after", "Observation/od"],
      );
      // Without _since, or at the Patient level, nothing is listed as deleted.
      assert.deepEqual((await bulkExport(`${ctx.base}/$export?_type=Basic`)).manifest.deleted, []);
      const patient = await bulkExport(`${ctx.base}/Patient/$export?_type=Observation&_since=${s}`);
      assert.deepEqual(patient.manifest.deleted, []);
    } finally {
      await ctx.close();
    }
  },
);
