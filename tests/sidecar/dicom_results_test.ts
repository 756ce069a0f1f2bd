/**
 * @module An analysis's DICOM results (sidecar/dicom_results.ts): a SEG with one segment per
 * finding on the source grid and an SR whose groups reference those segments; the same job writes
 * the same bytes under the same UIDs (a redelivery stores nothing new), another job new series;
 * without findings there is an SR and no SEG.
 */
import assert from "node:assert/strict";
import { assertNoDciodvfyError } from "../dicom/codec/_dicom_tools.ts";
import dcmjs from "dcmjs";
import { parseManifest } from "../../sidecar/_manifest_parse.ts";
import { dicomResults, storeDicomResults } from "../../sidecar/dicom_results.ts";
import { findingSite, findingTracking } from "../../sidecar/findings_bundle.ts";
import type { Finding } from "../../sidecar/postprocess.ts";
import { createVolumeBuilder, type Volume } from "../../sidecar/volume.ts";
import type { AnalysisJob } from "../../queue/jobs.ts";

const manifest = parseManifest(
  JSON.parse(
    await Deno.readTextFile(
      new URL("./fixtures/models/threshold-demo/manifest.json", import.meta.url),
    ),
  ),
  "threshold-demo",
);

const DIMS = { x: 32, y: 24, z: 6 };
const volume: Omit<Volume, "data"> = {
  values: "modality",
  plane: { height: DIMS.y, width: DIMS.x },
  dims: DIMS,
  spacing: { x: 0.8, y: 0.8, z: 2.5 },
  origin: [-12.8, -9.6, 100],
  rowDirection: [1, 0, 0],
  columnDirection: [0, 1, 0],
  sliceStep: [0, 0, -2.5],
  positions: Array.from({ length: DIMS.z }, (_, z) => [-12.8, -9.6, 100 - 2.5 * z]),
  sopInstanceUids: Array.from({ length: DIMS.z }, (_, z) => `1.2.3.4.${z + 1}`),
  instanceNumbers: Array.from({ length: DIMS.z }, (_, z) => z + 1),
  studyInstanceUid: "1.2.3",
  seriesInstanceUid: "1.2.3.4",
  modality: "CT",
  frameOfReferenceUid: "1.2.3.9",
  sopClassUid: "1.2.840.10008.5.1.4.1.1.2",
  // As patientStudyAttributes reads them: Type 2 attributes present, empty when unknown.
  patientStudy: {
    PatientName: "TEST^ONE",
    PatientID: "P1",
    PatientBirthDate: "",
    PatientSex: "",
    StudyDate: "20261206",
    StudyTime: "101500",
    ReferringPhysicianName: "",
    StudyID: "",
    AccessionNumber: "",
  },
  warnings: [],
};

/** Finding 1 on slices 1–2, finding 2 on slice 4. */
function plane(z: number): Uint8Array | null {
  if (![1, 2, 4].includes(z)) return null;
  const p = new Uint8Array(DIMS.x * DIMS.y);
  if (z === 4) p.fill(2, 40, 46);
  else p.fill(1, 100, 110);
  return p;
}
const finding = (
  number: number,
  k: [number, number],
  x: [number, number],
  y: number,
): Finding => ({
  number,
  voxels: 10,
  volumeMm3: 16,
  centreVoxel: [0, 0, k[0]],
  centrePatient: [0, 0, 0],
  boundingBox: { min: [x[0], y, k[0]], max: [x[1], y, k[1]] },
  longestDiameterMm: 4.2,
  maxProbability: 0.9,
  meanProbability: 0.8,
});
// Pixels 100–109 of a 32-wide plane: row 3, columns 4–13; 40–45: row 1, columns 8–13.
const findings = [finding(1, [1, 2], [4, 13], 3), finding(2, [4, 4], [8, 13], 1)];
const job = (key: string) => ({
  idempotencyKey: key,
  studyInstanceUid: "1.2.3",
  enqueuedAt: "2026-12-06T10:00:00.000Z",
} as AnalysisJob);

function read(bytes: Uint8Array) {
  const dict = dcmjs.data.DicomMessage.readFile(bytes.slice().buffer);
  return dcmjs.data.DicomMetaDictionary.naturalizeDataset(dict.dict);
}

