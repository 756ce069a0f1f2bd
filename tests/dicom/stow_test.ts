// deno-lint-ignore-file no-explicit-any
/**
 * @module STOW-RS black-box tests: every pydicom test file stored or refused with a reason, the
 * PS3.18 store response and its status codes, dedupe and the duplicate policies, 16 concurrent
 * senders of one study, request limits and media types, and the study-stable event.
 */
import assert from "node:assert/strict";
import { parseInstance } from "../../dicom/codec/parse.ts";
import { generateStudy } from "../../dicom/synth/ct.ts";
import { backendTest, fhirJson, type TestContext } from "../_harness.ts";
import {
  assertSameBytes,
  assertStoreResponse,
  makeInstance,
  multipartBody,
  newUid,
  ownService,
  pydicom,
  pydicomFiles,
  stow,
  value,
} from "./_dicomweb_util.ts";

/** Files that are not storable DICOM: not Part 10, broken, or without their UIDs. */
const NOT_STORABLE = new Set([
  "ExplVR_BigEndNoMeta.dcm", // no preamble or meta header
  "ExplVR_LitEndNoMeta.dcm",
  "MR_truncated.dcm", // pixel data cut short
  "README.txt",
  "SC_rgb_jpeg.dcm", // meta says explicit VR, the data set is implicit VR
  "UN_sequence.dcm", // no Study/Series/SOP Instance UIDs
  "empty_charset_LEI.dcm",
  "meta_missing_tsyntax.dcm",
  "nested_priv_SQ.dcm",
  "no_meta.dcm",
  "no_meta_group_length.dcm",
  "priv_SQ.dcm",
  "rtplan.dump",
  "rtplan_truncated.dcm",
  "rtstruct.dcm", // no preamble
  "rtstruct.dump",
  "test1.json",
  "test_PN.json",
  "zipMR.gz",
]);

const instanceUrl = (ctx: TestContext, item: any) =>
  value(item, "00081190").replace(/^.*\/dicomweb/, `${ctx.origin}/dicomweb`);

async function retrieveOne(url: string): Promise<Uint8Array> {
  const res = await fetch(url, { headers: { accept: "application/dicom" } });
  assert.equal(res.status, 200, `GET ${url}`);
  return new Uint8Array(await res.arrayBuffer());
}

