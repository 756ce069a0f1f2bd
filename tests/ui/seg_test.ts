/**
 * @module The viewer's reading of a DICOM Segmentation (static/lib/seg.ts) on files the service's
 * own writer makes (dicom/codec/seg_writer.ts): 5 × 5 frames, so every frame but the first starts
 * mid-byte; the segments, frames, references and positions read back; each frame's pixels exactly
 * as written; frames placed on the shown slices by SOP Instance UID, else by position on the same
 * grid; outlines along pixel edges (holes, corner-touching pixels, the image border) exact.
 */
import assert from "node:assert/strict";
import { CODES, uidFrom, writeSegmentation } from "../../dicom/codec/seg_writer.ts";
import { CT_IMAGE_STORAGE } from "../../dicom/synth/encode.ts";
import {
  frameSlices,
  insideLoops,
  outline,
  parseSegmentation,
  SegContours,
  type Segmentation,
  segmentationPath,
  segmentNumberOf,
  unpackFrame,
} from "../../static/lib/seg.ts";
import { smallStudy } from "../sidecar/_study.ts";

const ROWS = 5, COLS = 5;
const SOPS = [0, 1, 2].map((z) => uidFrom(`seg-test:ct:${z}`));
const POSITIONS = [0, 1, 2].map((z) => [-10, -20, 30 + 2.5 * z]);
const ORIENTATION = [1, 0, 0, 0, 1, 0];
const SPACING: [number, number] = [0.8, 0.7];

/** Label planes from pictures: one string per row, a digit per pixel (its segment), `.` for 0. */
function plane(...rows: string[]): Uint8Array {
  return Uint8Array.from(rows.join("").split(""), (c) => (c === "." ? 0 : Number(c)));
}

const PLANES = [
  // z = 0: segment 1, a 2 × 2 square.
  plane(".....", ".11..", ".11..", ".....", "....."),
  // z = 1: segment 1, a 3 × 3 ring round a hole; segment 2, two pixels at opposite corners.
  plane("....2", ".111.", ".1.1.", ".111.", "2...."),
  // z = 2: segment 2, two pixels touching only at a corner, one on the image's border.
  plane(".....", ".....", ".....", "...2.", "....2"),
];

/** The mask of segment `n` on slice z, as written. */
const maskOf = (z: number, n: number) => PLANES[z].map((v) => (v === n ? 1 : 0));

function segFile(planes = PLANES): Uint8Array {
  return writeSegmentation({
    source: {
      patientStudy: { PatientName: "TEST^SEG", PatientID: "SEG-1" },
      studyInstanceUid: uidFrom("seg-test:study"),
      seriesInstanceUid: uidFrom("seg-test:ct"),
      frameOfReferenceUid: uidFrom("seg-test:frame"),
      sopClassUid: CT_IMAGE_STORAGE,
      sopInstanceUids: SOPS,
      rows: ROWS,
      columns: COLS,
      pixelSpacing: SPACING,
      spacingBetweenSlices: 2.5,
      orientation: ORIENTATION,
      positions: POSITIONS,
    },
    segments: [1, 2].map((n) => ({
      number: n,
      label: `Nodule ${n}`,
      category: CODES.morphologicallyAltered,
      type: CODES.nodule,
      trackingId: `finding-${n}`,
    })),
    algorithm: {
      name: "seg-test",
      version: "1.0.0",
      manufacturer: "imaging-ai",
      modelName: "seg-test",
      softwareVersions: "1.0.0",
    },
    maskSlice: (z) => planes[z],
    seriesInstanceUid: uidFrom("seg-test:seg-series"),
    sopInstanceUid: uidFrom("seg-test:seg"),
    seriesNumber: 9001,
    seriesDescription: "test (SEG)",
    contentLabel: "AI_FINDINGS",
    created: new Date("2026-01-02T03:04:05Z"),
  });
}

/** Slices as the viewer knows them (from WADO-RS metadata), in the given order of z. */
function slices(order: number[], uid = (z: number) => SOPS[z]) {
  return order.map((z) => ({
    sopInstanceUid: uid(z),
    rows: ROWS,
    columns: COLS,
    position: POSITIONS[z] as [number, number, number],
    orientation: ORIENTATION,
    pixelSpacing: SPACING,
  }));
}

