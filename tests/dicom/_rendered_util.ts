/**
 * @module Helpers of the rendered and thumbnail tests (not a test file itself): GET with bytes,
 * decoding of the answered JPEG, PNG and GIF (a GIF decoder written from the GIF89a
 * specification, to check the server's encoder), and one seeded study per backend: a synthetic
 * CT of 5 slices (64 wide, 48 high) with, in the same study, a CT series of 2 instances (series
 * number 1), an image series of modality SEG of 7 and SR instances without pixel data, plus
 * pydicom's CT_small, MR_small, rtdose (15 frames) and test-SR files.
 */
import assert from "node:assert/strict";
import dcmjs from "dcmjs";
import jpeg from "jpeg-js";
import { decode as decodePng } from "fast-png";
import { generateStudy } from "../../dicom/synth/ct.ts";
import { stowInstances } from "../../dicom/synth/stow.ts";
import type { TestContext } from "../_harness.ts";
import { CT_IMAGE, makeInstance, newUid, pydicom } from "./_dicomweb_util.ts";

export interface Got {
  status: number;
  headers: Headers;
  bytes: Uint8Array<ArrayBuffer>;
  // deno-lint-ignore no-explicit-any
  json(): any;
}

/** GET of a DICOMweb path (relative to /dicomweb), the body read whole. */
export async function get(
  ctx: Pick<TestContext, "origin">,
  path: string,
  accept?: string,
): Promise<Got> {
  const res = await fetch(`${ctx.origin}/dicomweb/${path.replace(/^\//, "")}`, {
    headers: accept === undefined ? {} : { accept },
  });
  const bytes = new Uint8Array(await res.arrayBuffer());
  return {
    status: res.status,
    headers: res.headers,
    bytes,
    json: () => JSON.parse(new TextDecoder().decode(bytes)),
  };
}

/** A decoded image: one grey (or, for colour, red) sample per pixel. */
export interface Decoded {
  type: "image/jpeg" | "image/png" | "image/gif";
  width: number;
  height: number;
  /** The first channel of each pixel. */
  grey: Uint8Array;
}

/** Decodes a JPEG, PNG or GIF by its signature (fails on anything else). */
export function decodeImage(bytes: Uint8Array): Decoded {
  if (bytes[0] === 0xff && bytes[1] === 0xd8) {
    const img = jpeg.decode(bytes, { useTArray: true });
    return { type: "image/jpeg", width: img.width, height: img.height, grey: every(img.data, 4) };
  }
  if ([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a].every((b, i) => bytes[i] === b)) {
    const img = decodePng(bytes);
    const channels = img.data.length / (img.width * img.height);
    return {
      type: "image/png",
      width: img.width,
      height: img.height,
      grey: every(img.data as Uint8Array, channels),
    };
  }
  if (new TextDecoder().decode(bytes.subarray(0, 6)) === "GIF89a") {
    const gif = decodeGif(bytes);
    const grey = new Uint8Array(gif.indices.length);
    for (let i = 0; i < grey.length; i++) grey[i] = gif.palette[gif.indices[i] * 3];
    return { type: "image/gif", width: gif.width, height: gif.height, grey };
  }
  assert.fail(`not a JPEG, PNG or GIF: ${[...bytes.subarray(0, 8)]}`);
}

function every(data: ArrayLike<number>, n: number): Uint8Array {
  const out = new Uint8Array(Math.floor(data.length / n));
  for (let i = 0; i < out.length; i++) out[i] = data[i * n];
  return out;
}

/** Width and height from a PNG's IHDR chunk (bytes 16–23, big endian). */
export function pngSize(bytes: Uint8Array): { width: number; height: number } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  assert.equal(new TextDecoder().decode(bytes.subarray(12, 16)), "IHDR");
  return { width: view.getUint32(16), height: view.getUint32(20) };
}

/**
 * A GIF89a decoder (one image, global palette, not interlaced) after the specification's
 * Appendix F: variable-width LZW codes, least significant bit first, in data sub-blocks.
 */
