// deno-lint-ignore-file no-explicit-any
import assert from "node:assert/strict";
import { backendTest, uniq } from "../_harness.ts";
import { create, searchIds, sorted, tagged, tagQ } from "./_util.ts";

const enc = encodeURIComponent;
const UCUM = "http://unitsofmeasure.org";
const LOINC = "http://loinc.org";

async function expect(ctx: any, type: string, u: string, query: string, ids: string[]) {
  const got = await searchIds(ctx, `${type}?${tagQ(u)}&${query}`);
  assert.deepEqual(got, sorted(ids), `${type}?${query}`);
}

backendTest("birthdate: partial search dates match the day they contain", async (ctx) => {
  const u = uniq();
  const p = await create(ctx, {
    resourceType: "Patient",
    meta: tagged(u),
    birthDate: "1974-05-06",
  });
  const q = (s: string, ids: string[]) => expect(ctx, "Patient", u, `birthdate=${s}`, ids);
  await q("1974", [p.id]);
  await q("1974-05", [p.id]);
  await q("1974-05-06", [p.id]);
  await q("eq1974", [p.id]);
  await q("1974-05-07", []);
  await q("1975", []);
  await q("1974-04", []);
});

backendTest("birthdate prefixes gt ge lt le ne sa eb ap compare ranges", async (ctx) => {
  const u = uniq();
  const p1 = await create(ctx, {
    resourceType: "Patient",
    meta: tagged(u),
    birthDate: "1974-05-06",
  });
  const p2 = await create(ctx, { resourceType: "Patient", meta: tagged(u), birthDate: "1980" });
  const q = (s: string, ids: string[]) => expect(ctx, "Patient", u, `birthdate=${s}`, ids);
  await q("gt1974-05-06", [p2.id]);
  await q("ge1974-05-06", [p1.id, p2.id]);
  await q("gt1974", [p2.id]);
  await q("lt1980", [p1.id]);
  await q("le1980", [p1.id, p2.id]);
  await q("lt1974-05-07", [p1.id]);
  await q("lt1974-05-06", []);
  await q("ne1974", [p2.id]);
  await q("ne1974-05-06", [p2.id]);
  await q("sa1974", [p2.id]);
  await q("sa1973", [p1.id, p2.id]);
  await q("eb1980", [p1.id]);
  await q("eb1981", [p1.id, p2.id]);
  await q("ap1974-05-06", [p1.id]);
  await q("ge1974-05-06&birthdate=lt1980", [p1.id]);
  await q("1974,1980", [p1.id, p2.id]);
});

backendTest(
  "a year-precision birthdate is a range: ge/lt within the year match, eq a month does not",
  async (ctx) => {
    const u = uniq();
    const p = await create(ctx, { resourceType: "Patient", meta: tagged(u), birthDate: "1980" });
    const q = (s: string, ids: string[]) => expect(ctx, "Patient", u, `birthdate=${s}`, ids);
    await q("1980", [p.id]);
    await q("1980-06", []);
    await q("ge1980-06", [p.id]);
    await q("gt1980-06", [p.id]);
    await q("lt1980-06", [p.id]);
    await q("ne1980-06", [p.id]);
  },
);

backendTest("date=2015-02-19 matches an effectiveDateTime at 09:30 that day", async (ctx) => {
  const u = uniq();
  const o = await create(ctx, {
    resourceType: "Observation",
    meta: tagged(u),
    status: "final",
    code: { text: "x" },
    effectiveDateTime: "2015-02-19T09:30:00Z",
  });
  const q = (s: string, ids: string[]) => expect(ctx, "Observation", u, `date=${enc(s)}`, ids);
  await q("2015-02-19", [o.id]);
  await q("2015-02", [o.id]);
  await q("2015", [o.id]);
  await q("2015-02-19T09:30:00Z", [o.id]);
  await q("2015-02-19T10:30:00+01:00", [o.id]);
  await q("2015-02-20", []);
  await q("2015-02-18", []);
  await q("2015-02-19T09:31:00Z", []);
  await q("gt2015-02-19T09:00:00Z", [o.id]);
  await q("lt2015-02-19T09:00:00Z", []);
  await q("gt2015-01", [o.id]);
  await q("gt2015-02", []);
  await q("le2015-02-19", [o.id]);
  await q("ap2015-02-19", [o.id]);
});

