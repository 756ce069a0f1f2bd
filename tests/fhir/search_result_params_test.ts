// deno-lint-ignore-file no-explicit-any
import assert from "node:assert/strict";
import { backendTest, fhirJson, uniq } from "../_harness.ts";
import { create, link, matchIds, search, searchIds, sorted, tagged, tagQ } from "./_util.ts";

async function getUrl(url: string): Promise<any> {
  const res = await fetch(url, { headers: { accept: "application/fhir+json" } });
  assert.equal(res.status, 200, url);
  return await res.json();
}

async function patients(ctx: any, u: string, n: number, extra: (i: number) => any = () => ({})) {
  const out: any[] = [];
  for (let i = 0; i < n; i++) {
    out.push(await create(ctx, { resourceType: "Patient", meta: tagged(u), ...extra(i) }));
  }
  return out;
}

const order = (b: any) => (b.entry ?? []).map((e: any) => e.resource.id);

backendTest(
  "searchset: absolute fullUrl, search.mode match, total and a self link",
  async (ctx) => {
    const u = uniq();
    const ps = await patients(ctx, u, 2);
    const b = await search(ctx, `Patient?${tagQ(u)}`);
    assert.equal(b.total, 2);
    assert.equal(b.entry.length, 2);
    for (const e of b.entry) {
      assert.equal(e.fullUrl, `${ctx.base}/Patient/${e.resource.id}`);
      assert.equal(e.search?.mode, "match");
    }
    assert.deepEqual(matchIds(b), sorted(ps.map((p) => p.id)));
    const self = link(b, "self");
    assert.ok(self?.startsWith(`${ctx.base}/Patient`), self);
    assert.ok(decodeURIComponent(self!).includes(u));
    const empty = await search(ctx, `Patient?_tag=${uniq()}`);
    assert.equal(empty.total, 0);
    assert.equal(empty.entry?.length ?? 0, 0);
  },
);

backendTest(
  "_count pages with next and previous links; following next yields every match once",
  async (ctx) => {
    const u = uniq();
    const ps = await patients(ctx, u, 7);
    const first = await search(ctx, `Patient?${tagQ(u)}&_count=3`);
    assert.equal(first.entry.length, 3);
    assert.equal(first.total, 7);
    assert.equal(link(first, "previous") ?? link(first, "prev"), undefined);
    const seen: string[] = order(first);
    let page = first;
    let second: any;
    let pages = 1;
    while (link(page, "next")) {
      page = await getUrl(link(page, "next")!);
      assert.equal(page.type, "searchset");
      second ??= page;
      seen.push(...order(page));
      assert.ok(++pages <= 3, "at most 3 pages");
    }
    assert.equal(pages, 3);
    assert.equal(seen.length, 7);
    assert.deepEqual(sorted(seen), sorted(ps.map((p) => p.id)));
    const prev = link(second, "previous") ?? link(second, "prev");
    assert.ok(prev, "second page has a previous link");
    assert.deepEqual(order(await getUrl(prev)), order(first));
  },
);

backendTest("paging is stable when resources are created between page fetches", async (ctx) => {
  for (const sort of ["", "&_sort=-_lastUpdated", "&_sort=family", "&_sort=-family"]) {
    const u = uniq();
    const ps = await patients(ctx, u, 6, (i) => ({ name: [{ family: `f${i}` }] }));
    let page = await search(ctx, `Patient?${tagQ(u)}&_count=2${sort}`);
    const seen: string[] = [...order(page)];
    let guard = 0;
    while (link(page, "next")) {
      if (guard < 2) {
        await patients(ctx, u, 2, () => ({ name: [{ family: "a" }] }));
        await patients(ctx, u, 1, () => ({ name: [{ family: "z" }] }));
      }
      page = await getUrl(link(page, "next")!);
      seen.push(...order(page));
      assert.ok(++guard < 30, "paging terminates");
    }
    assert.equal(new Set(seen).size, seen.length, `no duplicates (${sort}): ${seen}`);
    for (const p of ps) assert.ok(seen.includes(p.id), `${p.id} seen (${sort})`);
  }
});

backendTest("_sort=-birthdate,family sorts on several keys", async (ctx) => {
  const u = uniq();
  const [a, b, c] = await patients(ctx, u, 3, (i) => ({
    name: [{ family: ["Beta", "Alpha", "Alpha"][i] }],
    birthDate: ["1990-01-01", "1990-01-01", "1980-01-01"][i],
  }));
  const q = async (s: string) => order(await search(ctx, `Patient?${tagQ(u)}&_sort=${s}`));
  assert.deepEqual(await q("-birthdate,family"), [b.id, a.id, c.id]);
  assert.deepEqual(await q("birthdate,family"), [c.id, b.id, a.id]);
  assert.deepEqual(await q("family,-birthdate"), [b.id, c.id, a.id]);
  assert.deepEqual(await q("-family,birthdate"), [a.id, c.id, b.id]);
});

