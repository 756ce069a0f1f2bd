/**
 * @module Study and series downloads as ZIP (WADO-RS with Accept: application/zip, and …/archive),
 * de-identified downloads (`deidentify=basic`, burned-in flagging) and `$deidentify` copies, on
 * every backend: the ZIP unzips (fflate and the `unzip` tool) to the stored bytes; de-identified
 * entries pass the checks of `codec/_deid_check.ts`; bad requests get clear errors; downloads are
 * audited as exports; a 300-slice study downloads with flat memory.
 */
import assert from "node:assert/strict";
import v8 from "node:v8";
import vm from "node:vm";
import { unzipSync } from "fflate";
import { parseDataSet } from "../../dicom/codec/dataset.ts";
import { generateStudy } from "../../dicom/synth/ct.ts";
import { stowInstances } from "../../dicom/synth/stow.ts";
import { backendTest, context, type TestContext } from "../_harness.ts";
import { assertNoNewDciodvfyErrors, checkPair, dumpAll, uidsOf } from "./codec/_deid_check.ts";
import { available, run, withFile } from "./codec/_dicom_tools.ts";
import { PYDICOM_DIR } from "./_dicomweb_util.ts";

const ZIP = "application/zip";
const OPTIONS = { modifiedDates: true, cleanDescriptors: true };

function get(ctx: TestContext, path: string, accept = ZIP): Promise<Response> {
  return fetch(`${ctx.origin}/dicomweb${path}`, { headers: { accept } });
}

async function unzip(res: Response): Promise<Record<string, Uint8Array>> {
  assert.equal(res.headers.get("content-type"), ZIP);
  return unzipSync(new Uint8Array(await res.arrayBuffer()));
}

/** A small synthetic CT study, stored. */
async function storeStudy(ctx: TestContext, slices = 4, size = 64) {
  const s = generateStudy({
    seed: Math.floor(Math.random() * 1e9),
    slices,
    rows: size,
    cols: size,
    lesions: 0,
  });
  const res = await stowInstances(`${ctx.origin}/dicomweb`, s.instances);
  assert.equal(res.status, 200, res.text);
  const ds = parseDataSet(s.instances[0]);
  return {
    instances: s.instances,
    study: ds.string("x0020000d")!,
    series: ds.string("x0020000e")!,
    sops: s.plan.sopInstanceUids,
    bytes: s.instances.reduce((n, b) => n + b.length, 0),
  };
}

function instanceNumber(bytes: Uint8Array): number {
  return Number(parseDataSet(bytes).string("x00200013"));
}

/** De-identified entries (sorted by Instance Number) checked against the stored originals. */
async function checkDeidentified(originals: Uint8Array[], entries: Uint8Array[], what: string) {
  const byNumber = new Map(originals.map((b) => [instanceNumber(b), b]));
  const sorted = [...entries].sort((a, b) => instanceNumber(a) - instanceNumber(b));
  const inputs = sorted.map((b) => byNumber.get(instanceNumber(b))!);
  assert.ok(inputs.every(Boolean), `${what}: an entry without its original`);
  const [before, after] = [await dumpAll(inputs), await dumpAll(sorted)];
  const uids = new Set<string>();
  for (const b of sorted) {
    const ds = parseDataSet(b);
    uids.add(`${ds.string("x0020000d")} ${ds.string("x0020000e")} ${ds.string("x00200052")}`);
  }
  assert.equal(uids.size, 1, `${what}: one study, series and frame of reference: ${[...uids]}`);
  if (!before || !after) return;
  const originalUids = uidsOf(before);
  const shifts = new Set<number | undefined>();
  for (let i = 0; i < sorted.length; i++) {
    const name = `${what} #${instanceNumber(sorted[i])}`;
    shifts.add(
      checkPair({ name, input: before[i], output: after[i], options: OPTIONS }, originalUids),
    );
  }
  assert.equal(shifts.size, 1, `${what}: one date shift for the patient`);
  assert.notEqual([...shifts][0], undefined, `${what}: no date compared`);
  await assertNoNewDciodvfyErrors(what, inputs[0], sorted[0]);
}