async function countInstances(ctx: TestContext, studyUid: string): Promise<number> {
  const [row] = await ctx.services.db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM dicom_instance WHERE study_uid = $1`,
    [studyUid],
  );
  return row.n;
}

/**
 * The objects the store holds for a study, less those in `before` (the S3 bucket outlives the
 * test schemas, and synthetic studies have the same UIDs on every run).
 */
async function objectsOf(
  ctx: TestContext,
  studyUid: string,
  before: string[] = [],
): Promise<string[]> {
  const keys: string[] = [];
  for await (const o of ctx.services.store.list(`dicom/${studyUid}/`)) {
    if (!before.includes(o.key)) keys.push(o.key);
  }
  return keys;
}

async function imagingStudies(ctx: TestContext, studyUid: string): Promise<any[]> {
  const q = encodeURIComponent(`urn:dicom:uid|urn:oid:${studyUid}`);
  const res = await fhirJson(ctx, "GET", `ImagingStudy?identifier=${q}`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return (res.body.entry ?? []).map((e: any) => e.resource);
}

backendTest(
  "STOW-RS of every pydicom test file: stored or refused with a reason, never a 5xx",
  async (ctx) => {
    const storedFrom = new Map<string, string>(); // SOP Instance UID → file
    const same = (a: string, b: string) => {
      const [x, y] = [pydicom(a), pydicom(b)];
      return x.length === y.length && x.every((v, i) => v === y[i]);
    };
    for (const name of pydicomFiles()) {
      const bytes = pydicom(name);
      const res = await stow(ctx, [bytes]);
      assert.ok(res.status < 500, `${name}: ${res.status} ${JSON.stringify(res.body)}`);
      assert.equal(res.headers.get("content-type"), "application/dicom+json", name);
      const { referenced, failed } = assertStoreResponse(res.body);
      assert.equal(referenced.length + failed.length, 1, `${name}: one item per part`);
      if (NOT_STORABLE.has(name)) {
        assert.equal(res.status, 409, `${name}: ${JSON.stringify(res.body)}`);
        assert.equal(value(failed[0], "00081197"), 0xc000, name);
        assert.ok(res.headers.get("warning"), `${name}: the reason is in a Warning header`);
        continue;
      }
      if (failed.length) {
        // Only a SOP Instance UID that an earlier file (with other bytes) stored may be refused.
        const sop = value(failed[0], "00081155");
        assert.equal(value(failed[0], "00081197"), 0x0111, `${name}: ${JSON.stringify(res.body)}`);
        assert.ok(storedFrom.has(sop), `${name}: refused as a duplicate of nothing stored`);
        assert.equal(res.status, 409);
        continue;
      }
      assert.ok(res.status === 200 || res.status === 202, `${name}: ${res.status}`);
      if (res.status === 202) assert.ok(referenced[0]["00081196"], `${name}: 202 names a warning`);
      const sop = value(referenced[0], "00081155");
      const earlier = storedFrom.get(sop);
      // Accepted again only as the same bytes (SC_rgb_jpeg_app14_dcmd.dcm is a copy).
      assert.ok(!earlier || same(earlier, name), `${name}: ${sop} already stored from ${earlier}`);
      storedFrom.set(sop, earlier ?? name);
      assert.equal(
        value(res.body, "00081190"),
        value(referenced[0], "00081190").split("/series/")[0],
      );
      // The exact bytes come back.
      assertSameBytes(await retrieveOne(instanceUrl(ctx, referenced[0])), bytes, name);
    }
    const stored = new Set(storedFrom.values());
    for (const name of ["CT_small.dcm", "MR_small.dcm", "image_dfl.dcm", "liver_1frame.dcm"]) {
      assert.ok(stored.has(name), `${name} stored`);
    }
    assert.ok(storedFrom.size >= 30, `stored ${storedFrom.size}`);
  },
);

Deno.test("parseInstance() reads attributes encoded as explicit UN by their dictionary VR", () => {
  // rtdose_rle.dcm writes most of its attributes with VR UN (pydicom reads them all).
  const p = parseInstance(pydicom("rtdose_rle.dcm"));
  assert.equal(p.studyUid, "1.2.999.999.99.9.9999.8888");
  assert.equal(p.metadata["0020000D"].vr, "UI");
  assert.deepEqual(p.metadata["00100010"], {
    vr: "PN",
    Value: [{ Alphabetic: "Lastname^Firstname" }],
  });
  assert.deepEqual(p.metadata["00280010"], { vr: "US", Value: [10] });
  assert.equal(p.metadata["00280008"].vr, "IS");
});

backendTest(
  "STOW-RS of every pydicom file in one multipart request: one item per part, 202",
  async (ctx) => {
    const names = pydicomFiles();
    const res = await stow(ctx, names.map(pydicom));
    assert.equal(res.status, 202, JSON.stringify(res.body).slice(0, 500));
    const { referenced, failed } = assertStoreResponse(res.body);
    assert.equal(referenced.length + failed.length, names.length);
    assert.equal(failed.filter((f) => value(f, "00081197") === 0xc000).length, NOT_STORABLE.size);
    assert.ok(failed.every((f) => [0xc000, 0x0111].includes(value(f, "00081197"))));
    assert.equal(res.body["00081190"], undefined, "several studies: no study RetrieveURL");
  },
);

backendTest("STOW-RS answers 200 when every part is stored, 409 when none is", async (ctx) => {
  const study = newUid();
  const series = newUid();
  const parts = [1, 2, 3].map((n) =>
    makeInstance({ StudyInstanceUID: study, SeriesInstanceUID: series, InstanceNumber: n })
  );
  const ok = await stow(ctx, parts);
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  const { referenced, failed } = assertStoreResponse(ok.body);
  assert.equal(referenced.length, 3);
  assert.equal(failed.length, 0);
  assert.equal(ok.body["00081198"], undefined);
  assert.match(value(ok.body, "00081190"), new RegExp(`/dicomweb/studies/${study}$`));
  assert.equal(ok.headers.get("warning"), null);

  const none = await stow(ctx, [new TextEncoder().encode("not dicom"), new Uint8Array(200)]);
  assert.equal(none.status, 409);
  const items = assertStoreResponse(none.body);
  assert.equal(items.failed.length, 2);
  assert.equal(none.body["00081199"], undefined);
  assert.equal(items.failed.every((f) => value(f, "00081197") === 0xc000), true);

  const mixed = await stow(ctx, [makeInstance({ StudyInstanceUID: study }), new Uint8Array(10)]);
  assert.equal(mixed.status, 202);
  assert.deepEqual(
    [assertStoreResponse(mixed.body).referenced.length, mixed.body["00081198"].Value.length],
    [1, 1],
  );
});

backendTest(
  "a warning that quotes a non-ASCII value answers 202 (the header stays ASCII)",
  async (ctx) => {
    const bytes = makeInstance({ SpecificCharacterSet: "ISO_IR 192", SliceLocation: "ü1" });
    const res = await stow(ctx, [bytes]);
    assert.equal(res.status, 202, JSON.stringify(res.body));
    const [item] = assertStoreResponse(res.body).referenced;
    assert.equal(value(item, "00081196"), 0xb000);
    assert.match(
      res.headers.get("warning")!,
      /^299 - ".*\(0020,1041\) DS value {2}\?1 {2}is not a number/,
    );
    assertSameBytes(await retrieveOne(instanceUrl(ctx, item)), bytes);
  },
);

backendTest("STOW-RS of a single application/dicom body", async (ctx) => {
  const study = newUid();
  const bytes = makeInstance({ StudyInstanceUID: study });
  const res = await fetch(`${ctx.origin}/dicomweb/studies`, {
    method: "POST",
    headers: { "content-type": "application/dicom" },
    body: bytes,
  });
  assert.equal(res.status, 200);
  const body = await res.json();
  const [item] = assertStoreResponse(body).referenced;
  assertSameBytes(await retrieveOne(instanceUrl(ctx, item)), bytes);
  const bad = await fetch(`${ctx.origin}/dicomweb/studies`, {
    method: "POST",
    headers: { "content-type": "application/dicom" },
    body: new Uint8Array(300),
  });
  assert.equal(bad.status, 409);
  assert.equal(value((await bad.json())["00081198"].Value[0], "00081197"), 0xc000);
});

backendTest(
  "POST /studies/{study} with an instance of another study fails that part (A900)",
  async (ctx) => {
    const study = newUid();
    const mine = makeInstance({ StudyInstanceUID: study });
    const other = makeInstance();
    const res = await stow(ctx, [mine, other], study);
    assert.equal(res.status, 202, JSON.stringify(res.body));
    const { referenced, failed } = assertStoreResponse(res.body);
    assert.equal(referenced.length, 1);
    assert.equal(failed.length, 1);
    assert.equal(value(failed[0], "00081197"), 0xa900);
    const single = await fetch(`${ctx.origin}/dicomweb/studies/${study}`, {
      method: "POST",
      headers: { "content-type": "application/dicom" },
      body: makeInstance(),
    });
    assert.equal(single.status, 409);
    assert.equal(value((await single.json())["00081198"].Value[0], "00081197"), 0xa900);
    const qido = await fetch(`${ctx.origin}/dicomweb/studies?StudyInstanceUID=${study}`);
    const [found] = await qido.json();
    assert.equal(value(found, "00201208"), 1, "only the matching instance was stored");
  },
);

backendTest(
  "the same bytes again are a no-op; other bytes for a stored SOP Instance UID are refused (0111)",
  async (ctx) => {
    const { instances, study } = generateStudy({
      seed: 4101,
      slices: 3,
      rows: 64,
      cols: 64,
      lesions: 0,
    });
    const earlier = await objectsOf(ctx, study.studyInstanceUid);
    const first = await stow(ctx, instances);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const [before] = await imagingStudies(ctx, study.studyInstanceUid);
    assert.equal(before.numberOfInstances, 3);

    const again = await stow(ctx, instances);
    assert.equal(again.status, 200, "a duplicate is a success");
    assert.equal(assertStoreResponse(again.body).referenced.length, 3);
    assert.equal(await countInstances(ctx, study.studyInstanceUid), 3);
    const [after] = await imagingStudies(ctx, study.studyInstanceUid);
    assert.equal(after.numberOfInstances, 3);
    assert.equal(after.meta.versionId, before.meta.versionId, "ImagingStudy not rewritten");

    // Different bytes under a stored SOP Instance UID: one changed pixel.
    const changed = new Uint8Array(instances[1]);
    changed[changed.length - 1] ^= 0xff;
    const conflict = await stow(ctx, [changed]);
    assert.equal(conflict.status, 409, JSON.stringify(conflict.body));
    const [failed] = assertStoreResponse(conflict.body).failed;
    assert.equal(value(failed, "00081197"), 0x0111);
    const url = value(first.body["00081199"].Value[1], "00081190").replace(
      /^.*\/dicomweb/,
      `${ctx.origin}/dicomweb`,
    );
    assertSameBytes(await retrieveOne(url), instances[1], "the stored instance");
    assert.equal(await countInstances(ctx, study.studyInstanceUid), 3);
    const stored = await objectsOf(ctx, study.studyInstanceUid, earlier);
    assert.equal(stored.length, 3, "no stray object");

    // In one request: the same part twice is stored once; a different twin is refused.
    const uid = newUid();
    const ids = {
      StudyInstanceUID: uid,
      SeriesInstanceUID: `${uid}.1`,
      SOPInstanceUID: `${uid}.2`,
    };
    const a = makeInstance(ids, 1);
    const b = makeInstance(ids, 2);
    const twice = await stow(ctx, [a, a, b]);
    assert.equal(twice.status, 202);
    const items = assertStoreResponse(twice.body);
    assert.equal(items.referenced.length, 2);
    assert.equal(value(items.failed[0], "00081197"), 0x0111);
    assert.equal(await countInstances(ctx, uid), 1);
  },
);

Deno.test("DICOM_DUPLICATE_POLICY=replace: new bytes replace the old, whose object is deleted", async () => {
  const own = await ownService({ DICOM_DUPLICATE_POLICY: "replace" });
  try {
    const uids = {
      StudyInstanceUID: newUid(),
      SeriesInstanceUID: newUid(),
      SOPInstanceUID: newUid(),
    };
    const study = uids.StudyInstanceUID;
    const oldBytes = makeInstance(uids, 1);
    const newBytes = makeInstance(uids, 2);
    const post = async (bytes: Uint8Array) => {
      const { body, contentType } = multipartBody([bytes]);
      const res = await own.request("/dicomweb/studies", {
        method: "POST",
        headers: { "content-type": contentType },
        body,
      });
      return { status: res.status, body: await res.json() };
    };
    const keys = async () => {
      const out: string[] = [];
      for await (const o of own.services.store.list(`dicom/${study}/`)) out.push(o.key);
      return out;
    };
    assert.equal((await post(oldBytes)).status, 200);
    const [oldKey] = await keys();
    assert.ok(oldKey);
    const replaced = await post(newBytes);
    assert.equal(replaced.status, 200, JSON.stringify(replaced.body));
    const url = value(replaced.body["00081199"].Value[0], "00081190").replace(
      "http://dicom.test",
      "",
    );
    const res = await own.request(url, { headers: { accept: "application/dicom" } });
    assert.equal(res.status, 200);
    assertSameBytes(new Uint8Array(await res.arrayBuffer()), newBytes, "retrieved after replace");
    const now = await keys();
    assert.equal(now.length, 1, `objects ${now}`);
    assert.notEqual(now[0], oldKey);
    assert.equal(await own.services.store.get(oldKey), null);
    const [row] = await own.services.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM dicom_instance WHERE study_uid = $1`,
      [study],
    );
    assert.equal(row.n, 1);
  } finally {
    await own.close();
  }
});