backendTest("_sort=_lastUpdated and -_lastUpdated order by modification time", async (ctx) => {
  const u = uniq();
  const ps: any[] = [];
  for (let i = 0; i < 3; i++) {
    ps.push(await create(ctx, { resourceType: "Patient", meta: tagged(u) }));
    await new Promise((r) => setTimeout(r, 15));
  }
  const ids = ps.map((p) => p.id);
  assert.deepEqual(order(await search(ctx, `Patient?${tagQ(u)}&_sort=_lastUpdated`)), ids);
  assert.deepEqual(
    order(await search(ctx, `Patient?${tagQ(u)}&_sort=-_lastUpdated`)),
    [...ids].reverse(),
  );
});

backendTest(
  "_summary=count returns the total and no entries; _total=accurate counts all",
  async (ctx) => {
    const u = uniq();
    await patients(ctx, u, 4);
    const c = await search(ctx, `Patient?${tagQ(u)}&_summary=count`);
    assert.equal(c.total, 4);
    assert.equal(c.entry?.length ?? 0, 0);
    const t = await search(ctx, `Patient?${tagQ(u)}&_total=accurate&_count=1`);
    assert.equal(t.total, 4);
    assert.equal(t.entry.length, 1);
  },
);

backendTest("_summary=true drops non-summary elements", async (ctx) => {
  const u = uniq();
  const p = await create(ctx, {
    resourceType: "Patient",
    meta: tagged(u),
    name: [{ family: "Sum" }],
    contact: [{ name: { family: "NotInSummary" } }],
  });
  const b = await search(ctx, `Patient?${tagQ(u)}&_summary=true`);
  assert.equal(b.entry[0].resource.id, p.id);
  assert.equal(b.entry[0].resource.name[0].family, "Sum");
  assert.equal(b.entry[0].resource.contact, undefined);
});

backendTest(
  "_elements returns only the listed elements plus id and meta with a SUBSETTED tag",
  async (ctx) => {
    const u = uniq();
    const p = await create(ctx, {
      resourceType: "Patient",
      meta: tagged(u),
      identifier: [{ system: "urn:x", value: u }],
      name: [{ family: "Hidden" }],
      birthDate: "2001-02-03",
      gender: "female",
    });
    const b = await search(ctx, `Patient?${tagQ(u)}&_elements=identifier,birthDate`);
    const r = b.entry[0].resource;
    assert.equal(r.resourceType, "Patient");
    assert.equal(r.id, p.id);
    assert.deepEqual(r.identifier, p.identifier);
    assert.equal(r.birthDate, "2001-02-03");
    assert.equal(r.name, undefined);
    assert.equal(r.gender, undefined);
    assert.ok(r.meta, "meta kept");
    assert.ok(
      r.meta.tag?.some((t: any) =>
        t.code === "SUBSETTED" &&
        t.system === "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
      ),
      JSON.stringify(r.meta),
    );
    const full = await fhirJson(ctx, "GET", `Patient/${p.id}`);
    assert.equal(full.body.name[0].family, "Hidden");
    assert.ok(!full.body.meta.tag?.some((t: any) => t.code === "SUBSETTED"));
  },
);

backendTest(
  "_include=Observation:subject adds each referenced patient once, mode include",
  async (ctx) => {
    const u = uniq();
    const p = await create(ctx, { resourceType: "Patient", meta: tagged(`${u}p`) });
    const mk = () =>
      create(ctx, {
        resourceType: "Observation",
        meta: tagged(u),
        status: "final",
        code: { text: "x" },
        subject: { reference: `Patient/${p.id}` },
      });
    const o1 = await mk();
    const o2 = await mk();
    for (
      const inc of ["Observation:subject", "Observation:subject:Patient", "Observation:patient"]
    ) {
      const b = await search(ctx, `Observation?${tagQ(u)}&_include=${inc}`);
      assert.deepEqual(matchIds(b), sorted([o1.id, o2.id]), inc);
      const incl = b.entry.filter((e: any) => e.search?.mode === "include");
      assert.equal(incl.length, 1, inc);
      assert.equal(incl[0].resource.id, p.id);
      assert.equal(incl[0].fullUrl, `${ctx.base}/Patient/${p.id}`);
      assert.equal(b.total, 2, "total counts matches only");
    }
    const none = await search(ctx, `Observation?${tagQ(u)}`);
    assert.equal(none.entry.length, 2);
  },
);

