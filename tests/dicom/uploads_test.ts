/**
 * Uploads for people and scripts: a ZIP of DICOM files (folders inside, non-DICOM entries
 * reported and skipped), a NIfTI volume for a Patient, and WADO-RS rendered images.
 */
import assert from "node:assert/strict";
import { zipSync } from "fflate";
import { encode as encodePng } from "fast-png";
import { decode as decodePng } from "fast-png";
import { generateStudy } from "../../dicom/synth/ct.ts";
import { backendTest, fhirJson, type TestContext } from "../_harness.ts";

const FILES = "/usr/lib/python3/dist-packages/pydicom/data/test_files";
const read = (name: string) => Deno.readFileSync(`${FILES}/${name}`);

async function postZip(ctx: TestContext, zip: Uint8Array) {
  const res = await fetch(`${ctx.origin}/dicomweb/studies`, {
    method: "POST",
    headers: { "content-type": "application/zip", accept: "application/dicom+json" },
    body: zip as Uint8Array<ArrayBuffer>,
  });
  return { status: res.status, warning: res.headers.get("warning") ?? "", body: await res.json() };
}

backendTest(
  "ZIP upload stores the DICOM files in folders and reports what it skipped",
  async (ctx) => {
    const study = generateStudy({ seed: 901, slices: 3, rows: 32, cols: 32, lesions: 0 });
    const zip = zipSync({
      "export/": {},
      "export/series1/IM0001": study.instances[0],
      "export/series1/IM0002": study.instances[1],
      "export/series1/IM0003": study.instances[2],
      "export/other/ct.dcm": read("CT_small.dcm"),
      "export/DICOMDIR": new Uint8Array(200),
      "export/readme.txt": new TextEncoder().encode("not an image"),
      "export/broken.dcm": read("MR_truncated.dcm"),
    });
    const { status, warning, body } = await postZip(ctx, zip);
    assert.equal(status, 202, "one entry fails, the rest is stored");
    assert.equal(body["00081199"].Value.length, 4);
    assert.equal(body["00081198"].Value.length, 1);
    assert.equal(body["00081198"].Value[0]["00081197"].Value[0], 0xc000);
    assert.match(warning, /export\/readme\.txt: skipped, not a DICOM Part 10 file/);
    assert.match(warning, /export\/DICOMDIR: skipped/);
    assert.match(warning, /export\/broken\.dcm: Cannot parse/);
    const uid = study.plan.study.studyInstanceUid;
    const qido = await (await fetch(`${ctx.origin}/dicomweb/studies?StudyInstanceUID=${uid}`))
      .json();
    assert.equal(qido[0]["00201208"].Value[0], 3);
  },
);

backendTest(
  "ZIP upload: not a ZIP, or no DICOM inside, is a 400 with an OperationOutcome",
  async (ctx) => {
    const notZip = await fetch(`${ctx.origin}/dicomweb/studies`, {
      method: "POST",
      headers: { "content-type": "application/zip" },
      body: "hello, this is not a zip archive",
    });
    assert.equal(notZip.status, 400);
    assert.equal((await notZip.json()).resourceType, "OperationOutcome");
    const empty = await postZip(ctx, zipSync({ "a.txt": new Uint8Array([1, 2, 3]) }));
    assert.equal(empty.status, 400);
    assert.match(empty.body.issue[0].diagnostics, /no DICOM files/);
    const full = zipSync({ "ct.dcm": read("CT_small.dcm") });
    const truncated = await postZip(ctx, full.subarray(0, full.length - 30));
    assert.ok(truncated.status < 500, `truncated zip gave ${truncated.status}`);
  },
);

/** A NIfTI-1 file: int16 voxels counting up, 0.8×0.8×2.5 mm. */
function nifti(dims: [number, number, number], truncateTo?: number): Uint8Array<ArrayBuffer> {
  const voxels = dims[0] * dims[1] * dims[2];
  const bytes = new Uint8Array(352 + voxels * 2);
  const v = new DataView(bytes.buffer);
  v.setInt32(0, 348, true);
  [3, ...dims, 1, 1, 1, 1].forEach((d, i) => v.setInt16(40 + i * 2, d, true));
  v.setInt16(70, 4, true);
  v.setInt16(72, 16, true);
  [1, 0.8, 0.8, 2.5, 1, 1, 1, 1].forEach((p, i) => v.setFloat32(76 + i * 4, p, true));
  v.setFloat32(108, 352, true);
  v.setFloat32(112, 1, true);
  bytes[123] = 2; // mm
  bytes.set(new TextEncoder().encode("n+1\0"), 344);
  for (let i = 0; i < voxels; i++) v.setInt16(352 + i * 2, i % 1000, true);
  return truncateTo ? bytes.slice(0, truncateTo) : bytes;
}