backendTest(
  "16 concurrent senders of one study: one ImagingStudy, one Patient, every instance once",
  async (ctx) => {
    const { instances, study, patient } = generateStudy({
      seed: 4242,
      slices: 32,
      rows: 64,
      cols: 64,
    });
    // 16 requests of 2 slices each, and each also repeats a slice of the next request.
    const requests = Array.from({ length: 16 }, (_, i) => [
      instances[2 * i],
      instances[2 * i + 1],
      instances[(2 * i + 2) % 32],
    ]);
    const before = await objectsOf(ctx, study.studyInstanceUid);
    const results = await Promise.all(requests.map((parts) => stow(ctx, parts)));
    for (const r of results) {
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(assertStoreResponse(r.body).referenced.length, 3);
    }
    assert.equal(await countInstances(ctx, study.studyInstanceUid), 32);
    // The objects of the losers of each race were removed again: one object per instance.
    assert.equal((await objectsOf(ctx, study.studyInstanceUid, before)).length, 32);
    // The ImagingStudy trails the index while a study arrives (≤ IMAGINGSTUDY_SYNC_MS): synced.
    await ctx.services.dicom.deps.studySync.flush();
    const found = await imagingStudies(ctx, study.studyInstanceUid);
    assert.equal(found.length, 1, `ImagingStudies: ${found.map((s) => s.id)}`);
    const [is] = found;
    assert.equal(is.numberOfSeries, 1);
    assert.equal(is.numberOfInstances, 32);
    assert.equal(is.series.length, 1);
    const uids = is.series[0].instance.map((i: any) => i.uid);
    assert.equal(uids.length, 32);
    assert.equal(new Set(uids).size, 32);
    assert.equal(is.series[0].numberOfInstances, 32);
    const patients = await fhirJson(
      ctx,
      "GET",
      `Patient?identifier=${encodeURIComponent(patient.id)}`,
    );
    assert.equal(patients.body.entry?.length, 1, JSON.stringify(patients.body));
    assert.equal(is.subject.reference, `Patient/${patients.body.entry[0].resource.id}`);
    const qido = await fetch(
      `${ctx.origin}/dicomweb/studies?StudyInstanceUID=${study.studyInstanceUid}`,
    );
    const [row] = await qido.json();
    assert.equal(value(row, "00201208"), 32);
    assert.equal(value(row, "00201206"), 1);
  },
);

