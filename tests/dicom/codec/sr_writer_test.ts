/**
 * @module The TID 1500 Measurement Report writer (dicom/codec/sr_writer.ts): the file passes
 * dicom3tools' `dciodvfy` without an error, DCMTK's `dsrdump` reads its content tree, pydicom reads
 * the measurement groups back with their codes, values and references, and bad input is refused.
 */
import assert from "node:assert/strict";
import { assertNoDciodvfyError, available, run, withFile } from "./_dicom_tools.ts";
import { CODES, SEGMENTATION_STORAGE, uidFrom } from "../../../dicom/codec/seg_writer.ts";
import { dataSetOffset } from "../../../dicom/codec/part10.ts";
import {
  COMPREHENSIVE_3D_SR_STORAGE,
  SR_CODES,
  type SrInput,
  writeMeasurementReport,
} from "../../../dicom/codec/sr_writer.ts";

const CT = "1.2.840.10008.5.1.4.1.1.2";
const slices = Array.from({ length: 10 }, (_, i) => uidFrom(`test:ct:${i}`));

function input(overrides: Partial<SrInput> = {}): SrInput {
  return {
    source: {
      patientStudy: {
        PatientName: "SYNTH^ALICE",
        PatientID: "SYN0000001",
        PatientBirthDate: "19600101",
        PatientSex: "F",
        StudyDate: "20261206",
        StudyTime: "120000",
        ReferringPhysicianName: "",
        StudyID: "1",
        AccessionNumber: "A1",
      },
      studyInstanceUid: uidFrom("test:study"),
      seriesInstanceUid: uidFrom("test:ct-series"),
      sopClassUid: CT,
    },
    segmentation: {
      seriesInstanceUid: uidFrom("test:seg-series"),
      sopInstanceUid: uidFrom("test:seg"),
    },
    findings: [
      {
        trackingId: "finding-1",
        trackingUid: uidFrom("test:finding:1"),
        finding: CODES.nodule,
        site: CODES.lung,
        longAxisMm: 8.25,
        diameterMm: 9.1,
        volumeMm3: 214.3,
        probability: 0.87,
        segmentNumber: 1,
        sourceSopInstanceUids: slices.slice(2, 5),
      },
      {
        trackingId: "finding-2",
        trackingUid: uidFrom("test:finding:2"),
        finding: CODES.mass,
        site: CODES.lung,
        diameterMm: 43.2,
        volumeMm3: 30120,
        segmentNumber: 2,
        sourceSopInstanceUids: slices.slice(4, 9),
      },
    ],
    device: {
      name: "lung-nodule-demo",
      version: "2.1.0",
      manufacturer: "imaging-ai",
      modelName: "lung-nodule-demo",
      uid: uidFrom("model:lung-nodule-demo@2.1.0"),
    },
    conclusion: "One lung nodule of 8 mm and a lung mass of 42 mm.",
    seriesInstanceUid: uidFrom("test:sr-series"),
    sopInstanceUid: uidFrom("test:sr"),
    seriesNumber: 902,
    seriesDescription: "AI lung nodules (SR)",
    created: new Date("2026-12-06T12:00:00Z"),
    ...overrides,
  };
}

Deno.test("the Measurement Report passes dciodvfy with no error", async () => {
  if (!await available("dciodvfy")) return;
  const { out } = await withFile(
    writeMeasurementReport(input()),
    (p) => run("dciodvfy", ["-new", p]),
  );
  assert.deepEqual(out.split("\n").filter((l) => /^Error/.test(l)), [], out);
  assert.match(out, /Comprehensive3DSR/);
});

Deno.test("DCMTK's dsrdump reads the content tree: template, groups, measurements", async () => {
  if (!await available("dsrdump")) return;
  const { code, out } = await withFile(
    writeMeasurementReport(input()),
    (p) => run("dsrdump", ["+Pc", "+Pt", "+Pl", p]),
  );
  assert.equal(code, 0, out);
  assert.doesNotMatch(out, /error/i, out);
  assert.match(out, /\(126000,DCM,"Imaging Measurement Report"\)/);
  assert.match(out, /TID 1500 \(DCMR\)/);
  assert.equal(
    out.match(/<contains CONTAINER:\(125007,DCM,"Measurement Group"\)=SEPARATE>/g)?.length,
    2,
    out,
  );
  assert.match(out, /\(103339001,SCT,"Long Axis"\)="8.25" \(mm,UCUM,"millimeter"\)/);
  assert.match(out, /\(81827009,SCT,"Diameter"\)="9.1" \(mm,UCUM,"millimeter"\)/);
  assert.match(out, /\(121401,DCM,"Derivation"\)=\(56851009,SCT,"Maximum"\)/);
  assert.equal(out.match(/"Long Axis"/g)?.length, 1, "no long axis where none was measured");
  assert.match(out, /\(118565006,SCT,"Volume"\)="30120" \(mm3,UCUM,"cubic millimeter"\)/);
});

