// deno-lint-ignore-file no-explicit-any
/**
 * @module Orthanc as a real PACS peer: Orthanc 1.10 with its DICOMweb plugin (Debian packages,
 * started by `scripts/orthanc/start.sh` in a temporary state folder on free ports) knows this
 * service as the DICOMweb server "imaging". Orthanc pushes studies here (STOW-RS), then, after
 * deleting them, retrieves them back (WADO-RS) and searches us (QIDO-RS); every file must come back
 * byte for byte. Ignored, by name, where Orthanc is missing and apt-get cannot install it.
 */
import assert from "node:assert/strict";
import { parseMediaType, readMultipart } from "../../dicom/codec/multipart.ts";
import { generateStudy } from "../../dicom/synth/ct.ts";
import { stowInstances } from "../../dicom/synth/stow.ts";
import { backendTest, context, fhirJson, type TestContext } from "../_harness.ts";
import { analyseStudy, imagingStudyOf } from "../_analysis.ts";
import { ok, type Orthanc, orthancUnavailable, rest, startOrthanc } from "./_orthanc.ts";

const PYDICOM_DIR = "/usr/lib/python3/dist-packages/pydicom/data/test_files";
/** Real files in five transfer syntaxes: explicit VR LE, JPEG 2000, JPEG, big endian, deflate. */
const REAL_FILES = [
  "CT_small.dcm",
  "MR_small.dcm",
  "JPEG2000.dcm",
  "JPEG-lossy.dcm", // the same study as JPEG2000.dcm
  "ExplVR_BigEnd.dcm",
  "image_dfl.dcm",
];

async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** One study as uploaded to Orthanc: its files by SHA-256 (the name says which file). */
interface UploadedStudy {
  orthancId: string;
  uid: string;
  files: Map<string, string>;
  /** Orthanc's instance ids and SOPInstanceUIDs. */
  instances: { id: string; sopUid: string; seriesUid: string }[];
}

/** Uploads `files` to Orthanc (POST /instances) and groups them by Orthanc study. */
async function upload(
  orthanc: Orthanc,
  files: { name: string; bytes: Uint8Array }[],
): Promise<Map<string, UploadedStudy>> {
  const studies = new Map<string, UploadedStudy>();
  for (const { name, bytes } of files) {
    const answer = await ok(orthanc, "POST", "/instances", bytes);
    assert.equal(answer.Status, "Success", `upload of ${name}: ${JSON.stringify(answer)}`);
    const tags = await ok(orthanc, "GET", `/instances/${answer.ID}/simplified-tags`);
    let study = studies.get(answer.ParentStudy);
    if (!study) {
      study = {
        orthancId: answer.ParentStudy,
        uid: tags.StudyInstanceUID,
        files: new Map(),
        instances: [],
      };
      studies.set(answer.ParentStudy, study);
    }
    study.files.set(await sha256(bytes), name);
    study.instances.push({
      id: answer.ID,
      sopUid: tags.SOPInstanceUID,
      seriesUid: tags.SeriesInstanceUID,
    });
  }
  return studies;
}

/** The SHA-256 of every file Orthanc holds for one of its studies (none when it has no such study). */
async function orthancHashes(orthanc: Orthanc, orthancId: string): Promise<string[]> {
  const res = await rest(orthanc, "GET", `/studies/${orthancId}/instances`);
  if (res.status === 404) return [];
  assert.equal(res.status, 200, res.text);
  const hashes = [];
  for (const { ID } of res.body) {
    const file = await fetch(`${orthanc.url}/instances/${ID}/file`);
    assert.equal(file.status, 200, `GET /instances/${ID}/file`);
    hashes.push(await sha256(new Uint8Array(await file.arrayBuffer())));
  }
  return hashes.sort();
}

/** The SHA-256 of every instance this service serves for a study (WADO-RS, as stored). */
async function ourHashes(ctx: TestContext, uid: string): Promise<string[]> {
  const res = await fetch(`${ctx.origin}/dicomweb/studies/${uid}`, {
    headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' },
  });
  assert.equal(res.status, 200, `WADO-RS of study ${uid}: ${res.status}`);
  const media = parseMediaType(res.headers.get("content-type") ?? "");
  assert.equal(media.type, "multipart/related");
  const hashes = [];
  const limits = { maxPartBytes: 2 ** 28, maxTotalBytes: 2 ** 30 };
  for await (const part of readMultipart(res.body!, media.params.boundary, limits)) {
    assert.match(part.headers.get("content-type") ?? "", /^application\/dicom/);
    hashes.push(await sha256(part.body));
  }
  return hashes.sort();
}

const sorted = (study: UploadedStudy) => [...study.files.keys()].sort();
const names = (study: UploadedStudy) => [...study.files.values()].join(", ");