backendTest("STOW-RS refuses unsupported media types and a missing boundary", async (ctx) => {
  const post = (contentType: string, body: BodyInit = "x") =>
    fetch(`${ctx.origin}/dicomweb/studies`, {
      method: "POST",
      headers: { "content-type": contentType },
      body,
    });
  const cases: [string, number][] = [
    ["application/json", 415],
    ["text/plain", 415],
    ["multipart/form-data; boundary=x", 415],
    ['multipart/related; type="application/dicom+json"; boundary=x', 415],
    ['multipart/related; type="application/dicom+xml"; boundary=x', 415],
    ["not a media type", 415],
    ['multipart/related; type="application/dicom"', 400],
  ];
  for (const [type, status] of cases) {
    const res = await post(type);
    assert.equal(res.status, status, `${type}: ${res.status}`);
    const body = await res.json();
    assert.equal(body.resourceType, "OperationOutcome", type);
  }
  // A body that is not multipart at all, and one with no parts.
  const garbage = await post('multipart/related; type="application/dicom"; boundary=abc', "junk");
  assert.equal(garbage.status, 400);
  await garbage.body?.cancel();
  const empty = await post('multipart/related; type="application/dicom"; boundary=abc', "--abc--");
  assert.equal(empty.status, 400);
  await empty.body?.cancel();
});