backendTest(
  "ImagingStudy?_revinclude=DiagnosticReport:imaging-study returns the study's reports",
  async (ctx) => {
    const u = uniq();
    const p = await create(ctx, { resourceType: "Patient" });
    const s = await create(ctx, {
      resourceType: "ImagingStudy",
      meta: tagged(u),
      status: "available",
      subject: { reference: `Patient/${p.id}` },
    });
    const other = await create(ctx, {
      resourceType: "ImagingStudy",
      status: "available",
      subject: { reference: `Patient/${p.id}` },
    });
    const rep = (study: string) =>
      create(ctx, {
        resourceType: "DiagnosticReport",
        status: "final",
        code: { text: "r" },
        imagingStudy: [{ reference: `ImagingStudy/${study}` }],
      });
    const r1 = await rep(s.id);
    const r2 = await rep(s.id);
    await rep(other.id);
    const b = await search(
      ctx,
      `ImagingStudy?${tagQ(u)}&_revinclude=DiagnosticReport:imaging-study`,
    );
    assert.deepEqual(matchIds(b), [s.id]);
    const incl = b.entry.filter((e: any) => e.search?.mode === "include");
    assert.deepEqual(incl.map((e: any) => e.resource.id).sort(), sorted([r1.id, r2.id]));
    for (const e of incl) assert.equal(e.resource.resourceType, "DiagnosticReport");
    const b2 = await search(
      ctx,
      `ImagingStudy?_id=${s.id}&_revinclude=DiagnosticReport:imaging-study`,
    );
    assert.equal(b2.entry.length, 3);
  },
);

backendTest("_revinclude=Observation:subject on Patient", async (ctx) => {
  const u = uniq();
  const p = await create(ctx, { resourceType: "Patient", meta: tagged(u) });
  const o = await create(ctx, {
    resourceType: "Observation",
    status: "final",
    code: { text: "x" },
    subject: { reference: `Patient/${p.id}` },
  });
  const b = await search(ctx, `Patient?${tagQ(u)}&_revinclude=Observation:subject`);
  assert.deepEqual(matchIds(b), [p.id]);
  assert.deepEqual(
    b.entry.filter((e: any) => e.search?.mode === "include").map((e: any) => e.resource.id),
    [o.id],
  );
});

backendTest("_include:iterate follows includes of included resources", async (ctx) => {
  const u = uniq();
  const p = await create(ctx, { resourceType: "Patient" });
  const o = await create(ctx, {
    resourceType: "Observation",
    status: "final",
    code: { text: "x" },
    subject: { reference: `Patient/${p.id}` },
  });
  const dr = await create(ctx, {
    resourceType: "DiagnosticReport",
    meta: tagged(u),
    status: "final",
    code: { text: "r" },
    result: [{ reference: `Observation/${o.id}` }],
  });
  const base = `DiagnosticReport?${tagQ(u)}&_include=DiagnosticReport:result`;
  const once = await search(ctx, base);
  const ids = (b: any) =>
    b.entry.filter((e: any) => e.search?.mode === "include").map((e: any) => e.resource.id).sort();
  assert.deepEqual(matchIds(once), [dr.id]);
  assert.deepEqual(ids(once), [o.id]);
  const it = await search(ctx, `${base}&_include:iterate=Observation:subject`);
  assert.deepEqual(matchIds(it), [dr.id]);
  assert.deepEqual(ids(it), sorted([o.id, p.id]));
});

backendTest("_lastUpdated filters by modification instant", async (ctx) => {
  const u = uniq();
  const a = await create(ctx, { resourceType: "Patient", meta: tagged(u) });
  await new Promise((r) => setTimeout(r, 20));
  const b = await create(ctx, { resourceType: "Patient", meta: tagged(u) });
  const enc = encodeURIComponent;
  const t = b.meta.lastUpdated;
  assert.deepEqual(await searchIds(ctx, `Patient?${tagQ(u)}&_lastUpdated=ge${enc(t)}`), [b.id]);
  assert.deepEqual(await searchIds(ctx, `Patient?${tagQ(u)}&_lastUpdated=lt${enc(t)}`), [a.id]);
  const year = t.slice(0, 4);
  assert.deepEqual(
    await searchIds(ctx, `Patient?${tagQ(u)}&_lastUpdated=${year}`),
    sorted([a.id, b.id]),
  );
  assert.deepEqual(await searchIds(ctx, `Patient?${tagQ(u)}&_lastUpdated=lt2000`), []);
});

backendTest("POST Type/_search with a form-encoded body searches like GET", async (ctx) => {
  const u = uniq();
  const [a] = await patients(ctx, u, 2, (i) => ({ gender: i === 0 ? "female" : "male" }));
  const res = await ctx.fetch("Patient/_search", {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      accept: "application/fhir+json",
    },
    body: new URLSearchParams({ _tag: `urn:test:tag|${u}`, gender: "female" }).toString(),
  });
  assert.equal(res.status, 200);
  const b = await res.json();
  assert.equal(b.type, "searchset");
  assert.deepEqual(matchIds(b), [a.id]);
  assert.ok(link(b, "self"));
});

backendTest("GET Type with no parameters lists resources of that type only", async (ctx) => {
  const b = await search(ctx, "Endpoint?_count=5");
  for (const e of b.entry ?? []) assert.equal(e.resource.resourceType, "Endpoint");
});
