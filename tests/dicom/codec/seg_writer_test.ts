/**
 * @module The DICOM Segmentation writer (dicom/codec/seg_writer.ts) on a synthetic CT series: two
 * spherical segments drawn on the series' own grid. The file must pass dicom3tools' `dciodvfy`
 * without an error, read back in pydicom with the same pixels, frames and references, and read
 * back in dcmjs. Inputs that do not hold together are refused.
 */
import assert from "node:assert/strict";
import { available, run, withFile } from "./_dicom_tools.ts";
import dcmjs from "dcmjs";
import {
  CODES,
  type SegInput,
  SEGMENTATION_STORAGE,
  uidFrom,
  writeSegmentation,
} from "../../../dicom/codec/seg_writer.ts";
import { CT_IMAGE_STORAGE } from "../../../dicom/synth/encode.ts";
import { planStudy } from "../../../dicom/synth/ct.ts";
import { slicePosition } from "../../../dicom/synth/geometry.ts";

const plan = planStudy({ seed: 7, slices: 24, rows: 64, cols: 64 });
const g = plan.geometry;

/** Two balls: segment 1 of radius 6 px around (20, 20, 8), segment 2 of radius 4 around (44, 40, 15). */
const BALLS = [
  { n: 1, x: 20, y: 20, z: 8, r: 6 },
  { n: 2, x: 44, y: 40, z: 15, r: 4 },
];
function label(x: number, y: number, z: number): number {
  for (const b of BALLS) {
    if ((x - b.x) ** 2 + (y - b.y) ** 2 + ((z - b.z) * 2) ** 2 <= b.r ** 2) return b.n;
  }
  return 0;
}
const planes: (Uint8Array | null)[] = Array.from({ length: g.slices }, (_, z) => {
  const p = new Uint8Array(g.rows * g.cols);
  for (let y = 0; y < g.rows; y++) {
    for (let x = 0; x < g.cols; x++) p[y * g.cols + x] = label(x, y, z);
  }
  return p.some((v) => v) ? p : null;
});
const expected = BALLS.map((b) => ({
  voxels: planes.reduce((n, p) => n + (p ? p.filter((v) => v === b.n).length : 0), 0),
  slices: planes.map((p, z) => p?.includes(b.n) ? z : -1).filter((z) => z >= 0),
}));

function input(overrides: Partial<SegInput> = {}): SegInput {
  return {
    source: {
      patientStudy: {
        // Not ASCII: written as UTF-8 and declared so (ISO_IR 192).
        PatientName: "MÜLLER^JÖRG",
        PatientID: plan.patient.id,
        PatientBirthDate: plan.patient.birthDate,
        PatientSex: plan.patient.sex,
        StudyDate: plan.study.studyDate,
        StudyTime: plan.study.studyTime,
        ReferringPhysicianName: plan.study.referringPhysicianName,
        StudyID: plan.study.studyId,
        AccessionNumber: plan.study.accessionNumber,
      },
      studyInstanceUid: plan.study.studyInstanceUid,
      seriesInstanceUid: plan.study.seriesInstanceUid,
      frameOfReferenceUid: plan.study.frameOfReferenceUid,
      sopClassUid: CT_IMAGE_STORAGE,
      sopInstanceUids: plan.sopInstanceUids,
      rows: g.rows,
      columns: g.cols,
      pixelSpacing: [g.pixelSpacing, g.pixelSpacing],
      spacingBetweenSlices: g.sliceSpacing,
      orientation: [1, 0, 0, 0, 1, 0],
      positions: Array.from({ length: g.slices }, (_, z) => slicePosition(g, z)),
    },
    segments: BALLS.map((b) => ({
      number: b.n,
      label: `Nodule ${b.n}`,
      category: CODES.morphologicallyAltered,
      type: CODES.nodule,
      anatomicRegion: CODES.lung,
      trackingId: `finding-${b.n}`,
      trackingUid: uidFrom(`test:finding:${b.n}`),
      cieLab: [54000, 50000, 20000],
    })),
    algorithm: {
      name: "lung-nodule-demo",
      version: "2.1.0",
      manufacturer: "imaging-ai",
      modelName: "lung-nodule-demo",
      softwareVersions: "2.1.0",
    },
    maskSlice: (z) => planes[z],
    seriesInstanceUid: uidFrom("test:seg-series"),
    sopInstanceUid: uidFrom("test:seg"),
    seriesNumber: 901,
    seriesDescription: "AI lung nodules (SEG)",
    contentLabel: "NODULES",
    created: new Date("2026-12-06T12:00:00Z"),
    ...overrides,
  };
}

Deno.test("the Segmentation passes dciodvfy with no error", async () => {
  if (!await available("dciodvfy")) return;
  const bytes = writeSegmentation(input());
  const { out } = await withFile(bytes, (p) => run("dciodvfy", ["-new", p]));
  const errors = out.split("\n").filter((l) => /^Error/.test(l));
  assert.deepEqual(errors, [], out);
  assert.match(out, /Segmentation/);
});