Deno.test("STOW-RS over DICOM_MAX_REQUEST_BYTES answers 413", async () => {
  const own = await ownService({ DICOM_MAX_REQUEST_BYTES: "4096" });
  try {
    const { body, contentType } = multipartBody([makeInstance(), new Uint8Array(8000)]);
    // With a Content-Length over the limit: refused before the body is read.
    const declared = await own.request("/dicomweb/studies", {
      method: "POST",
      headers: { "content-type": contentType, "content-length": String(body.length) },
      body,
    });
    assert.equal(declared.status, 413);
    assert.equal((await declared.json()).resourceType, "OperationOutcome");
    // Streamed without a length: refused once the limit is passed.
    const streamed = await own.request("/dicomweb/studies", {
      method: "POST",
      headers: { "content-type": contentType },
      body: ReadableStream.from([body.subarray(0, 3000), body.subarray(3000)]),
    });
    assert.equal(streamed.status, 413);
    await streamed.body?.cancel();
  } finally {
    await own.close();
  }
});

backendTest(
  "onStudyStable fires once, about DICOM_STABLE_SECONDS after the last upload",
  async (ctx) => {
    const study = newUid();
    const heard: { studyUid: string; at: number }[] = [];
    const stop = ctx.services.dicom.onStudyStable((e) => {
      if (e.studyUid === study) heard.push({ studyUid: e.studyUid, at: Date.now() });
    });
    try {
      const first = makeInstance({ StudyInstanceUID: study });
      assert.equal((await stow(ctx, [first])).status, 200);
      await new Promise((r) => setTimeout(r, 600));
      const lastSent = Date.now(); // the quiet second starts after this, once it is stored
      assert.equal((await stow(ctx, [makeInstance({ StudyInstanceUID: study })])).status, 200);
      assert.equal(heard.length, 0, "the first upload's quiet second was cut short");
      await new Promise((r) => setTimeout(r, lastSent + 700 - Date.now()));
      assert.equal(heard.length, 0, "not before a quiet second");
      const deadline = Date.now() + 3000;
      while (!heard.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.equal(heard.length, 1);
      const after = heard[0].at - lastSent;
      assert.ok(after >= 990 && after < 2500, `fired ${after} ms after the last upload began`);
      // Once; and a duplicate upload (nothing new stored) starts no new quiet period.
      assert.equal((await stow(ctx, [first])).status, 200);
      await new Promise((r) => setTimeout(r, 1300));
      assert.equal(heard.length, 1, "once");
    } finally {
      stop();
    }
  },
);