Deno.test("parseSegmentation() reads the writer's segments, frames, references and grid", () => {
  const seg = parseSegmentation(segFile());
  assert.equal(seg.sopInstanceUid, uidFrom("seg-test:seg"));
  assert.equal(seg.rows, ROWS);
  assert.equal(seg.columns, COLS);
  assert.deepEqual(seg.segments, [
    { number: 1, label: "Nodule 1", trackingId: "finding-1" },
    { number: 2, label: "Nodule 2", trackingId: "finding-2" },
  ]);
  // Only frames with pixels, by segment then slice.
  assert.deepEqual(seg.frames, [
    { segment: 1, sources: [SOPS[0]], position: POSITIONS[0] },
    { segment: 1, sources: [SOPS[1]], position: POSITIONS[1] },
    { segment: 2, sources: [SOPS[1]], position: POSITIONS[1] },
    { segment: 2, sources: [SOPS[2]], position: POSITIONS[2] },
  ]);
  assert.deepEqual(seg.orientation, ORIENTATION);
  assert.deepEqual(seg.pixelSpacing, SPACING);
  // 4 frames × 25 bits = 13 bytes, padded to 14.
  assert.equal(seg.pixels.length, 14);
});

Deno.test("unpackFrame() reads each frame's bits little-endian, frames starting mid-byte", () => {
  const seg = parseSegmentation(segFile());
  // Frame 1 (the square): pixels 6, 7, 11 and 12 → bits 6, 7 of byte 0 and 3, 4 of byte 1. Frame
  // 2 starts at bit 25 (byte 3, bit 1); its pixel 6 is bit 31: the top bit of byte 3.
  assert.deepEqual([...seg.pixels.subarray(0, 4)], [0xc0, 0x18, 0x00, 0x80]);
  const written = [maskOf(0, 1), maskOf(1, 1), maskOf(1, 2), maskOf(2, 2)];
  written.forEach((mask, i) => {
    assert.deepEqual([...unpackFrame(seg.pixels, i, ROWS, COLS)], [...mask], `frame ${i + 1}`);
  });
  // A frame past the first byte boundary of a 3 × 3 grid (9 bits: frame 2 starts at bit 9).
  const packed = Uint8Array.of(0b0000_0000, 0b1000_0010, 0b0000_0001);
  assert.deepEqual([...unpackFrame(packed, 1, 3, 3)], [1, 0, 0, 0, 0, 0, 1, 1, 0]);
});

Deno.test("frameSlices() places frames by SOP Instance UID, else by position on the same grid", () => {
  const seg = parseSegmentation(segFile());
  // The viewer shows the series the other way round: slice 0 is z = 2.
  assert.deepEqual(frameSlices(seg, slices([2, 1, 0])), [2, 1, 1, 0]);
  // Instances it does not know (another copy of the series): by plane position.
  assert.deepEqual(frameSlices(seg, slices([0, 1, 2], (z) => `1.2.3.${z}`)), [0, 1, 1, 2]);
  // Same positions on another grid, or turned: nowhere.
  const wider = slices([0, 1, 2], (z) => `1.2.3.${z}`).map((s) => ({ ...s, columns: 6 }));
  assert.deepEqual(frameSlices(seg, wider), [-1, -1, -1, -1]);
  const turned = slices([0, 1, 2], (z) => `1.2.3.${z}`)
    .map((s) => ({ ...s, orientation: [0, 1, 0, 1, 0, 0] }));
  assert.deepEqual(frameSlices(seg, turned), [-1, -1, -1, -1]);
  // The named instance on another grid is not drawn on, even where a position would fit.
  assert.deepEqual(frameSlices(seg, slices([0]).map((s) => ({ ...s, rows: 4 }))), [-1, -1, -1, -1]);
  // Missing slices: those frames are nowhere.
  assert.deepEqual(frameSlices(seg, slices([1])), [-1, 0, 0, -1]);
});

Deno.test("outline() follows pixel edges: holes, corner-touching pixels, the border", () => {
  assert.deepEqual(outline(maskOf(0, 1), ROWS, COLS), [[1, 1, 3, 1, 3, 3, 1, 3]]);
  // The ring: clockwise outside, anticlockwise round the hole.
  assert.deepEqual(outline(maskOf(1, 1), ROWS, COLS), [
    [1, 1, 4, 1, 4, 4, 1, 4],
    [2, 2, 2, 3, 3, 3, 3, 2],
  ]);
  assert.deepEqual(outline(maskOf(1, 2), ROWS, COLS), [
    [4, 0, 5, 0, 5, 1, 4, 1],
    [0, 4, 1, 4, 1, 5, 0, 5],
  ]);
  // Touching at a corner only: two loops.
  assert.deepEqual(outline(maskOf(2, 2), ROWS, COLS), [
    [3, 3, 4, 3, 4, 4, 3, 4],
    [4, 4, 5, 4, 5, 5, 4, 5],
  ]);
  // An L: corners only, the long sides in one step each.
  assert.deepEqual(outline(plane("1..", "1..", "111"), 3, 3), [[
    0,
    0,
    1,
    0,
    1,
    2,
    3,
    2,
    3,
    3,
    0,
    3,
  ]]);
  assert.deepEqual(outline(new Uint8Array(9), 3, 3), []);
  assert.deepEqual(outline(new Uint8Array(6).fill(1), 2, 3), [[0, 0, 3, 0, 3, 2, 0, 2]]);
});

