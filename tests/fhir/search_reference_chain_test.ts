// deno-lint-ignore-file no-explicit-any
import assert from "node:assert/strict";
import { backendTest, uniq } from "../_harness.ts";
import { create, searchIds, sorted, tagged, tagQ } from "./_util.ts";

const enc = encodeURIComponent;

async function world(ctx: any, u: string) {
  const sys = `urn:mrn:${u}`;
  const p = await create(ctx, {
    resourceType: "Patient",
    meta: tagged(u),
    identifier: [{ system: sys, value: "p1" }],
    name: [{ family: `${u}Peters`, given: ["Paula"] }],
  });
  const q = await create(ctx, {
    resourceType: "Patient",
    meta: tagged(u),
    identifier: [{ system: sys, value: "q1" }],
    name: [{ family: `${u}Quinn` }],
  });
  const obs = (subject: string, code: string) =>
    create(ctx, {
      resourceType: "Observation",
      meta: tagged(u),
      status: "final",
      code: { coding: [{ system: `urn:code:${u}`, code }] },
      subject: { reference: subject },
    });
  const op = await obs(`Patient/${p.id}`, "X");
  const oq = await obs(`Patient/${q.id}`, "Y");
  return { sys, p: p.id, q: q.id, op: op.id, oq: oq.id };
}

backendTest("reference search by id, Type/id, absolute URL and :Type modifier", async (ctx) => {
  const u = uniq();
  const w = await world(ctx, u);
  const q = (s: string) => searchIds(ctx, `Observation?${tagQ(u)}&${s}`);
  assert.deepEqual(await q(`subject=Patient/${w.p}`), [w.op]);
  assert.deepEqual(await q(`subject=${w.p}`), [w.op]);
  assert.deepEqual(await q(`subject=${enc(`${ctx.base}/Patient/${w.p}`)}`), [w.op]);
  assert.deepEqual(await q(`subject:Patient=${w.p}`), [w.op]);
  assert.deepEqual(await q(`patient=${w.p}`), [w.op]);
  assert.deepEqual(await q(`patient=Patient/${w.p}`), [w.op]);
  assert.deepEqual(await q(`subject=Patient/${w.p},Patient/${w.q}`), sorted([w.op, w.oq]));
  assert.deepEqual(await q(`subject=Patient/${uniq()}`), []);
});

backendTest("a reference stored as an absolute URL to this server matches Type/id", async (ctx) => {
  const u = uniq();
  const p = await create(ctx, { resourceType: "Patient", meta: tagged(u) });
  const o = await create(ctx, {
    resourceType: "Observation",
    meta: tagged(u),
    status: "final",
    code: { text: "x" },
    subject: { reference: `${ctx.base}/Patient/${p.id}` },
  });
  assert.deepEqual(await searchIds(ctx, `Observation?${tagQ(u)}&subject=Patient/${p.id}`), [o.id]);
  assert.deepEqual(await searchIds(ctx, `Observation?${tagQ(u)}&patient=${p.id}`), [o.id]);
});

backendTest("a reference to another server matches its absolute URL", async (ctx) => {
  const u = uniq();
  const url = `https://other.example.org/fhir/Patient/${u}`;
  const o = await create(ctx, {
    resourceType: "Observation",
    meta: tagged(u),
    status: "final",
    code: { text: "x" },
    subject: { reference: url },
  });
  assert.deepEqual(await searchIds(ctx, `Observation?${tagQ(u)}&subject=${enc(url)}`), [o.id]);
});

backendTest("reference :identifier matches Reference.identifier", async (ctx) => {
  const u = uniq();
  const o = await create(ctx, {
    resourceType: "Observation",
    meta: tagged(u),
    status: "final",
    code: { text: "x" },
    subject: { identifier: { system: "urn:ext", value: u } },
  });
  assert.deepEqual(
    await searchIds(ctx, `Observation?${tagQ(u)}&subject:identifier=${enc(`urn:ext|${u}`)}`),
    [o.id],
  );
  assert.deepEqual(
    await searchIds(ctx, `Observation?${tagQ(u)}&subject:identifier=${enc(`urn:ext|x${u}`)}`),
    [],
  );
});

backendTest("chain Observation?subject:Patient.identifier=sys|val", async (ctx) => {
  const u = uniq();
  const w = await world(ctx, u);
  assert.deepEqual(
    await searchIds(ctx, `Observation?subject:Patient.identifier=${enc(`${w.sys}|p1`)}`),
    [w.op],
  );
  assert.deepEqual(
    await searchIds(ctx, `Observation?subject:Patient.identifier=${enc(`${w.sys}|zz`)}`),
    [],
  );
  assert.deepEqual(
    await searchIds(
      ctx,
      `Observation?subject:Patient.identifier=${enc(`${w.sys}|p1,${w.sys}|q1`)}`,
    ),
    sorted([w.op, w.oq]),
  );
});