backendTest(
  "NIfTI upload is kept as sent and described by an ImagingStudy and a DocumentReference",
  async (ctx) => {
    const patient = await fhirJson(ctx, "POST", "Patient", {
      resourceType: "Patient",
      name: [{ family: "Volume" }],
    });
    const file = nifti([16, 12, 6]);
    const res = await fetch(
      `${ctx.origin}/uploads/nifti?patient=Patient/${patient.body.id}&modality=mr&filename=brain.nii`,
      { method: "POST", body: file },
    );
    assert.equal(res.status, 201);
    const bundle = await res.json();
    const [study, doc] = bundle.entry.map((e: { resource: unknown }) => e.resource);
    assert.equal(study.resourceType, "ImagingStudy");
    assert.equal(study.subject.reference, `Patient/${patient.body.id}`);
    assert.equal(study.modality[0].code, "MR");
    assert.equal(study.modality[0].system, "http://dicom.nema.org/resources/ontology/DCM");
    assert.match(study.identifier[0].value, /^urn:oid:2\.25\.\d+$/);
    assert.match(
      study.series[0].description,
      /NIfTI-1 volume 16×12×6 int16, voxel 0\.80×0\.80×2\.50 mm/,
    );
    assert.equal(doc.resourceType, "DocumentReference");
    assert.equal(doc.context.related[0].reference, `ImagingStudy/${study.id}`);
    const attachment = doc.content[0].attachment;
    assert.equal(attachment.size, file.length);
    assert.equal(attachment.title, "brain.nii");
    const sha1 = new Uint8Array(await crypto.subtle.digest("SHA-1", file));
    assert.equal(attachment.hash, btoa(String.fromCharCode(...sha1)));
    // The attachment URL gives back the exact bytes.
    const download = await fetch(`${ctx.origin}${new URL(attachment.url).pathname}`);
    assert.equal(download.status, 200);
    assert.deepEqual(new Uint8Array(await download.arrayBuffer()), file);
    // Findable through FHIR by patient.
    const found = await fhirJson(
      ctx,
      "GET",
      `DocumentReference?subject=Patient/${patient.body.id}`,
    );
    assert.equal(found.body.total, 1);
  },
);

backendTest(
  "NIfTI upload refuses a truncated or foreign file and an unknown patient, storing nothing",
  async (ctx) => {
    const patient = await fhirJson(ctx, "POST", "Patient", { resourceType: "Patient" });
    const before = [];
    for await (const o of ctx.services.store.list("nifti/")) before.push(o.key);
    const post = (body: Uint8Array, p = `Patient/${patient.body.id}`) =>
      fetch(`${ctx.origin}/uploads/nifti?patient=${p}`, {
        method: "POST",
        body: body as Uint8Array<ArrayBuffer>,
      });
    const truncated = await post(nifti([16, 12, 6], 1000));
    assert.equal(truncated.status, 400);
    assert.match((await truncated.json()).issue[0].diagnostics, /Truncated/);
    const foreign = await post(read("CT_small.dcm"));
    assert.equal(foreign.status, 400);
    await foreign.body?.cancel();
    const unknown = await post(nifti([4, 4, 4]), "Patient/does-not-exist");
    assert.equal(unknown.status, 404);
    await unknown.body?.cancel();
    const after = [];
    for await (const o of ctx.services.store.list("nifti/")) after.push(o.key);
    assert.deepEqual(after.sort(), before.sort());
  },
);

backendTest(
  "rendered: PNG and JPEG of a CT slice, windowed as asked, sized to the viewport",
  async (ctx) => {
    const study = generateStudy({ seed: 902, slices: 1, rows: 64, cols: 64, lesions: 0 });
    const body = study.instances[0];
    const stored = await fetch(`${ctx.origin}/dicomweb/studies`, {
      method: "POST",
      headers: { "content-type": "application/dicom" },
      body: body as Uint8Array<ArrayBuffer>,
    });
    assert.equal(stored.status, 200);
    await stored.body?.cancel();
    const s = study.plan.study;
    const url =
      `${ctx.origin}/dicomweb/studies/${s.studyInstanceUid}/series/${s.seriesInstanceUid}/instances/${
        study.plan.sopInstanceUids[0]
      }`;
    const png = await fetch(`${url}/rendered?window=-600,1500`, {
      headers: { accept: "image/png" },
    });
    assert.equal(png.status, 200);
    assert.equal(png.headers.get("content-type"), "image/png");
    const image = decodePng(new Uint8Array(await png.arrayBuffer()));
    assert.equal(image.width, 64);
    assert.equal(image.height, 64);
    // Air (-1000 HU ± noise) in a lung window (-600/1500): ((-1000 + 600.5) / 1499 + 0.5) × 255 ≈ 60.
    assert.ok(Math.abs(image.data[0] - 60) <= 12, `air renders as ${image.data[0]}`);
    // In a soft-tissue window (40/400) the same air is black.
    const narrow = await fetch(`${url}/rendered?window=40,400&viewport=32,32`, {
      headers: { accept: "image/png" },
    });
    const small = decodePng(new Uint8Array(await narrow.arrayBuffer()));
    assert.equal(small.width, 32);
    assert.equal(small.data[0], 0);
    const jpeg = await fetch(`${url}/frames/1/rendered`);
    assert.equal(jpeg.headers.get("content-type"), "image/jpeg");
    const bytes = new Uint8Array(await jpeg.arrayBuffer());
    assert.deepEqual([...bytes.subarray(0, 2)], [0xff, 0xd8]);
    const bad = await fetch(`${url}/rendered?window=abc`);
    assert.equal(bad.status, 400);
    await bad.body?.cancel();
    const notImage = await fetch(`${url}/rendered`, { headers: { accept: "application/pdf" } });
    assert.equal(notImage.status, 406);
    await notImage.body?.cancel();
    // fast-png's encoder is what the server uses; this guards the import in this test file.
    assert.ok(
      encodePng({ width: 1, height: 1, data: new Uint8Array([0]), channels: 1 }).length > 0,
    );
  },
);