backendTest("a dateTime with an offset is compared as an instant", async (ctx) => {
  const u = uniq();
  const o = await create(ctx, {
    resourceType: "Observation",
    meta: tagged(u),
    status: "final",
    code: { text: "x" },
    effectiveDateTime: "2015-02-19T23:30:00-05:00",
  });
  const q = (s: string, ids: string[]) => expect(ctx, "Observation", u, `date=${enc(s)}`, ids);
  await q("2015-02-20T04:30:00Z", [o.id]);
  await q("gt2015-02-20T04:00:00Z", [o.id]);
  await q("lt2015-02-20T04:00:00Z", []);
});

backendTest(
  "a Period with an open end matches date=gt2100-01-01 and not lt before its start",
  async (ctx) => {
    const u = uniq();
    const o = await create(ctx, {
      resourceType: "Observation",
      meta: tagged(u),
      status: "final",
      code: { text: "x" },
      effectivePeriod: { start: "2020-01-01T00:00:00Z" },
    });
    const q = (s: string, ids: string[]) => expect(ctx, "Observation", u, `date=${s}`, ids);
    await q("gt2100-01-01", [o.id]);
    await q("ge2100-01-01", [o.id]);
    await q("lt2019", []);
    await q("lt2020-06", [o.id]);
    await q("sa2019", [o.id]);
    await q("eb2100", []);
    await q("2020", []);
    await q("ne2020", [o.id]);
  },
);

backendTest("a Period with an open start is infinite into the past", async (ctx) => {
  const u = uniq();
  const o = await create(ctx, {
    resourceType: "Observation",
    meta: tagged(u),
    status: "final",
    code: { text: "x" },
    effectivePeriod: { end: "2000-01-01" },
  });
  const q = (s: string, ids: string[]) => expect(ctx, "Observation", u, `date=${s}`, ids);
  await q("lt1900", [o.id]);
  await q("gt2000-01-01", []);
  await q("eb2000-01-02", [o.id]);
  await q("1999", []);
});

backendTest(
  "a closed Period matches by containment for eq and by overlap for gt/lt",
  async (ctx) => {
    const u = uniq();
    const o = await create(ctx, {
      resourceType: "Observation",
      meta: tagged(u),
      status: "final",
      code: { text: "x" },
      effectivePeriod: { start: "2020-01-01", end: "2020-12-31" },
    });
    const q = (s: string, ids: string[]) => expect(ctx, "Observation", u, `date=${s}`, ids);
    await q("2020", [o.id]);
    await q("2020-06", []);
    await q("ge2020-06", [o.id]);
    await q("lt2020-06", [o.id]);
    await q("gt2021", []);
    await q("le2019", []);
    await q("sa2019", [o.id]);
    await q("eb2021", [o.id]);
    await q("eb2020-12", []);
  },
);

function qty(u: string, value: number, unit: string, code: string, extra: any = {}) {
  return {
    resourceType: "Observation",
    meta: tagged(u),
    status: "final",
    code: { text: "q" },
    valueQuantity: { value, unit, system: UCUM, code },
    ...extra,
  };
}

backendTest("value-quantity=6 matches 6.2 by implicit precision; 6.0 does not", async (ctx) => {
  const u = uniq();
  const o = await create(ctx, qty(u, 6.2, "mg", "mg"));
  const q = (s: string, ids: string[]) =>
    expect(ctx, "Observation", u, `value-quantity=${enc(s)}`, ids);
  await q("6", [o.id]);
  await q("6.2", [o.id]);
  await q("6.20", [o.id]);
  await q("6.0", []);
  await q("6.3", []);
  await q("7", []);
  await q("gt6", [o.id]);
  await q("ge6.2", [o.id]);
  await q("lt6", []);
  await q("lt7", [o.id]);
  await q("le6.1", []);
  await q("ne6.2", []);
  await q("ne7", [o.id]);
  await q(`6.2|${UCUM}|mg`, [o.id]);
  await q("6.2||mg", [o.id]);
  await q(`6.2|${UCUM}|g`, []);
});

backendTest("value-quantity with mm[Hg] units does not match a /min value", async (ctx) => {
  const u = uniq();
  const hr = await create(ctx, qty(u, 44, "beats/minute", "/min"));
  const bp = await create(ctx, qty(u, 44, "mmHg", "mm[Hg]"));
  const q = (s: string, ids: string[]) =>
    expect(ctx, "Observation", u, `value-quantity=${enc(s)}`, ids);
  await q(`44|${UCUM}|mm[Hg]`, [bp.id]);
  await q(`44|${UCUM}|/min`, [hr.id]);
  await q("44", [hr.id, bp.id]);
  await q(`gt40|${UCUM}|mm[Hg]`, [bp.id]);
  await q(`lt40|${UCUM}|mm[Hg]`, []);
});

