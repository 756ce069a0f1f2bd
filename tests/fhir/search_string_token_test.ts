// deno-lint-ignore-file no-explicit-any
import assert from "node:assert/strict";
import { backendTest, uniq } from "../_harness.ts";
import { create, searchIds, sorted, tagged, tagQ } from "./_util.ts";

const enc = encodeURIComponent;

backendTest(
  "string search is a case- and accent-insensitive prefix match by default",
  async (ctx) => {
    const u = uniq();
    const p = await create(ctx, {
      resourceType: "Patient",
      meta: tagged(u),
      name: [{ family: `${u}Müller`, given: ["Zoë"] }],
    });
    const q = (v: string) => searchIds(ctx, `Patient?${tagQ(u)}&family=${enc(v)}`);
    assert.deepEqual(await q(`${u}muller`), [p.id]);
    assert.deepEqual(await q(`${u.toUpperCase()}MULLER`), [p.id]);
    assert.deepEqual(await q(`${u}Müller`), [p.id]);
    assert.deepEqual(await q(`${u}mu`), [p.id]);
    assert.deepEqual(await q(u), [p.id]);
    assert.deepEqual(await q(`${u}mullerx`), []);
    assert.deepEqual(await q("uller"), []);
    assert.deepEqual(await searchIds(ctx, `Patient?${tagQ(u)}&given=zoe`), [p.id]);
  },
);

backendTest("string search without other filters finds the accented name", async (ctx) => {
  const u = uniq();
  const p = await create(ctx, { resourceType: "Patient", name: [{ family: `Müller${u}` }] });
  assert.deepEqual(await searchIds(ctx, `Patient?family=muller${u}`), [p.id]);
  assert.deepEqual(await searchIds(ctx, `Patient?name=MULLER${u}`), [p.id]);
  const plain = await create(ctx, { resourceType: "Patient", name: [{ family: `Muller${u}x` }] });
  assert.deepEqual(await searchIds(ctx, `Patient?family=${enc(`Müller${u}x`)}`), [plain.id]);
});

backendTest("string :exact matches the whole value, case and accents included", async (ctx) => {
  const u = uniq();
  const p = await create(ctx, {
    resourceType: "Patient",
    meta: tagged(u),
    name: [{ family: `${u}Müller` }],
  });
  const q = (v: string) => searchIds(ctx, `Patient?${tagQ(u)}&family:exact=${enc(v)}`);
  assert.deepEqual(await q(`${u}Müller`), [p.id]);
  assert.deepEqual(await q(`${u}muller`), []);
  assert.deepEqual(await q(`${u}Müll`), []);
  assert.deepEqual(await q(`${u}MÜLLER`), []);
});

backendTest("string :contains matches anywhere, case-insensitively", async (ctx) => {
  const u = uniq();
  const p = await create(ctx, {
    resourceType: "Patient",
    meta: tagged(u),
    name: [{ family: `Van${u}Damme` }],
  });
  const q = (v: string, mod = ":contains") =>
    searchIds(ctx, `Patient?${tagQ(u)}&family${mod}=${enc(v)}`);
  assert.deepEqual(await q(`${u}dam`), [p.id]);
  assert.deepEqual(await q("DAMME"), [p.id]);
  assert.deepEqual(await q("xyz"), []);
  assert.deepEqual(await q(`${u}dam`, ""), []);
});

backendTest(
  "name searches family, given, prefix and text; address searches its parts",
  async (ctx) => {
    const u = uniq();
    const p = await create(ctx, {
      resourceType: "Patient",
      meta: tagged(u),
      name: [{
        family: "Smith",
        given: ["Johanna", "Maria"],
        prefix: ["Dr"],
        text: "Dr Johanna Smith",
      }],
      address: [{ line: ["1 Main St"], city: "Springfield", postalCode: "12345", country: "US" }],
    });
    await create(ctx, { resourceType: "Patient", meta: tagged(u), name: [{ family: "Jones" }] });
    for (const v of ["smith", "johanna", "mar", "dr"]) {
      assert.deepEqual(await searchIds(ctx, `Patient?${tagQ(u)}&name=${v}`), [p.id], v);
    }
    assert.deepEqual(await searchIds(ctx, `Patient?${tagQ(u)}&address=springf`), [p.id]);
    assert.deepEqual(await searchIds(ctx, `Patient?${tagQ(u)}&address-city=SPRINGFIELD`), [p.id]);
    assert.deepEqual(await searchIds(ctx, `Patient?${tagQ(u)}&address-postalcode=123`), [p.id]);
    assert.deepEqual(await searchIds(ctx, `Patient?${tagQ(u)}&address-city=shelbyville`), []);
  },
);