/** What this service must hold for `study`: QIDO count, the ImagingStudy, and the same bytes. */
async function assertWeHave(ctx: TestContext, study: UploadedStudy): Promise<void> {
  const n = study.files.size;
  const qido = await fetch(`${ctx.origin}/dicomweb/studies?StudyInstanceUID=${study.uid}`, {
    headers: { accept: "application/dicom+json" },
  });
  assert.equal(qido.status, 200);
  const found = await qido.json();
  assert.equal(found.length, 1, `QIDO for ${study.uid} (${names(study)})`);
  assert.deepEqual(found[0]["00201208"]?.Value, [n], "NumberOfStudyRelatedInstances");

  const fhir = await fhirJson(
    ctx,
    "GET",
    `ImagingStudy?identifier=${encodeURIComponent(`urn:dicom:uid|urn:oid:${study.uid}`)}`,
  );
  assert.equal(fhir.status, 200);
  assert.equal(fhir.body.total, 1, `one ImagingStudy for ${study.uid}`);
  assert.equal(fhir.body.entry[0].resource.numberOfInstances, n);

  assert.deepEqual(
    await ourHashes(ctx, study.uid),
    sorted(study),
    `WADO-RS bytes of ${names(study)}`,
  );
}

const unavailable = orthancUnavailable();
const NAME = "Orthanc pushes studies here (STOW-RS), retrieves them back (WADO-RS) and queries us";

if (unavailable) {
  Deno.test({ name: `${NAME} [skipped: ${unavailable}]`, ignore: true, fn() {} });
} else {
  backendTest(NAME, async (ctx) => {
    const orthanc = await startOrthanc(`${ctx.origin}/dicomweb`);
    try {
      await roundTrip(ctx, orthanc);
    } finally {
      await orthanc.stop();
    }
  });
}

async function roundTrip(ctx: TestContext, orthanc: Orthanc): Promise<void> {
  const servers = await ok(orthanc, "GET", "/dicom-web/servers?expand");
  assert.equal(servers.imaging?.Url, `${ctx.origin}/dicomweb/`);

  // 1. Real files and a synthetic 5-slice CT series go into Orthanc through its REST API (no
  // lesions: 5 slices of 64×64 leave no room for the default 1–3).
  const synth = generateStudy({ seed: 11, slices: 5, rows: 64, cols: 64, lesions: 0 });
  const files = [
    ...REAL_FILES.map((name) => ({ name, bytes: Deno.readFileSync(`${PYDICOM_DIR}/${name}`) })),
    ...synth.instances.map((bytes, i) => ({ name: `synth slice ${i + 1}`, bytes })),
  ];
  const studies = await upload(orthanc, files);
  const all = [...studies.values()];
  assert.equal(all.length, 6, "CT, MR, JPEG (2 files), big endian, deflate, synthetic (5 slices)");
  const ct = all.find((s) => s.uid === "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322")!;
  const synthStudy = all.find((s) => s.uid === synth.study.studyInstanceUid)!;
  assert.ok(ct && synthStudy);
  assert.equal(synthStudy.files.size, 5);

  // 2. Orthanc pushes them here: one study, then the rest in one call.
  const first = await ok(orthanc, "POST", "/dicom-web/servers/imaging/stow", {
    Resources: [ct.orthancId],
  });
  assert.equal(Number(first.InstancesCount), 1, JSON.stringify(first));
  const others = all.filter((s) => s !== ct);
  const pushed = await ok(orthanc, "POST", "/dicom-web/servers/imaging/stow", {
    Resources: others.map((s) => s.orthancId),
  });
  assert.equal(Number(pushed.InstancesCount), files.length - 1, JSON.stringify(pushed));
  for (const study of all) await assertWeHave(ctx, study);

  // A second push of identical files is a no-op here, and Orthanc reports success.
  const again = await ok(orthanc, "POST", "/dicom-web/servers/imaging/stow", {
    Resources: [synthStudy.orthancId],
  });
  assert.equal(Number(again.InstancesCount), 5);
  await assertWeHave(ctx, synthStudy);

  // 3. Orthanc forgets them, then retrieves every study back from us (WADO-RS).
  for (const study of all) await ok(orthanc, "DELETE", `/studies/${study.orthancId}`);
  assert.deepEqual(await ok(orthanc, "GET", "/studies"), []);
  const retrieved = await ok(orthanc, "POST", "/dicom-web/servers/imaging/retrieve", {
    Resources: all.map((s) => ({ Study: s.uid })),
  });
  assert.equal(Number(retrieved.ReceivedInstancesCount), files.length, JSON.stringify(retrieved));
  for (const study of all) {
    assert.deepEqual(
      await orthancHashes(orthanc, study.orthancId),
      sorted(study),
      `Orthanc's files of ${names(study)} after the retrieve`,
    );
  }

  // Series and instance level retrieves.
  await ok(orthanc, "DELETE", `/studies/${synthStudy.orthancId}`);
  const one = synthStudy.instances[2];
  const single = await ok(orthanc, "POST", "/dicom-web/servers/imaging/retrieve", {
    Resources: [{ Study: synthStudy.uid, Series: one.seriesUid, Instance: one.sopUid }],
  });
  assert.equal(Number(single.ReceivedInstancesCount), 1, JSON.stringify(single));
  const [hash] = await orthancHashes(orthanc, synthStudy.orthancId);
  assert.equal(synthStudy.files.get(hash), "synth slice 3");
  const series = await ok(orthanc, "POST", "/dicom-web/servers/imaging/retrieve", {
    Resources: [{ Study: synthStudy.uid, Series: one.seriesUid }],
  });
  assert.equal(Number(series.ReceivedInstancesCount), 5, JSON.stringify(series));
  assert.deepEqual(await orthancHashes(orthanc, synthStudy.orthancId), sorted(synthStudy));

  // 4. Orthanc queries us: its QIDO client answers in Orthanc's own JSON (`Value` a string) and
  // drops numeric values (IS as a JSON number: NumberOfStudyRelated*, which Orthanc's own server
  // also sends as numbers), so the counts are read through a raw GET.
  const qido = await ok(orthanc, "POST", "/dicom-web/servers/imaging/qido", {
    Uri: "/studies",
    Arguments: { StudyInstanceUID: synthStudy.uid },
  });
  assert.equal(qido.length, 1, JSON.stringify(qido));
  assert.equal(qido[0]["0020000D"].Value, synthStudy.uid);
  assert.equal(qido[0]["00100020"].Value, synth.patient.id);
  const listed = await ok(orthanc, "POST", "/dicom-web/servers/imaging/get", { Uri: "/studies" });
  const counts = Object.fromEntries(
    listed.map((s: any) => [s["0020000D"].Value[0], s["00201208"].Value[0]]),
  );
  assert.deepEqual(counts, Object.fromEntries(all.map((s) => [s.uid, s.files.size])));
  const metadata = await ok(orthanc, "POST", "/dicom-web/servers/imaging/get", {
    Uri: `/studies/${synthStudy.uid}/metadata`,
  });
  assert.deepEqual(
    metadata.map((m: any) => m["00080018"].Value[0]).sort(),
    synthStudy.instances.map((i) => i.sopUid).sort(),
  );
}