Deno.test("pydicom reads the groups back with codes, values and the referenced segments", async () => {
  if (!await available("/usr/bin/python3")) return;
  const script = `
import json, sys, warnings, pydicom
warnings.simplefilter('ignore')
ds = pydicom.dcmread(sys.argv[1])
def find(items, value):
    return [i for i in items if i.ConceptNameCodeSequence[0].CodeValue == value]
meas = find(ds.ContentSequence, "126010")[0]
groups = []
for g in meas.ContentSequence:
    out = {}
    for i in g.ContentSequence:
        k = i.ConceptNameCodeSequence[0].CodeValue
        if i.ValueType == "NUM": out[k] = float(i.MeasuredValueSequence[0].NumericValue)
        elif i.ValueType == "CODE": out[k] = i.ConceptCodeSequence[0].CodeValue
        elif i.ValueType == "TEXT": out[k] = i.TextValue
        elif i.ValueType == "UIDREF": out[k] = i.UID
        elif i.ValueType == "IMAGE":
            r = i.ReferencedSOPSequence[0]
            out[k] = [r.ReferencedSOPClassUID, r.ReferencedSOPInstanceUID, int(r.ReferencedSegmentNumber)]
    groups.append(out)
qual = find(ds.ContentSequence, "C0034375")[0].ContentSequence[0].TextValue
lib = find(ds.ContentSequence, "111028")[0].ContentSequence[0].ContentSequence
print(json.dumps({"sopClass": ds.SOPClassUID, "template": ds.ContentTemplateSequence[0].TemplateIdentifier,
  "groups": groups, "conclusion": qual, "library": len(lib)}))
`;
  const { code, out } = await withFile(
    writeMeasurementReport(input()),
    (p) => run("/usr/bin/python3", ["-c", script, p]),
  );
  assert.equal(code, 0, out);
  const r = JSON.parse(out);
  assert.equal(r.sopClass, COMPREHENSIVE_3D_SR_STORAGE);
  assert.equal(r.template, "1500");
  assert.equal(r.conclusion, input().conclusion);
  assert.equal(r.library, 7, "the source images the findings lie on, each once");
  const seg = input().segmentation!.sopInstanceUid;
  assert.deepEqual(r.groups[0], {
    "112039": "finding-1",
    "112040": uidFrom("test:finding:1"),
    "121071": "27925004",
    "363698007": "39607008",
    "121191": [SEGMENTATION_STORAGE, seg, 1],
    "121232": uidFrom("test:ct-series"),
    "103339001": 8.25,
    "81827009": 9.1,
    "118565006": 214.3,
    [SR_CODES.probability.value]: 0.87,
  });
  assert.equal(r.groups[1]["121071"], "4147007");
  assert.equal(r.groups[1][SR_CODES.probability.value], undefined, "no probability: none written");
});

Deno.test("bad findings are refused; the same input gives the same bytes", async () => {
  assert.deepEqual(writeMeasurementReport(input()), writeMeasurementReport(input()));
  // No finding: a report that says so, without an Image Library (an empty group is not allowed).
  const empty = writeMeasurementReport(
    input({ findings: [], segmentation: undefined, conclusion: "No lung nodule." }),
  );
  if (await available("dciodvfy")) {
    const { out } = await withFile(empty, (p) => run("dciodvfy", ["-new", p]));
    assert.deepEqual(out.split("\n").filter((l) => /^Error/.test(l)), [], out);
  }
  const f = input().findings[0];
  assert.throws(
    () => writeMeasurementReport(input({ findings: [{ ...f, sourceSopInstanceUids: [] }] })),
    /lies on no source image/,
  );
  assert.throws(
    () => writeMeasurementReport(input({ findings: [{ ...f, volumeMm3: NaN }] })),
    /is no measure/,
  );
  assert.throws(
    () => writeMeasurementReport(input({ segmentation: undefined })),
    /need the Segmentation/,
  );
});

Deno.test("a report that supersedes earlier ones names them as its predecessors, and stays valid", async () => {
  const earlier = [
    { studyInstanceUid: uidFrom("test:study"), seriesInstanceUid: uidFrom("old:1"), sop: "1" },
    { studyInstanceUid: uidFrom("test:study"), seriesInstanceUid: uidFrom("old:1"), sop: "2" },
    { studyInstanceUid: uidFrom("test:study"), seriesInstanceUid: uidFrom("old:2"), sop: "3" },
  ].map((e) => ({ ...e, sopInstanceUid: uidFrom(`old:sr:${e.sop}`) }));
  const bytes = writeMeasurementReport(input({ predecessors: earlier }));
  await assertNoDciodvfyError(bytes, "the SR with predecessors");
  if (!await available("/usr/bin/python3")) return;
  const script = `
import json, sys, pydicom
ds = pydicom.dcmread(sys.argv[1])
print(json.dumps([[st.StudyInstanceUID, [[se.SeriesInstanceUID, [r.ReferencedSOPInstanceUID
  for r in se.ReferencedSOPSequence]] for se in st.ReferencedSeriesSequence]]
  for st in ds.PredecessorDocumentsSequence]))
`;
  const { code, out } = await withFile(bytes, (p) => run("/usr/bin/python3", ["-c", script, p]));
  assert.equal(code, 0, out);
  assert.deepEqual(JSON.parse(out), [[uidFrom("test:study"), [
    [uidFrom("old:1"), [earlier[0].sopInstanceUid, earlier[1].sopInstanceUid]],
    [uidFrom("old:2"), [earlier[2].sopInstanceUid]],
  ]]]);
});

Deno.test("dataSetOffset() finds the data set after the File Meta, with or without the preamble", () => {
  const file = writeMeasurementReport(input());
  const at = dataSetOffset(file);
  // The data set starts with group 0008 (Specific Character Set or the like), little endian.
  assert.equal(new DataView(file.buffer, file.byteOffset).getUint16(at, true), 0x0008);
  const bare = file.subarray(128); // "DICM" at 0
  assert.equal(dataSetOffset(bare), at - 128);
  assert.throws(() => dataSetOffset(new Uint8Array(200)), /Not a Part 10 file/);
});