async function composites(ctx: any, u: string) {
  const code = (c: string) => ({ coding: [{ system: LOINC, code: c }] });
  const mmHg = (v: number) => ({ value: v, unit: "mmHg", system: UCUM, code: "mm[Hg]" });
  const base = { resourceType: "Observation", meta: tagged(u), status: "final" };
  const a = await create(ctx, { ...base, code: code("8480-6"), valueQuantity: mmHg(120) });
  const b = await create(ctx, { ...base, code: code("8480-6"), valueQuantity: mmHg(90) });
  const c = await create(ctx, {
    ...base,
    code: code("85354-9"),
    component: [
      { code: code("8480-6"), valueQuantity: mmHg(130) },
      { code: code("8462-4"), valueQuantity: mmHg(85) },
    ],
  });
  return { a: a.id, b: b.id, c: c.id };
}

backendTest("code-value-quantity composite: http://loinc.org|8480-6$gt100", async (ctx) => {
  const u = uniq();
  const { a, b } = await composites(ctx, u);
  const q = (s: string, ids: string[]) =>
    expect(ctx, "Observation", u, `code-value-quantity=${enc(s)}`, ids);
  await q(`${LOINC}|8480-6$gt100`, [a]);
  await q(`${LOINC}|8480-6$lt100`, [b]);
  await q(`8480-6$gt100`, [a]);
  await q(`${LOINC}|8462-4$gt50`, []);
  await q(`${LOINC}|8480-6$120|${UCUM}|mm[Hg]`, [a]);
  await q(`${LOINC}|8480-6$gt100,${LOINC}|8480-6$lt100`, [a, b]);
});

backendTest(
  "component-code-value-quantity pairs each component's code with its own value",
  async (ctx) => {
    const u = uniq();
    const { c } = await composites(ctx, u);
    const q = (s: string, ids: string[]) =>
      expect(ctx, "Observation", u, `component-code-value-quantity=${enc(s)}`, ids);
    await q(`${LOINC}|8462-4$gt80`, [c]);
    await q(`${LOINC}|8462-4$gt90`, []);
    await q(`${LOINC}|8480-6$gt120`, [c]);
    await q(`${LOINC}|8480-6$lt90`, []);
  },
);

backendTest("component-value-quantity and combo-code-value-quantity", async (ctx) => {
  const u = uniq();
  const { a, c } = await composites(ctx, u);
  await expect(ctx, "Observation", u, "component-value-quantity=gt120", [c]);
  await expect(ctx, "Observation", u, "component-value-quantity=gt200", []);
  await expect(ctx, "Observation", u, "component-value-quantity=85", [c]);
  await expect(
    ctx,
    "Observation",
    u,
    `combo-code-value-quantity=${enc(`${LOINC}|8480-6$gt100`)}`,
    [a, c],
  );
});

backendTest(
  "code-value-concept composite matches code and CodeableConcept value together",
  async (ctx) => {
    const u = uniq();
    const sys = `urn:sys:${u}`;
    const base = { resourceType: "Observation", meta: tagged(u), status: "final" };
    const d = await create(ctx, {
      ...base,
      code: { coding: [{ system: sys, code: "X" }] },
      valueCodeableConcept: { coding: [{ system: sys, code: "Y" }] },
    });
    await create(ctx, {
      ...base,
      code: { coding: [{ system: sys, code: "X" }] },
      valueCodeableConcept: { coding: [{ system: sys, code: "Z" }] },
    });
    await expect(ctx, "Observation", u, `code-value-concept=${enc(`${sys}|X$${sys}|Y`)}`, [d.id]);
    await expect(ctx, "Observation", u, `code-value-concept=${enc(`${sys}|Y$${sys}|X`)}`, []);
  },
);

backendTest(
  "a year-9999 date is indexed and found (its upper bound, 10000-01-01, is past 4-digit years)",
  async (ctx) => {
    const u = uniq();
    const p = await create(ctx, {
      resourceType: "Patient",
      meta: tagged(u),
      birthDate: "9999-12-31",
    });
    const q = (s: string, ids: string[]) => expect(ctx, "Patient", u, `birthdate=${s}`, ids);
    await q("9999", [p.id]);
    await q("9999-12-31", [p.id]);
    await q("ge9999-12-31", [p.id]);
    await q("gt9999-12-30", [p.id]);
    await q("ap9999", [p.id]);
    await q("lt9999-12-31", []);
    await q("ap0100", []);
  },
);