backendTest("comma is OR within a parameter; repeating a parameter is AND", async (ctx) => {
  const u = uniq();
  const a = await create(ctx, {
    resourceType: "Patient",
    meta: tagged(u),
    name: [{ family: "Alpha", given: ["One", "Two"] }],
  });
  const b = await create(ctx, {
    resourceType: "Patient",
    meta: tagged(u),
    name: [{ family: "Beta", given: ["One"] }],
  });
  await create(ctx, { resourceType: "Patient", meta: tagged(u), name: [{ family: "Gamma" }] });
  const t = tagQ(u);
  assert.deepEqual(await searchIds(ctx, `Patient?${t}&family=alpha,beta`), sorted([a.id, b.id]));
  assert.deepEqual(await searchIds(ctx, `Patient?${t}&given=one&given=two`), [a.id]);
  assert.deepEqual(await searchIds(ctx, `Patient?${t}&given=one`), sorted([a.id, b.id]));
  assert.deepEqual(await searchIds(ctx, `Patient?${t}&family=alpha&family=beta`), []);
  assert.deepEqual(await searchIds(ctx, `Patient?${t}&family=beta,gam&given=one`), [b.id]);
});

backendTest("a comma escaped with a backslash is part of the value", async (ctx) => {
  const u = uniq();
  const p = await create(ctx, {
    resourceType: "Patient",
    meta: tagged(u),
    name: [{ family: `${u},Jr` }],
  });
  assert.deepEqual(await searchIds(ctx, `Patient?${tagQ(u)}&family=${enc(`${u}\\,jr`)}`), [p.id]);
});

function obs(u: string, coding: any[], { text, ...extra }: any = {}) {
  return {
    resourceType: "Observation",
    meta: tagged(u),
    status: "final",
    code: { coding, ...(text ? { text } : {}) },
    ...extra,
  };
}

backendTest("token: code, system|code, |code and system| forms", async (ctx) => {
  const u = uniq();
  const sysA = `urn:sys:a:${u}`;
  const sysB = `urn:sys:b:${u}`;
  const a = await create(ctx, obs(u, [{ system: sysA, code: "c1" }]));
  const b = await create(ctx, obs(u, [{ system: sysB, code: "c1" }]));
  const n = await create(ctx, obs(u, [{ code: "c1" }]));
  const c2 = await create(ctx, obs(u, [{ system: sysA, code: "c2" }]));
  const q = (v: string) => searchIds(ctx, `Observation?${tagQ(u)}&code=${enc(v)}`);
  assert.deepEqual(await q("c1"), sorted([a.id, b.id, n.id]));
  assert.deepEqual(await q(`${sysA}|c1`), [a.id]);
  assert.deepEqual(await q("|c1"), [n.id]);
  assert.deepEqual(await q(`${sysA}|`), sorted([a.id, c2.id]));
  assert.deepEqual(await q(`${sysA}|c1,${sysB}|c1`), sorted([a.id, b.id]));
  assert.deepEqual(await q(`${sysA}|c3`), []);
});

backendTest(
  "token :not excludes the code and includes resources without any value",
  async (ctx) => {
    const u = uniq();
    const m = await create(ctx, { resourceType: "Patient", meta: tagged(u), gender: "male" });
    const f = await create(ctx, { resourceType: "Patient", meta: tagged(u), gender: "female" });
    const none = await create(ctx, { resourceType: "Patient", meta: tagged(u) });
    const q = (v: string) => searchIds(ctx, `Patient?${tagQ(u)}&gender${v}`);
    assert.deepEqual(await q("=male"), [m.id]);
    assert.deepEqual(await q(":not=male"), sorted([f.id, none.id]));
    assert.deepEqual(await q(":not=other"), sorted([m.id, f.id, none.id]));
  },
);

backendTest("token :not with system|code on a CodeableConcept", async (ctx) => {
  const u = uniq();
  const sys = `urn:sys:${u}`;
  const a = await create(ctx, obs(u, [{ system: sys, code: "a" }]));
  const b = await create(ctx, obs(u, [{ system: sys, code: "b" }]));
  assert.deepEqual(await searchIds(ctx, `Observation?${tagQ(u)}&code:not=${enc(`${sys}|a`)}`), [
    b.id,
  ]);
  assert.deepEqual(
    await searchIds(ctx, `Observation?${tagQ(u)}&code:not=${enc(`${sys}|c`)}`),
    sorted([a.id, b.id]),
  );
});

backendTest("token :text searches the CodeableConcept text and coding display", async (ctx) => {
  const u = uniq();
  const a = await create(
    ctx,
    obs(u, [{ system: "http://loinc.org", code: "8480-6" }], { text: "Systolic blood pressure" }),
  );
  const b = await create(
    ctx,
    obs(u, [{ system: "http://loinc.org", code: "8867-4", display: "Heart rate" }]),
  );
  assert.deepEqual(await searchIds(ctx, `Observation?${tagQ(u)}&code:text=systolic`), [a.id]);
  assert.deepEqual(await searchIds(ctx, `Observation?${tagQ(u)}&code:text=heart`), [b.id]);
  assert.deepEqual(await searchIds(ctx, `Observation?${tagQ(u)}&code:text=glucose`), []);
});