Deno.test("a SEG with one segment per finding, and an SR whose groups reference them", async () => {
  const r = dicomResults({
    job: job("a".repeat(64)),
    manifest,
    volume,
    segmentation: { findings, maskSlice: plane },
    conclusion: "Two findings.",
    created: new Date("2026-12-06T10:00:00Z"),
  });
  const seg = read(r.segmentation!.bytes);
  assert.equal(seg.StudyInstanceUID, "1.2.3");
  assert.equal(seg.SeriesInstanceUID, r.segmentation!.seriesInstanceUid);
  assert.equal(seg.SegmentSequence.length, 2);
  assert.equal(seg.NumberOfFrames, 3, "slices 1 and 2 for finding 1, slice 4 for finding 2");
  assert.equal(seg.Manufacturer, manifest.manufacturer ?? "imaging-ai (this service)");
  assert.equal(seg.PatientName[0]?.Alphabetic ?? seg.PatientName, "TEST^ONE");
  const sr = read(r.report.bytes);
  assert.equal(sr.Modality, "SR");
  const measurements = sr.ContentSequence.find(
    (i: { ConceptNameCodeSequence: { CodeValue: string }[] }) =>
      i.ConceptNameCodeSequence[0].CodeValue === "126010",
  );
  assert.ok(measurements, "Imaging Measurements");
  assert.equal(measurements.ContentSequence.length, 2);
  // The group says what the FHIR Observation says: the model's label, the lung, the tracking UID,
  // the 3D diameter (no long axis: no axial measure was made), with the same codes.
  // deno-lint-ignore no-explicit-any
  const items = new Map<string, any>(
    measurements.ContentSequence[0].ContentSequence.map((
      i: { ConceptNameCodeSequence: { CodeValue: string }[] },
    ) => [i.ConceptNameCodeSequence[0].CodeValue, i]),
  );
  const label = manifest.labels[0].code.coding!.find((c) => c.system === "http://snomed.info/sct");
  assert.equal(items.get("121071").ConceptCodeSequence[0].CodeValue, label?.code ?? "27925004");
  assert.equal(
    items.get("363698007").ConceptCodeSequence[0].CodeValue,
    findingSite(findings[0]).code,
  );
  assert.equal(items.get("112040").UID, findingTracking("a".repeat(64), 1).uid);
  assert.equal(Number(items.get("81827009").MeasuredValueSequence[0].NumericValue), 4.2);
  // The axial long axis, edge to edge on its slice (10 × 0.8 by 1 × 0.8 mm), and where it lies:
  // a polyline between the outer corners, on the slice's image (image coordinates: centres at +0.5).
  const long = items.get("103339001");
  assert.equal(Number(long.MeasuredValueSequence[0].NumericValue), 8);
  const [scoord] = [long.ContentSequence].flat();
  assert.equal(scoord.RelationshipType, "INFERRED FROM");
  assert.equal(scoord.GraphicType, "POLYLINE");
  const points = [scoord.GraphicData].flat();
  const ends = [[points[0], points[1]], [points[2], points[3]]].sort((a, b) => a[0] - b[0]);
  assert.deepEqual(ends, [[4, 3], [14, 4]]);
  const [image] = [scoord.ContentSequence].flat();
  assert.equal(image.RelationshipType, "SELECTED FROM");
  assert.equal(
    [image.ReferencedSOPSequence].flat()[0].ReferencedSOPInstanceUID,
    volume.sopInstanceUids[1],
  );
  await assertNoDciodvfyError(r.report.bytes, "the SR with its long axes drawn");
});

Deno.test("the same job gives the same bytes and UIDs; another job new ones; no finding, no SEG", () => {
  const make = (key: string, f = findings) =>
    dicomResults({
      job: job(key),
      manifest,
      volume,
      segmentation: { findings: f, maskSlice: plane },
      conclusion: "x",
      created: new Date(job(key).enqueuedAt),
    });
  const a = make("a".repeat(64)), again = make("a".repeat(64)), b = make("b".repeat(64));
  assert.deepEqual(again.segmentation!.bytes, a.segmentation!.bytes);
  assert.deepEqual(again.report.bytes, a.report.bytes);
  assert.notEqual(b.segmentation!.seriesInstanceUid, a.segmentation!.seriesInstanceUid);
  assert.notEqual(b.report.sopInstanceUid, a.report.sopInstanceUid);
  const none = make("c".repeat(64), []);
  assert.equal(none.segmentation, undefined);
  assert.equal(read(none.report.bytes).Modality, "SR");
});

const CHARSET_DIR = "/usr/lib/python3/dist-packages/pydicom/data/charset_files";
/** pydicom's test files in single-byte and UTF-8/GB18030 character sets, with their names. */
const CHARSET_FILES: [string, string][] = [
  ["chrFren.dcm", "Buc^Jérôme"],
  ["chrGerm.dcm", "Äneas^Rüdiger"],
  ["chrGreek.dcm", "Διονυσιος"],
  ["chrRuss.dcm", "Люкceмбypг"],
  ["chrHbrw.dcm", "שרון^דבורה"],
  ["chrArab.dcm", "قباني^لنزار"],
  ["chrX1.dcm", "Wang^XiaoDong=王^小東"],
  ["chrX2.dcm", "Wang^XiaoDong=王^小东"],
];