export function decodeGif(
  bytes: Uint8Array,
): { width: number; height: number; palette: Uint8Array; indices: Uint8Array } {
  const u16 = (at: number) => bytes[at] | (bytes[at + 1] << 8);
  const width = u16(6);
  const height = u16(8);
  let at = 13;
  let palette = new Uint8Array(0);
  if (bytes[10] & 0x80) {
    const n = 3 * (1 << ((bytes[10] & 7) + 1));
    palette = bytes.slice(at, at + n);
    at += n;
  }
  while (bytes[at] === 0x21) { // extensions: label, then sub-blocks
    at += 2;
    while (bytes[at]) at += bytes[at] + 1;
    at++;
  }
  assert.equal(bytes[at], 0x2c, "image descriptor");
  assert.deepEqual([u16(at + 5), u16(at + 7)], [width, height]);
  assert.equal(bytes[at + 9] & 0xc0, 0, "no local palette, not interlaced");
  at += 10;
  const minSize = bytes[at++];
  const data: number[] = [];
  while (bytes[at]) {
    for (let i = 1; i <= bytes[at]; i++) data.push(bytes[at + i]);
    at += bytes[at] + 1;
  }
  assert.equal(bytes[at + 1], 0x3b, "trailer");
  const clear = 1 << minSize;
  const eoi = clear + 1;
  let size = minSize + 1;
  let dict: number[][] = Array.from({ length: eoi + 1 }, (_, i) => [i]);
  let prev: number[] | null = null;
  const out: number[] = [];
  let pos = 0;
  const read = () => {
    let code = 0;
    for (let i = 0; i < size; i++, pos++) {
      assert.ok(pos < data.length * 8, "LZW data ended before the end code");
      code |= ((data[pos >> 3] >> (pos & 7)) & 1) << i;
    }
    return code;
  };
  for (;;) {
    const code = read();
    if (code === clear) {
      size = minSize + 1;
      dict = dict.slice(0, eoi + 1);
      prev = null;
      continue;
    }
    if (code === eoi) break;
    let entry: number[];
    if (code < dict.length) entry = dict[code];
    else if (code === dict.length && prev) entry = [...prev, prev[0]];
    else assert.fail(`bad LZW code ${code} (table ${dict.length})`);
    out.push(...entry);
    if (prev && dict.length < 4096) dict.push([...prev, entry[0]]);
    prev = entry;
    if (dict.length === 1 << size && size < 12) size++;
  }
  assert.equal(out.length, width * height, "one index per pixel");
  return { width, height, palette, indices: Uint8Array.from(out) };
}

const { DicomDict, DicomMetaDictionary } = dcmjs.data;
export const BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11";

/** A Basic Text SR without pixel data (naturalized dcmjs attributes override the defaults). */
export function makeSr(attrs: Record<string, unknown>): Uint8Array<ArrayBuffer> {
  const sop = (attrs.SOPInstanceUID as string) ?? newUid();
  const dataset = {
    SOPClassUID: BASIC_TEXT_SR,
    SOPInstanceUID: sop,
    Modality: "SR",
    PatientName: "Test^Patient",
    PatientID: "P0",
    StudyDate: "20200101",
    StudyTime: "120000",
    SeriesNumber: 20,
    InstanceNumber: 1,
    ValueType: "CONTAINER",
    ContinuityOfContent: "SEPARATE",
    CompletionFlag: "COMPLETE",
    VerificationFlag: "UNVERIFIED",
    ...attrs,
  };
  const meta = {
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: BASIC_TEXT_SR,
    MediaStorageSOPInstanceUID: sop,
    TransferSyntaxUID: "1.2.840.10008.1.2.1",
    ImplementationClassUID: "2.25.1",
  };
  const dict = new DicomDict(DicomMetaDictionary.denaturalizeDataset(meta));
  dict.dict = DicomMetaDictionary.denaturalizeDataset(dataset);
  return new Uint8Array(dict.write());
}