Deno.test("pydicom reads the same segments, frames, references and pixels back", async () => {
  if (!await available("/usr/bin/python3")) return;
  const bytes = writeSegmentation(input());
  const script = `
import json, sys, pydicom
ds = pydicom.dcmread(sys.argv[1])
px = ds.pixel_array
out = {
  "sopClass": ds.SOPClassUID, "frames": int(ds.NumberOfFrames), "shape": list(px.shape),
  "segments": [[int(s.SegmentNumber), s.SegmentLabel, s.SegmentedPropertyTypeCodeSequence[0].CodeValue,
                s.SegmentationAlgorithmIdentificationSequence[0].AlgorithmName, s.TrackingID]
               for s in ds.SegmentSequence],
  "perFrame": [[int(f.SegmentIdentificationSequence[0].ReferencedSegmentNumber),
                [float(v) for v in f.PlanePositionSequence[0].ImagePositionPatient],
                f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID,
                int(px[i].sum())] for i, f in enumerate(ds.PerFrameFunctionalGroupsSequence)],
  "for": ds.FrameOfReferenceUID, "study": ds.StudyInstanceUID, "patient": str(ds.PatientID),
  "name": str(ds.PatientName),
}
print(json.dumps(out, ensure_ascii=True))
`;
  const { code, out } = await withFile(bytes, (p) => run("/usr/bin/python3", ["-c", script, p]));
  assert.equal(code, 0, out);
  const r = JSON.parse(out);
  assert.equal(r.sopClass, SEGMENTATION_STORAGE);
  assert.equal(r.study, plan.study.studyInstanceUid);
  assert.equal(r.for, plan.study.frameOfReferenceUid);
  assert.equal(r.patient, plan.patient.id);
  assert.equal(r.name, "MÜLLER^JÖRG");
  const frames = expected[0].slices.length + expected[1].slices.length;
  assert.equal(r.frames, frames);
  assert.deepEqual(r.shape, [frames, g.rows, g.cols]);
  assert.deepEqual(r.segments, [
    [1, "Nodule 1", "27925004", "lung-nodule-demo", "finding-1"],
    [2, "Nodule 2", "27925004", "lung-nodule-demo", "finding-2"],
  ]);
  for (const [i, b] of BALLS.entries()) {
    const mine = r.perFrame.filter((f: [number]) => f[0] === b.n);
    assert.equal(mine.length, expected[i].slices.length);
    // Each frame sits on its source slice, references it, and holds that slice's pixels.
    for (const [k, [, position, sop, sum]] of mine.entries()) {
      const z = expected[i].slices[k];
      const want = slicePosition(g, z);
      assert.ok(
        position.every((v: number, j: number) => Math.abs(v - want[j]) < 1e-4),
        `${position}`,
      );
      assert.equal(sop, plan.sopInstanceUids[z]);
      assert.equal(sum, planes[z]!.filter((v) => v === b.n).length);
    }
    const total = mine.reduce((n: number, f: number[]) => n + (f[3] as number), 0);
    assert.equal(total, expected[i].voxels);
  }
});

Deno.test("dcmjs reads it back: segments, dimensions, and the packed bits", () => {
  const bytes = writeSegmentation(input());
  const dict = dcmjs.data.DicomMessage.readFile(bytes.buffer as ArrayBuffer);
  const ds = dcmjs.data.DicomMetaDictionary.naturalizeDataset(dict.dict);
  assert.equal(dict.meta["00020010"].Value[0], "1.2.840.10008.1.2.1");
  assert.equal(ds.SegmentationType, "BINARY");
  assert.equal(ds.SegmentSequence.length, 2);
  assert.equal(ds.DimensionIndexSequence[0].DimensionIndexPointer, 0x0062000b);
  assert.equal(ds.DimensionIndexSequence[1].FunctionalGroupPointer, 0x00209113);
  const bits = new Uint8Array(ds.PixelData[0]);
  const perFrame = g.rows * g.cols;
  let set = 0;
  for (let i = 0; i < ds.NumberOfFrames * perFrame; i++) set += (bits[i >> 3] >> (i & 7)) & 1;
  assert.equal(set, expected[0].voxels + expected[1].voxels);
  assert.equal(bits.length % 2, 0);
  // Common Instance Reference: only the slices a frame was drawn on.
  const refs = ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence;
  assert.equal(refs.length, new Set([...expected[0].slices, ...expected[1].slices]).size);
});

Deno.test("the same input gives the same bytes; inputs that do not hold together are refused", () => {
  assert.deepEqual(writeSegmentation(input()), writeSegmentation(input()));
  assert.throws(() => writeSegmentation(input({ segments: [] })), /at least one segment/);
  const ghost = input().segments.concat([{ ...input().segments[0], number: 3, label: "none" }]);
  assert.throws(() => writeSegmentation(input({ segments: ghost })), /segment 3 has no pixels/);
  assert.throws(
    () => writeSegmentation(input({ maskSlice: (z) => z === 8 ? new Uint8Array(10) : null })),
    /slice 8 has 10 pixels/,
  );
  assert.match(uidFrom("x"), /^2\.25\.[1-9][0-9]{0,38}$/);
  assert.notEqual(uidFrom("x"), uidFrom("y"));
});