backendTest("ZIP download: the stored Part 10 files, by study and by series", async (ctx) => {
  const s = await storeStudy(ctx);
  for (const path of [`/studies/${s.study}`, `/studies/${s.study}/archive`]) {
    const res = await get(ctx, path);
    assert.equal(res.status, 200, path);
    assert.match(res.headers.get("content-disposition")!, new RegExp(`${s.study}\\.zip`));
    assert.equal(res.headers.get("x-archive-instances"), "4");
    const files = await unzip(res);
    assert.deepEqual(
      Object.keys(files).sort(),
      [...s.sops.map((sop) => `${s.study}/${s.series}/${sop}.dcm`), "manifest.json"].sort(),
    );
    s.sops.forEach((sop, i) => {
      assert.deepEqual(
        files[`${s.study}/${s.series}/${sop}.dcm`],
        s.instances[i],
        `${path} ${sop}`,
      );
    });
    const manifest = JSON.parse(new TextDecoder().decode(files["manifest.json"]));
    assert.equal(manifest.deidentification, null);
    assert.equal(manifest.instances.length, 4);
    assert.deepEqual(manifest.missing, []);
  }
  const series = await get(ctx, `/studies/${s.study}/series/${s.series}`, `${ZIP}, */*`);
  assert.equal(series.status, 200);
  assert.equal(Object.keys(await unzip(series)).length, 5);
  // The multipart retrieve still answers any other Accept.
  const multi = await get(
    ctx,
    `/studies/${s.study}`,
    'multipart/related; type="application/dicom"',
  );
  assert.equal(multi.status, 200);
  assert.match(multi.headers.get("content-type")!, /^multipart\/related/);
  await multi.body?.cancel();
  // Info-ZIP agrees: stored entries, CRCs right.
  if (await available("unzip")) {
    const bytes = new Uint8Array(
      await (await get(ctx, `/studies/${s.study}/archive`)).arrayBuffer(),
    );
    const test = await withFile(bytes, (p) => run("unzip", ["-t", p]));
    assert.equal(test.code, 0, test.out);
    assert.match(test.out, /No errors detected/);
    const list = await withFile(bytes, (p) => run("unzip", ["-v", p]));
    assert.equal(list.out.match(/ Stored /g)?.length, 5, list.out);
  }
  await ctx.services.audit.flush();
  const events = await ctx.services.db.query<{ subtype: string; description: string }>(
    `SELECT subtype, description FROM audit_event WHERE type_code = 'export' AND query LIKE $1`,
    [`StudyInstanceUID=${s.study}%`],
  );
  assert.ok(events.some((e) => e.subtype === "dicom-zip" && /4 instances/.test(e.description)));
});