backendTest("identifier token: value, system|value and system|", async (ctx) => {
  const u = uniq();
  const sys = `urn:mrn:${u}`;
  const a = await create(ctx, {
    resourceType: "Patient",
    identifier: [{ system: sys, value: "123" }, { system: "urn:other", value: `${u}x` }],
  });
  const b = await create(ctx, {
    resourceType: "Patient",
    identifier: [{ system: sys, value: "456" }],
  });
  assert.deepEqual(await searchIds(ctx, `Patient?identifier=${enc(`${sys}|123`)}`), [a.id]);
  assert.deepEqual(
    await searchIds(ctx, `Patient?identifier=${enc(`${sys}|`)}`),
    sorted([a.id, b.id]),
  );
  assert.deepEqual(await searchIds(ctx, `Patient?identifier=${u}x`), [a.id]);
  assert.deepEqual(await searchIds(ctx, `Patient?identifier=${enc(`urn:other|${u}`)}`), []);
});

backendTest("token on booleans, codes and _id", async (ctx) => {
  const u = uniq();
  const a = await create(ctx, { resourceType: "Patient", meta: tagged(u), active: true });
  const b = await create(ctx, { resourceType: "Patient", meta: tagged(u), active: false });
  const t = tagQ(u);
  assert.deepEqual(await searchIds(ctx, `Patient?${t}&active=true`), [a.id]);
  assert.deepEqual(await searchIds(ctx, `Patient?${t}&active=false`), [b.id]);
  assert.deepEqual(await searchIds(ctx, `Patient?_id=${a.id}`), [a.id]);
  assert.deepEqual(await searchIds(ctx, `Patient?_id=${a.id},${b.id}`), sorted([a.id, b.id]));
  assert.deepEqual(await searchIds(ctx, `Patient?_id=${uniq()}`), []);
  const o = await create(ctx, obs(u, [{ code: "x" }]));
  assert.deepEqual(await searchIds(ctx, `Observation?${t}&status=final`), [o.id]);
  assert.deepEqual(await searchIds(ctx, `Observation?${t}&status=preliminary`), []);
});

backendTest("_tag, _profile and _security search meta", async (ctx) => {
  const u = uniq();
  const p = await create(ctx, {
    resourceType: "Patient",
    meta: {
      tag: [{ system: "urn:test:tag", code: u }],
      profile: [`http://example.org/StructureDefinition/${u}`],
      security: [{ system: "urn:sec", code: u }],
    },
  });
  assert.deepEqual(await searchIds(ctx, `Patient?_tag=${u}`), [p.id]);
  assert.deepEqual(await searchIds(ctx, `Patient?${tagQ(u)}`), [p.id]);
  assert.deepEqual(await searchIds(ctx, `Patient?_tag=${enc(`urn:other|${u}`)}`), []);
  assert.deepEqual(
    await searchIds(ctx, `Patient?_profile=${enc(`http://example.org/StructureDefinition/${u}`)}`),
    [p.id],
  );
  assert.deepEqual(await searchIds(ctx, `Patient?_security=${enc(`urn:sec|${u}`)}`), [p.id]);
});

backendTest("uri search is exact by default; :below matches by prefix", async (ctx) => {
  const u = uniq();
  const d = await create(ctx, { resourceType: "Device", url: `https://dev.example.org/${u}/x` });
  assert.deepEqual(await searchIds(ctx, `Device?url=${enc(`https://dev.example.org/${u}/x`)}`), [
    d.id,
  ]);
  assert.deepEqual(await searchIds(ctx, `Device?url=${enc(`https://dev.example.org/${u}`)}`), []);
  assert.deepEqual(
    await searchIds(ctx, `Device?url:below=${enc(`https://dev.example.org/${u}`)}`),
    [d.id],
  );
});

backendTest(":missing=true/false on string, token, date and reference parameters", async (ctx) => {
  const u = uniq();
  const empty = await create(ctx, { resourceType: "Patient", meta: tagged(u) });
  const full = await create(ctx, {
    resourceType: "Patient",
    meta: tagged(u),
    name: [{ family: "F" }],
    gender: "male",
    birthDate: "1990",
    link: [{ other: { reference: `Patient/${empty.id}` }, type: "seealso" }],
  });
  for (const p of ["family", "gender", "birthdate", "link"]) {
    assert.deepEqual(await searchIds(ctx, `Patient?${tagQ(u)}&${p}:missing=true`), [empty.id], p);
    assert.deepEqual(await searchIds(ctx, `Patient?${tagQ(u)}&${p}:missing=false`), [full.id], p);
  }
});