Deno.test("real headers in eight character sets: the SEG and SR are valid and carry the patient's name as written", async () => {
  const have = (() => {
    try {
      return Deno.statSync(CHARSET_DIR).isDirectory;
    } catch {
      return false;
    }
  })();
  if (!have) {
    assert.notEqual(Deno.env.get("CI"), "true", "pydicom's charset files are missing in CI");
    return;
  }
  for (const [file, name] of CHARSET_FILES) {
    const builder = createVolumeBuilder();
    builder.add(await Deno.readFile(`${CHARSET_DIR}/${file}`));
    const { data: _data, ...v } = builder.finish();
    // A trailing empty component group ("…=") is kept as written; pydicom's names leave it out.
    const bare = (pn: string) => pn.replace(/=+$/, "");
    assert.equal(bare(v.patientStudy.PatientName), name, file);
    const n = v.dims.x * v.dims.y;
    const mask = new Uint8Array(n);
    mask.fill(1, 0, 8);
    const r = dicomResults({
      job: job("d".repeat(64)),
      manifest,
      volume: v,
      segmentation: {
        findings: [finding(1, [0, 0], [0, 0], 0)],
        maskSlice: (z) => z === 0 ? mask : null,
      },
      conclusion: `One finding for ${name}.`,
      created: new Date("2026-12-06T10:00:00Z"),
    });
    for (const bytes of [r.segmentation!.bytes, r.report.bytes]) {
      await assertNoDciodvfyError(bytes, file);
      const ds = read(bytes);
      assert.equal(ds.SpecificCharacterSet, "ISO_IR 192");
      const pn = ds.PatientName[0];
      const written = typeof pn === "string"
        ? pn
        : [pn.Alphabetic, pn.Ideographic, pn.Phonetic].filter((x) => x !== undefined).join("=");
      assert.equal(bare(written), name, `${file}: ${JSON.stringify(ds.PatientName)}`);
    }
  }
});

Deno.test("storing the results: a duplicate counts as stored, a refusal files without, a 5xx throws", async () => {
  const results = dicomResults({
    job: job("e".repeat(64)),
    manifest,
    volume,
    segmentation: { findings, maskSlice: plane },
    conclusion: "Two findings.",
    created: new Date("2026-12-06T10:00:00Z"),
  });
  const answer = (status: number, body: unknown) => {
    const sent: { path: string; type: string | null }[] = [];
    const logged: string[] = [];
    const api = {
      baseUrl: "http://api",
      request(path: string, options: { headers?: Record<string, string> } = {}) {
        sent.push({ path, type: options.headers?.["Content-Type"] ?? null });
        return Promise.resolve(new Response(JSON.stringify(body), { status }));
      },
      fhir: () => Promise.reject(new Error("not used")),
    };
    const log = (level: string, message: string) => void logged.push(`${level}: ${message}`);
    return { api, log, sent, logged };
  };
  const failed = (uid: string, reason: number) => ({
    "00081155": { vr: "UI", Value: [uid] },
    "00081197": { vr: "US", Value: [reason] },
  });
  const run = (a: ReturnType<typeof answer>) =>
    storeDicomResults(a.api as never, a.log as never, job("e".repeat(64)), results);

  // Stored: both linked by their WADO-RS URLs.
  const ok = answer(200, {});
  const stored = await run(ok);
  assert.equal(ok.sent.length, 1);
  assert.match(ok.sent[0].path, /^dicomweb\/studies\/1\.2\.3$/);
  assert.match(ok.sent[0].type!, /^multipart\/related; type="application\/dicom"; boundary=/);
  assert.equal(
    stored?.report.url,
    `http://api/dicomweb/studies/1.2.3/series/${results.report.seriesInstanceUid}/instances/${results.report.sopInstanceUid}`,
  );
  assert.equal(stored?.segmentation?.size, results.segmentation!.bytes.length);
  // A redelivery: the archive holds them already (0x0111 for other bytes): still linked.
  const dup = answer(409, {
    "00081198": {
      vr: "SQ",
      Value: [failed(results.report.sopInstanceUid, 0x0111)],
    },
  });
  assert.ok(await run(dup));
  // Refused (a client without ImagingStudy create, or a bad object): filed without, and said.
  const refused = answer(403, { resourceType: "OperationOutcome" });
  assert.equal(await run(refused), undefined);
  assert.match(refused.logged.join("\n"), /^warn: the DICOM results \(SEG, SR\) were not stored/);
  const invalid = answer(409, {
    "00081198": { vr: "SQ", Value: [failed(results.report.sopInstanceUid, 0xa900)] },
  });
  assert.equal(await run(invalid), undefined);
  // The archive failing: the job is tried again.
  await assert.rejects(run(answer(503, {})), /503/);
});