const AI_NAME =
  "Orthanc retrieves an analysed study from us with its AI results: the CT, the SEG and the SR";

if (unavailable) {
  Deno.test({ name: `${AI_NAME} [skipped: ${unavailable}]`, ignore: true, fn() {} });
} else {
  // One backend (Postgres and S3 where configured): what is checked is the DICOM Orthanc gets.
  const aiBackend = Deno.env.get("DATABASE_URL") ? "postgres" : "pglite";
  Deno.test({
    name: `${AI_NAME} [${aiBackend}]`,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => await retrieveAnalysed(await context(aiBackend)),
  });
}

async function retrieveAnalysed(ctx: TestContext): Promise<void> {
  // A chest CT with two lesions, stored here and analysed by the in-process worker.
  const study = generateStudy({ seed: 4212, slices: 40, rows: 256, cols: 256, lesions: 2 });
  const stowed = await stowInstances(`${ctx.origin}/dicomweb`, study.instances);
  assert.equal(stowed.stored, 40, JSON.stringify(stowed));
  const uid = study.plan.study.studyInstanceUid;
  await analyseStudy(ctx, (await imagingStudyOf(ctx, uid)).id);

  const orthanc = await startOrthanc(`${ctx.origin}/dicomweb`);
  try {
    const retrieved = await ok(orthanc, "POST", "/dicom-web/servers/imaging/retrieve", {
      Resources: [{ Study: uid }],
    });
    const studies = await ok(orthanc, "GET", "/studies?expand");
    assert.equal(studies.length, 1);
    const series = await ok(orthanc, "GET", `/studies/${studies[0].ID}/series?expand`);
    const byModality = new Map<string, any>(
      series.map((s: any) => [s.MainDicomTags.Modality, s]),
    );
    assert.deepEqual([...byModality.keys()].sort(), ["CT", "SEG", "SR"], JSON.stringify(series));
    assert.equal(Number(retrieved.ReceivedInstancesCount), 42, JSON.stringify(retrieved));
    // Orthanc reads the SEG as a multi-frame image of the model, and the SR as a document.
    const [seg] = byModality.get("SEG").Instances;
    const segTags = await ok(orthanc, "GET", `/instances/${seg}/simplified-tags`);
    assert.equal(segTags.SOPClassUID, "1.2.840.10008.5.1.4.1.1.66.4");
    assert.equal(segTags.StudyInstanceUID, uid);
    assert.equal(
      segTags.ManufacturerModelName.startsWith("Lung nodule"),
      true,
      segTags.ManufacturerModelName,
    );
    const frames = await ok(orthanc, "GET", `/instances/${seg}/frames`);
    assert.equal(frames.length, Number(segTags.NumberOfFrames));
    assert.ok(frames.length >= 2, "frames of at least two findings");
    const [sr] = byModality.get("SR").Instances;
    const srTags = await ok(orthanc, "GET", `/instances/${sr}/simplified-tags`);
    assert.equal(srTags.SOPClassUID, "1.2.840.10008.5.1.4.1.1.88.34");
    assert.equal(srTags.ContentTemplateSequence[0].TemplateIdentifier, "1500");
  } finally {
    await orthanc.stop();
  }
}