Deno.test("insideLoops() is true inside an outline and false in its hole and outside", () => {
  const ring = outline(maskOf(1, 1), ROWS, COLS);
  assert.equal(insideLoops(ring, 1.5, 1.5), true);
  assert.equal(insideLoops(ring, 3.5, 2.5), true);
  assert.equal(insideLoops(ring, 2.5, 2.5), false);
  assert.equal(insideLoops(ring, 0.5, 0.5), false);
  assert.equal(insideLoops(ring, 4.5, 2.5), false);
});

Deno.test("SegContours outlines each shown slice once, by segment", () => {
  const seg = parseSegmentation(segFile());
  const contours = new SegContours(seg, slices([2, 1, 0]));
  assert.deepEqual([...contours.segments], [1, 2]);
  assert.deepEqual(contours.slices, [0, 1, 2]);
  const middle = contours.at(1);
  assert.deepEqual(middle.map((c) => c.segment), [1, 2]);
  assert.deepEqual(middle[0].loops, outline(maskOf(1, 1), ROWS, COLS));
  assert.deepEqual(middle[0].min, [1, 1]);
  assert.deepEqual(middle[0].max, [4, 4]);
  assert.deepEqual(middle[1].loops.length, 2);
  assert.deepEqual(middle[1].min, [0, 0]);
  assert.deepEqual(middle[1].max, [5, 5]);
  assert.equal(contours.at(1), middle, "kept, not outlined again");
  assert.deepEqual(contours.at(0).map((c) => [c.segment, c.loops]), [
    [2, outline(maskOf(2, 2), ROWS, COLS)],
  ]);
  assert.deepEqual(contours.at(2).map((c) => [c.segment, c.loops]), [
    [1, [[1, 1, 3, 1, 3, 3, 1, 3]]],
  ]);
  assert.deepEqual(contours.at(7), []);
  // On a series it does not lie on: nothing.
  const elsewhere = new SegContours(
    seg,
    slices([0, 1, 2], (z) => `9.${z}`).map((s) => ({
      ...s,
      position: [0, 0, 100 + s.position[2]] as [number, number, number],
    })),
  );
  assert.equal(elsewhere.segments.size, 0);
  assert.deepEqual(elsewhere.at(1), []);
});

Deno.test("SegContours merges two frames of one segment on one slice", () => {
  // Two 2 × 2 frames of segment 3 on one source: pixel 0 in one, pixel 1 in the other.
  const seg: Segmentation = {
    sopInstanceUid: "1.2",
    rows: 2,
    columns: 2,
    segments: [{ number: 3 }],
    frames: [{ segment: 3, sources: ["a"] }, { segment: 3, sources: ["a"] }],
    pixels: Uint8Array.of(0b0010_0001),
  };
  const contours = new SegContours(seg, [{ sopInstanceUid: "a", rows: 2, columns: 2 }]);
  assert.deepEqual(contours.at(0).map((c) => c.loops), [[[0, 0, 2, 0, 2, 1, 0, 1]]]);
});

Deno.test("parseSegmentation() refuses what is not a binary Segmentation", () => {
  assert.throws(() => parseSegmentation(smallStudy(3).instances[0]), /is not a Segmentation/);
  assert.throws(() => parseSegmentation(new TextEncoder().encode("not DICOM")), /not a readable/);
  const bytes = segFile();
  assert.throws(() => parseSegmentation(bytes.subarray(0, bytes.length - 8)), /buffer overrun/);
});

Deno.test("segmentationPath() finds the report's SEG; segmentNumberOf() the finding's number", () => {
  const sr = {
    contentType: "application/dicom",
    url: "http://api:8000/dicomweb/studies/1.2/series/1.5/instances/1.6",
    title: "Measurement report as DICOM SR (TID 1500), in the study",
  };
  const seg = {
    contentType: "application/dicom",
    url: "http://api:8000/dicomweb/studies/1.2/series/1.3/instances/1.4",
    title: "Findings as a DICOM Segmentation (SEG), in the study",
  };
  const nifti = { contentType: "application/gzip", url: "/files/mask.nii.gz", title: "Mask" };
  assert.equal(
    segmentationPath([nifti, sr, seg]),
    "/dicomweb/studies/1.2/series/1.3/instances/1.4",
  );
  assert.equal(segmentationPath([nifti, sr]), undefined);
  assert.equal(segmentationPath(undefined), undefined);
  assert.equal(segmentationPath([{ ...seg, url: "https://elsewhere/x.dcm" }]), undefined);
  const observation = {
    resourceType: "Observation",
    identifier: [{ system: "urn:imaging-ai:analysis-job", value: "job-1#7" }],
  };
  assert.equal(segmentNumberOf(observation, 2), 7);
  assert.equal(segmentNumberOf({ resourceType: "Observation" }, 2), 2);
  assert.equal(segmentNumberOf(undefined, 4), 4);
});
