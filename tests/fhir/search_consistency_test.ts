// deno-lint-ignore-file no-explicit-any
import assert from "node:assert/strict";
import { backendTest, fhirJson, uniq } from "../_harness.ts";
import { create, search, searchIds, tagged, tagQ } from "./_util.ts";

backendTest(
  "search indexes follow updates: the old value no longer matches, the new one does",
  async (ctx) => {
    const u = uniq();
    const p = await create(ctx, {
      resourceType: "Patient",
      meta: tagged(u),
      name: [{ family: `${u}old` }],
      birthDate: "1950",
    });
    const res = await fhirJson(ctx, "PUT", `Patient/${p.id}`, {
      ...p,
      name: [{ family: `${u}new` }],
      birthDate: "1960",
    });
    assert.equal(res.status, 200);
    assert.deepEqual(await searchIds(ctx, `Patient?family=${u}old`), []);
    assert.deepEqual(await searchIds(ctx, `Patient?family=${u}new`), [p.id]);
    assert.deepEqual(await searchIds(ctx, `Patient?${tagQ(u)}&birthdate=1950`), []);
    assert.deepEqual(await searchIds(ctx, `Patient?${tagQ(u)}&birthdate=1960`), [p.id]);
  },
);

backendTest("search indexes follow PATCH", async (ctx) => {
  const u = uniq();
  const p = await create(ctx, { resourceType: "Patient", meta: tagged(u), gender: "male" });
  const res = await fhirJson(ctx, "PATCH", `Patient/${p.id}`, [
    { op: "replace", path: "/gender", value: "female" },
  ], { "content-type": "application/json-patch+json" });
  assert.equal(res.status, 200);
  assert.deepEqual(await searchIds(ctx, `Patient?${tagQ(u)}&gender=male`), []);
  assert.deepEqual(await searchIds(ctx, `Patient?${tagQ(u)}&gender=female`), [p.id]);
});

async function patientWithObs(ctx: any, u: string) {
  const p = await create(ctx, { resourceType: "Patient", name: [{ family: `${u}del` }] });
  const o = await create(ctx, {
    resourceType: "Observation",
    meta: tagged(u),
    status: "final",
    code: { coding: [{ system: "urn:c", code: u }] },
    subject: { reference: `Patient/${p.id}` },
  });
  return { p: p.id, o: o.id };
}

backendTest("_include does not return a deleted target", async (ctx) => {
  const u = uniq();
  const { p, o } = await patientWithObs(ctx, u);
  await fhirJson(ctx, "DELETE", `Patient/${p}`);
  const b = await search(ctx, `Observation?${tagQ(u)}&_include=Observation:subject`);
  assert.deepEqual(b.entry.map((e: any) => e.resource.id), [o]);
});

backendTest("_revinclude and _has ignore deleted referrers", async (ctx) => {
  const u = uniq();
  const { p, o } = await patientWithObs(ctx, u);
  await fhirJson(ctx, "DELETE", `Observation/${o}`);
  const b = await search(ctx, `Patient?_id=${p}&_revinclude=Observation:subject`);
  assert.deepEqual(b.entry.map((e: any) => e.resource.id), [p]);
  assert.deepEqual(await searchIds(ctx, `Patient?_has:Observation:subject:code=${u}`), []);
});

backendTest("a chain through a deleted target matches nothing", async (ctx) => {
  const u = uniq();
  const { p, o } = await patientWithObs(ctx, u);
  assert.deepEqual(await searchIds(ctx, `Observation?patient.family=${u}del`), [o]);
  await fhirJson(ctx, "DELETE", `Patient/${p}`);
  assert.deepEqual(await searchIds(ctx, `Observation?patient.family=${u}del`), []);
});

backendTest("a chain follows the target's current version", async (ctx) => {
  const u = uniq();
  const { p, o } = await patientWithObs(ctx, u);
  const cur = await fhirJson(ctx, "GET", `Patient/${p}`);
  await fhirJson(ctx, "PUT", `Patient/${p}`, { ...cur.body, name: [{ family: `${u}renamed` }] });
  assert.deepEqual(await searchIds(ctx, `Observation?patient.family=${u}del`), []);
  assert.deepEqual(await searchIds(ctx, `Observation?patient.family=${u}renamed`), [o]);
});

backendTest("search returns the current version of each match, once", async (ctx) => {
  const u = uniq();
  const p = await create(ctx, { resourceType: "Patient", meta: tagged(u) });
  for (const g of ["male", "female", "other"]) {
    const cur = await fhirJson(ctx, "GET", `Patient/${p.id}`);
    await fhirJson(ctx, "PUT", `Patient/${p.id}`, { ...cur.body, gender: g });
  }
  const b = await search(ctx, `Patient?${tagQ(u)}`);
  assert.equal(b.entry.length, 1);
  assert.equal(b.total, 1);
  assert.equal(b.entry[0].resource.meta.versionId, "4");
  assert.equal(b.entry[0].resource.gender, "other");
});