export interface Seeded {
  study: string;
  /** The synthetic CT series: 5 slices, 64 × 48; `slices[i]` has Instance Number i + 1. */
  ct: { series: string; slices: string[] };
  small: { series: string; sops: string[] };
  seg: { series: string; sops: string[] };
  sr: { series: string; sops: string[] };
  files: Record<string, { study: string; series: string; sop: string }>;
}

export const PYDICOM_FILES = ["CT_small.dcm", "MR_small.dcm", "rtdose.dcm", "test-SR.dcm"];
const seeded = new WeakMap<TestContext, Promise<Seeded>>();

/** Stores the study and files described above (once per test context). */
export function seedRendered(ctx: TestContext, seed: number): Promise<Seeded> {
  let done = seeded.get(ctx);
  if (!done) {
    done = seed_(ctx, seed);
    seeded.set(ctx, done);
  }
  return done;
}

async function seed_(ctx: TestContext, seed: number): Promise<Seeded> {
  const synth = generateStudy({ seed, slices: 5, rows: 48, cols: 64, lesions: 0 });
  const study = synth.plan.study.studyInstanceUid;
  const who = { PatientID: synth.patient.id, PatientName: synth.patient.name };
  const group = (n: number) => ({ series: newUid(), sops: Array.from({ length: n }, newUid) });
  const small = group(2);
  const seg = group(7);
  const sr = group(3);
  const extra = [
    ...small.sops.map((sop, i) =>
      makeInstance({
        ...who,
        StudyInstanceUID: study,
        SeriesInstanceUID: small.series,
        SOPInstanceUID: sop,
        SOPClassUID: CT_IMAGE,
        Modality: "CT",
        SeriesNumber: 1,
        InstanceNumber: i + 1,
      }, 100 * (i + 1))
    ),
    ...seg.sops.map((sop, i) =>
      makeInstance({
        ...who,
        StudyInstanceUID: study,
        SeriesInstanceUID: seg.series,
        SOPInstanceUID: sop,
        Modality: "SEG",
        SeriesNumber: 10,
        InstanceNumber: i + 1,
      }, 50 * (i + 1))
    ),
    ...sr.sops.map((sop, i) =>
      makeSr({
        ...who,
        StudyInstanceUID: study,
        SeriesInstanceUID: sr.series,
        SOPInstanceUID: sop,
        InstanceNumber: i + 1,
      })
    ),
  ];
  const stored = await stowInstances(`${ctx.origin}/dicomweb`, [...synth.instances, ...extra]);
  assert.equal(stored.status, 200, JSON.stringify(stored));
  assert.equal(stored.stored, 5 + 2 + 7 + 3);
  const res = await stowInstances(`${ctx.origin}/dicomweb`, PYDICOM_FILES.map(pydicom));
  // 202: rtdose.dcm's meta header names another SOP Instance UID (a warning, stored anyway).
  assert.ok(res.status === 200 || res.status === 202, JSON.stringify(res));
  assert.equal(res.stored, PYDICOM_FILES.length, JSON.stringify(res));
  const files: Seeded["files"] = {};
  for (const name of PYDICOM_FILES) {
    const sop = fileSop(name);
    const found = await fetch(`${ctx.origin}/dicomweb/instances?SOPInstanceUID=${sop}`, {
      headers: { accept: "application/dicom+json" },
    });
    const [row] = await found.json();
    assert.ok(row, `${name} is stored`);
    files[name] = { study: row["0020000D"].Value[0], series: row["0020000E"].Value[0], sop };
  }
  return {
    study,
    ct: { series: synth.plan.study.seriesInstanceUid, slices: synth.plan.sopInstanceUids },
    small,
    seg,
    sr,
    files,
  };
}

/** The SOP Instance UID of a pydicom file (of its data set, not its meta header), with dcmjs. */
function fileSop(name: string): string {
  const dict = dcmjs.data.DicomMessage.readFile(pydicom(name).buffer);
  return DicomMetaDictionary.naturalizeDataset(dict.dict).SOPInstanceUID;
}