backendTest(
  "de-identified ZIP: Basic Profile with Modified Dates and Clean Descriptors",
  async (ctx) => {
    const s = await storeStudy(ctx);
    const res = await get(ctx, `/studies/${s.study}?deidentify=basic`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-deidentification"), "basic; codes=113100,113107,113105");
    assert.equal(res.headers.get("x-burned-in-flagged"), "0");
    assert.doesNotMatch(res.headers.get("content-disposition")!, new RegExp(s.study));
    const files = await unzip(res);
    const names = Object.keys(files).filter((n) => n.endsWith(".dcm"));
    assert.equal(names.length, 4);
    for (const n of names) assert.ok(!n.includes(s.study) && !n.includes(s.series), n);
    const manifest = JSON.parse(new TextDecoder().decode(files["manifest.json"]));
    assert.deepEqual(manifest.deidentification.methodCodes.map((c: { code: string }) => c.code), [
      "113100",
      "113107",
      "113105",
    ]);
    assert.ok(!JSON.stringify(manifest).includes(s.study), "the manifest names the original study");
    await checkDeidentified(s.instances, names.map((n) => files[n]), "ZIP");
    // Another export: other UIDs (nothing links two exports).
    const again = await unzip(await get(ctx, `/studies/${s.study}/archive?deidentify=basic`));
    assert.equal(Object.keys(again).filter((n) => names.includes(n)).length, 0);
    await ctx.services.audit.flush();
    const events = await ctx.services.db.query<{ subtype: string }>(
      `SELECT subtype FROM audit_event WHERE type_code = 'export' AND query LIKE $1`,
      [`StudyInstanceUID=${s.study}%deidentify=basic`],
    );
    assert.ok(events.some((e) => e.subtype === "dicom-zip-deidentified"));
  },
);

backendTest(
  "burned-in annotation: flagged, left out unless included, never passed silently",
  async (ctx) => {
    // Ultrasound without Burned In Annotation (0028,0301), big endian.
    const us = Deno.readFileSync(`${PYDICOM_DIR}/ExplVR_BigEnd.dcm`);
    assert.equal((await stowInstances(`${ctx.origin}/dicomweb`, [us])).status, 200);
    const ds = parseDataSet(us);
    const study = ds.string("x0020000d")!, sop = ds.string("x00080018")!;
    const left = await get(ctx, `/studies/${study}/archive?deidentify=basic`);
    assert.equal(left.headers.get("x-burned-in-flagged"), "1");
    assert.equal(left.headers.get("x-burned-in-excluded"), "1");
    assert.match(
      left.headers.get("warning")!,
      new RegExp(`${sop} flagged: .*modality US.*left out`),
    );
    const leftFiles = await unzip(left);
    assert.deepEqual(Object.keys(leftFiles), ["manifest.json"]);
    const manifest = JSON.parse(new TextDecoder().decode(leftFiles["manifest.json"]));
    assert.equal(manifest.flagged.length, 1);
    assert.equal(manifest.flagged[0].included, false);
    assert.notEqual(manifest.flagged[0].sopInstanceUid, sop);
    const inc = await get(
      ctx,
      `/studies/${study}/archive?deidentify=basic&burnedInAnnotation=include`,
    );
    assert.equal(inc.headers.get("x-burned-in-excluded"), "0");
    const incFiles = await unzip(inc);
    const entries = Object.keys(incFiles).filter((n) => n.endsWith(".dcm"));
    assert.equal(entries.length, 1);
    const incManifest = JSON.parse(new TextDecoder().decode(incFiles["manifest.json"]));
    assert.equal(incManifest.flagged[0].included, true);
    const [before, after] = [await dumpAll([us]), await dumpAll([incFiles[entries[0]]])];
    if (before && after) {
      checkPair(
        { name: "US", input: before[0], output: after[0], options: OPTIONS },
        uidsOf(before),
      );
    }
    // The copy: nothing to store without the include.
    const copy = await fetch(`${ctx.origin}/dicomweb/studies/${study}/$deidentify`, {
      method: "POST",
    });
    assert.equal(copy.status, 422);
    assert.match((await copy.json()).issue[0].diagnostics, /flagged for burned-in annotation/);
  },
);

backendTest("$deidentify: a de-identified copy stored as a new study", async (ctx) => {
  const s = await storeStudy(ctx, 3);
  const res = await fetch(`${ctx.origin}/dicomweb/studies/${s.study}/$deidentify`, {
    method: "POST",
    headers: { accept: "application/json" },
  });
  assert.equal(res.status, 200);
  const report = await res.json();
  assert.match(report.studyInstanceUid, /^2\.25\.\d+$/);
  assert.equal(report.sourceStudyInstanceUid, s.study);
  assert.equal(report.stored, 3);
  assert.equal(report.instances.length, 3);
  assert.deepEqual(report.flagged, []);
  const copy = report.studyInstanceUid;
  const qido = await (await get(ctx, `/studies?StudyInstanceUID=${copy}`, "application/dicom+json"))
    .json();
  assert.equal(qido.length, 1);
  assert.match(qido[0]["00100020"].Value[0], /^ANON-[0-9A-F]{12}$/);
  assert.equal(qido[0]["00100010"]?.Value, undefined);
  const files = await unzip(await get(ctx, `/studies/${copy}/archive`));
  const dcm = Object.keys(files).filter((n) => n.startsWith(`${copy}/`));
  assert.equal(dcm.length, 3);
  await checkDeidentified(s.instances, dcm.map((n) => files[n]), "$deidentify copy");
  const second = await (await fetch(`${ctx.origin}/dicomweb/studies/${s.study}/$deidentify`, {
    method: "POST",
  })).json();
  assert.notEqual(second.studyInstanceUid, copy, "each copy is its own export");
});

backendTest("bad requests: unknown study, bad parameters, wrong Accept", async (ctx) => {
  const s = await storeStudy(ctx, 2);
  const expect = async (res: Response, status: number, pattern: RegExp) => {
    assert.equal(res.status, status, res.url);
    const body = await res.json();
    assert.equal(body.resourceType, "OperationOutcome");
    assert.match(body.issue[0].diagnostics, pattern);
  };
  await expect(await get(ctx, "/studies/1.2.3.999/archive"), 404, /not found/);
  await expect(await get(ctx, "/studies/1.2.3.999?deidentify=basic"), 404, /not found/);
  await expect(
    await get(ctx, `/studies/${s.study}/archive?deidentify=full`),
    400,
    /deidentify=full is not offered/,
  );
  await expect(
    await get(ctx, `/studies/${s.study}/archive?deidentify=basic&burnedInAnnotation=maybe`),
    400,
    /include or exclude/,
  );
  await expect(
    await get(ctx, `/studies/${s.study}/archive?burnedInAnnotation=include`),
    400,
    /deidentify=basic/,
  );
  await expect(
    await get(
      ctx,
      `/studies/${s.study}?deidentify=basic`,
      'multipart/related; type="application/dicom"',
    ),
    406,
    /application\/zip/,
  );
  await expect(
    await get(ctx, `/studies/${s.study}/archive`, "application/dicom+json"),
    406,
    /application\/zip/,
  );
  await expect(
    await fetch(`${ctx.origin}/dicomweb/studies/1.2.3.999/$deidentify`, { method: "POST" }),
    404,
    /not found/,
  );
});

/** V8's gc(), exposed at run time (the tests run without --expose-gc). */
function exposeGc(): () => void {
  v8.setFlagsFromString("--expose-gc");
  return vm.runInNewContext("gc");
}

// One backend: the stream's memory does not depend on the database; with DATABASE_URL it is
// Postgres and S3 (objects read chunk by chunk from the network), else PGlite and the folder.
const memoryBackend = Deno.env.get("DATABASE_URL") ? "postgres" : "pglite";
Deno.test({
  name: `a 300-slice study downloads with flat memory [${memoryBackend}]`,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => flatMemory(await context(memoryBackend)),
});

async function flatMemory(ctx: TestContext) {
  const s = await storeStudy(ctx, 300, 256);
  const gc = exposeGc();
  // The live set (heap and ArrayBuffers) after a collection: garbage not yet collected, which
  // RSS and an uncollected heap would count, is left out; a download that held the study in
  // memory would show it here.
  const live = () => {
    gc();
    const m = Deno.memoryUsage();
    return m.heapUsed + m.external;
  };
  const measure = async (path: string) => {
    // A first pass for the time, a second one for memory (collections slow it down).
    const started = performance.now();
    let bytes = 0;
    for await (const chunk of (await get(ctx, path)).body!) bytes += chunk.length;
    const ms = performance.now() - started;
    const base = live(), rss = Deno.memoryUsage().rss;
    let peak = base, peakRss = rss, chunks = 0;
    const res = await get(ctx, path);
    assert.equal(res.status, 200);
    for await (const _ of res.body!) {
      peakRss = Math.max(peakRss, Deno.memoryUsage().rss);
      if (++chunks % 100 === 0) peak = Math.max(peak, live());
    }
    return { growth: peak - base, rss: peakRss - rss, bytes, ms };
  };
  const mb = (n: number) => (n / 2 ** 20).toFixed(1);
  for (
    const path of [`/studies/${s.study}/archive`, `/studies/${s.study}/archive?deidentify=basic`]
  ) {
    const m = await measure(path);
    console.log(
      `${ctx.backend} ${path.split("?")[1] ?? "plain"}: ${mb(m.bytes)} MiB (study ${
        mb(s.bytes)
      } MiB) in ${m.ms.toFixed(0)} ms, ${mb(m.bytes / (m.ms / 1000))} MiB/s; live +${
        mb(m.growth)
      } MiB, RSS +${mb(m.rss)} MiB`,
    );
    assert.ok(m.bytes >= s.bytes * 0.95, `${m.bytes} bytes downloaded`);
    assert.ok(
      m.growth < s.bytes / 4,
      `live memory grew ${mb(m.growth)} MiB for a ${mb(s.bytes)} MiB study`,
    );
  }
  // The de-identified copy of the whole study, through the STOW-RS ingest.
  const started = performance.now();
  const copy = await fetch(`${ctx.origin}/dicomweb/studies/${s.study}/$deidentify`, {
    method: "POST",
  });
  assert.equal(copy.status, 200);
  const report = await copy.json();
  assert.equal(report.stored, 300);
  console.log(
    `${ctx.backend} $deidentify: 300 instances stored as ${report.studyInstanceUid} in ${
      (performance.now() - started).toFixed(0)
    } ms`,
  );
}