backendTest("chain Observation?patient.name=x uses the string rules of the target", async (ctx) => {
  const u = uniq();
  const w = await world(ctx, u);
  assert.deepEqual(await searchIds(ctx, `Observation?patient.name=${u}peters`), [w.op]);
  assert.deepEqual(await searchIds(ctx, `Observation?patient.family=${u}QUI`), [w.oq]);
  assert.deepEqual(
    await searchIds(ctx, `Observation?${tagQ(u)}&patient.name=paula&code=X`),
    [w.op],
  );
  assert.deepEqual(await searchIds(ctx, `Observation?${tagQ(u)}&patient.name=paula&code=Y`), []);
});

backendTest("a two-level chain DiagnosticReport?result.patient.family=x", async (ctx) => {
  const u = uniq();
  const w = await world(ctx, u);
  const dr = await create(ctx, {
    resourceType: "DiagnosticReport",
    meta: tagged(u),
    status: "final",
    code: { text: "r" },
    result: [{ reference: `Observation/${w.op}` }],
  });
  assert.deepEqual(await searchIds(ctx, `DiagnosticReport?result.patient.family=${u}peters`), [
    dr.id,
  ]);
  assert.deepEqual(await searchIds(ctx, `DiagnosticReport?result.patient.family=${u}quinn`), []);
});

backendTest("_has reverse chain Patient?_has:Observation:patient:code=X", async (ctx) => {
  const u = uniq();
  const w = await world(ctx, u);
  const q = (s: string) => searchIds(ctx, `Patient?${tagQ(u)}&${s}`);
  assert.deepEqual(await q(`_has:Observation:patient:code=X`), [w.p]);
  assert.deepEqual(await q(`_has:Observation:subject:code=Y`), [w.q]);
  assert.deepEqual(await q(`_has:Observation:patient:code=X,Y`), sorted([w.p, w.q]));
  assert.deepEqual(await q(`_has:Observation:patient:code=Z`), []);
  assert.deepEqual(
    await searchIds(ctx, `Patient?_has:Observation:patient:code=${enc(`urn:code:${u}|X`)}`),
    [w.p],
  );
});

backendTest(
  "DiagnosticReport?imaging-study=ImagingStudy/{id} finds the study's reports",
  async (ctx) => {
    const u = uniq();
    const p = await create(ctx, { resourceType: "Patient", meta: tagged(u) });
    const study = (uid: string) =>
      create(ctx, {
        resourceType: "ImagingStudy",
        meta: tagged(u),
        status: "available",
        subject: { reference: `Patient/${p.id}` },
        identifier: [{ system: "urn:dicom:uid", value: `urn:oid:${uid}` }],
      });
    const oid = `1.2.3.${Date.now()}.${Math.floor(Math.random() * 1e9)}`;
    const s1 = await study(`${oid}.1`);
    const s2 = await study(`${oid}.2`);
    const report = (s: string) =>
      create(ctx, {
        resourceType: "DiagnosticReport",
        meta: tagged(u),
        status: "final",
        code: { text: "CT report" },
        subject: { reference: `Patient/${p.id}` },
        imagingStudy: [{ reference: `ImagingStudy/${s}` }],
      });
    const r1 = await report(s1.id);
    const r1b = await report(s1.id);
    const r2 = await report(s2.id);
    const q = (s: string) => searchIds(ctx, `DiagnosticReport?${s}`);
    assert.deepEqual(await q(`imaging-study=ImagingStudy/${s1.id}`), sorted([r1.id, r1b.id]));
    assert.deepEqual(await q(`imaging-study=${s2.id}`), [r2.id]);
    assert.deepEqual(
      await q(`imaging-study=ImagingStudy/${s1.id},ImagingStudy/${s2.id}`),
      sorted([r1.id, r1b.id, r2.id]),
    );
    assert.deepEqual(
      await q(`imaging-study.identifier=${enc(`urn:dicom:uid|${s2.identifier[0].value}`)}`),
      [r2.id],
    );
    assert.deepEqual(
      await searchIds(
        ctx,
        `ImagingStudy?${tagQ(u)}&_has:DiagnosticReport:imaging-study:_id=${r2.id}`,
      ),
      [s2.id],
    );
  },
);

backendTest(
  "reference parameters on other types: Task.focus, Communication.subject, DocumentReference.subject",
  async (ctx) => {
    const u = uniq();
    const p = await create(ctx, { resourceType: "Patient", meta: tagged(u) });
    const ref = { reference: `Patient/${p.id}` };
    const t = await create(ctx, {
      resourceType: "Task",
      meta: tagged(u),
      status: "requested",
      intent: "order",
      for: ref,
      focus: ref,
    });
    const c = await create(ctx, {
      resourceType: "Communication",
      meta: tagged(u),
      status: "completed",
      subject: ref,
    });
    const d = await create(ctx, {
      resourceType: "DocumentReference",
      meta: tagged(u),
      status: "current",
      subject: ref,
      content: [{ attachment: { url: "https://example.org/x" } }],
    });
    assert.deepEqual(await searchIds(ctx, `Task?focus=Patient/${p.id}`), [t.id]);
    assert.deepEqual(await searchIds(ctx, `Task?patient=${p.id}`), [t.id]);
    assert.deepEqual(await searchIds(ctx, `Communication?patient=${p.id}`), [c.id]);
    assert.deepEqual(await searchIds(ctx, `DocumentReference?subject=Patient/${p.id}`), [d.id]);
  },
);
