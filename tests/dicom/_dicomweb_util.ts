// deno-lint-ignore-file no-explicit-any
/**
 * @module Helpers shared by the DICOMweb black-box tests (not a test file itself): STOW-RS bodies,
 * multipart responses, DICOM JSON lookups, small Part 10 instances written with dcmjs, the
 * pydicom test files, seed data for QIDO/WADO, and a service of one's own with extra settings.
 */
import assert from "node:assert/strict";
import dcmjs from "dcmjs";
import { createApp } from "../../app.ts";
import { loadConfig } from "../../platform/config.ts";
import { parseMediaType, readMultipart } from "../../dicom/codec/multipart.ts";
import { createServices, type Services } from "../../services.ts";
import { type TestContext, uniq } from "../_harness.ts";

/** Bytes that fetch() takes as a body. */
export type Bytes = Uint8Array<ArrayBuffer>;

export const PYDICOM_DIR = "/usr/lib/python3/dist-packages/pydicom/data/test_files";

/** The bytes of a pydicom test file. */
export function pydicom(name: string): Bytes {
  return Deno.readFileSync(`${PYDICOM_DIR}/${name}`);
}

/** Every plain file of the pydicom test folder, by name (sorted by code point). */
export function pydicomFiles(): string[] {
  return [...Deno.readDirSync(PYDICOM_DIR)].filter((e) => e.isFile).map((e) => e.name).sort();
}

const encoder = new TextEncoder();

/** A multipart/related body of `parts` (each `application/dicom` unless a type is given). */
export function multipartBody(
  parts: (Uint8Array | { type: string; body: Uint8Array })[],
  boundary = `b-${crypto.randomUUID()}`,
): { body: Bytes; contentType: string } {
  const chunks: Uint8Array[] = [];
  for (const p of parts) {
    const { type, body } = p instanceof Uint8Array ? { type: "application/dicom", body: p } : p;
    chunks.push(encoder.encode(`--${boundary}\r\nContent-Type: ${type}\r\n\r\n`), body);
    chunks.push(encoder.encode("\r\n"));
  }
  chunks.push(encoder.encode(`--${boundary}--\r\n`));
  const body = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) (body.set(c, at), at += c.length);
  return { body, contentType: `multipart/related; type="application/dicom"; boundary=${boundary}` };
}

export interface JsonResponse {
  status: number;
  headers: Headers;
  body: any;
}

async function json(res: Response): Promise<JsonResponse> {
  const text = await res.text();
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch { /* not JSON */ }
  return { status: res.status, headers: res.headers, body };
}

/** STOW-RS of `parts` as one multipart/related request (to `/studies/{study}` when given). */
export async function stow(
  ctx: Pick<TestContext, "origin">,
  parts: Uint8Array[],
  study?: string,
): Promise<JsonResponse> {
  const { body, contentType } = multipartBody(parts);
  const res = await fetch(`${ctx.origin}/dicomweb/studies${study ? `/${study}` : ""}`, {
    method: "POST",
    headers: { "content-type": contentType, accept: "application/dicom+json" },
    body,
  });
  return json(res);
}

/** GET of a DICOMweb path (relative to /dicomweb) as JSON. */
export async function dicomJson(
  ctx: Pick<TestContext, "origin">,
  path: string,
  headers: Record<string, string> = {},
): Promise<JsonResponse> {
  const res = await fetch(`${ctx.origin}/dicomweb/${path.replace(/^\//, "")}`, {
    headers: { accept: "application/dicom+json", ...headers },
  });
  return json(res);
}

/** The parts of a multipart/related response, with its media type's `type` parameter. */
export async function multipartParts(
  res: Response,
): Promise<{ type: string | undefined; parts: { headers: Headers; body: Uint8Array }[] }> {
  const media = parseMediaType(res.headers.get("content-type") ?? "");
  assert.equal(media.type, "multipart/related", `content-type ${res.headers.get("content-type")}`);
  assert.ok(res.body);
  const parts = [];
  for await (
    const part of readMultipart(res.body!, media.params.boundary, {
      maxPartBytes: 2 ** 30,
      maxTotalBytes: 2 ** 31,
    })
  ) parts.push({ headers: part.headers, body: part.body });
  return { type: media.params.type, parts };
}

/** The first value of `tag` in a DICOM JSON object (PN as its Alphabetic form). */
export function value(json: any, tag: string): any {
  const v = json?.[tag]?.Value?.[0];
  return v && typeof v === "object" && "Alphabetic" in v ? v.Alphabetic : v;
}

/** Every value of `tag`. */
export function values(json: any, tag: string): any[] {
  return json?.[tag]?.Value ?? [];
}

/** The items of ReferencedSOPSequence and FailedSOPSequence of a store response. */
export function storeItems(body: any): { referenced: any[]; failed: any[] } {
  return { referenced: values(body, "00081199"), failed: values(body, "00081198") };
}

/** Asserts the PS3.18 store-response shape of every item (and returns the items). */
export function assertStoreResponse(body: any): { referenced: any[]; failed: any[] } {
  const items = storeItems(body);
  for (const r of items.referenced) {
    assert.equal(r["00081150"]?.vr, "UI");
    assert.match(value(r, "00081150"), /^[0-9.]+$/, JSON.stringify(r));
    assert.match(value(r, "00081155"), /^[0-9.]+$/, JSON.stringify(r));
    assert.equal(r["00081190"]?.vr, "UR");
    assert.match(
      value(r, "00081190"),
      /\/dicomweb\/studies\/[0-9.]+\/series\/[0-9.]+\/instances\//,
    );
    assert.equal(r["00081197"], undefined);
  }
  for (const f of items.failed) {
    assert.equal(f["00081197"]?.vr, "US", JSON.stringify(f));
    assert.equal(typeof value(f, "00081197"), "number", JSON.stringify(f));
    assert.ok(f["00081150"] && f["00081155"], "failed items name the SOP class and instance");
  }
  return items;
}

/** Bytes equality with a short message instead of a dump of two arrays. */
export function assertSameBytes(actual: Uint8Array, expected: Uint8Array, what = "bytes"): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] !== expected[i]) assert.fail(`${what}: differ at byte ${i}`);
  }
}

/** A fresh UID under 2.25 (unique per call). */
export function newUid(): string {
  const hex = crypto.randomUUID().replaceAll("-", "");
  return `2.25.${BigInt(`0x${hex}`).toString()}`;
}

const { DicomDict, DicomMetaDictionary } = dcmjs.data;
export const SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7";
export const CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2";

/**
 * A small Part 10 instance (Explicit VR Little Endian, 4×4 16-bit MONOCHROME2, pixel values
 * from `fill`) with the naturalized dcmjs attributes given (they override the defaults).
 */
export function makeInstance(attrs: Record<string, unknown> = {}, fill = 7): Bytes {
  const sopClass = (attrs.SOPClassUID as string) ?? SECONDARY_CAPTURE;
  const sop = (attrs.SOPInstanceUID as string) ?? newUid();
  const pixels = new Uint16Array(16).fill(fill);
  const dataset = {
    SOPClassUID: sopClass,
    SOPInstanceUID: sop,
    StudyInstanceUID: newUid(),
    SeriesInstanceUID: newUid(),
    Modality: "OT",
    PatientName: "Test^Patient",
    PatientID: "P0",
    StudyDate: "20200101",
    StudyTime: "120000",
    SeriesNumber: 1,
    InstanceNumber: 1,
    SamplesPerPixel: 1,
    PhotometricInterpretation: "MONOCHROME2",
    Rows: 4,
    Columns: 4,
    BitsAllocated: 16,
    BitsStored: 16,
    HighBit: 15,
    PixelRepresentation: 0,
    ...attrs,
    PixelData: pixels.buffer,
    _vrMap: { PixelData: "OW" },
  };
  const meta = {
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: sopClass,
    MediaStorageSOPInstanceUID: sop,
    TransferSyntaxUID: "1.2.840.10008.1.2.1",
    ImplementationClassUID: "2.25.1",
  };
  const dict = new DicomDict(DicomMetaDictionary.denaturalizeDataset(meta));
  dict.dict = DicomMetaDictionary.denaturalizeDataset(dataset);
  return new Uint8Array(dict.write());
}

/** A service of our own (PGlite in memory, a temporary folder) with extra settings. */
export async function ownService(env: Record<string, string>): Promise<{
  services: Services;
  request: (path: string, init?: RequestInit) => Promise<Response>;
  close: () => Promise<void>;
}> {
  const dir = await Deno.makeTempDir({ prefix: "objects-" });
  const config = loadConfig({
    PUBLIC_URL: "http://dicom.test",
    PGLITE_DIR: "memory",
    OBJECT_DIR: dir,
    LOG_LEVEL: "error",
    DICOM_STABLE_SECONDS: "1",
    AUTH: "off",
    ...env,
  });
  const services = await createServices(config);
  const app = createApp(services);
  return {
    services,
    request: async (path, init) => await app.request(`http://dicom.test${path}`, init),
    close: async () => {
      await services.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

export const CT_SMALL = {
  study: "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322",
  series: "1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322",
  sop: "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322",
};
/** Stored once per backend: CT, MR, NM of "CompressedSamples", a native and an RLE multi-frame. */
export const FILES = [
  "CT_small.dcm",
  "MR_small_bigendian.dcm", // MR_small.dcm in Explicit VR Big Endian
  "JPEG2000.dcm",
  "rtdose.dcm",
  "SC_rgb_rle_2frame.dcm",
];
const seeded = new WeakMap<TestContext, Promise<Map<string, any>>>();

/** Stores FILES (once per test context); returns each file's ReferencedSOPSequence item. */
export function seedFiles(ctx: TestContext): Promise<Map<string, any>> {
  let done = seeded.get(ctx);
  if (!done) {
    done = (async () => {
      const res = await stow(ctx, FILES.map(pydicom));
      // 202: rtdose.dcm's meta header names another SOP Instance UID (a warning).
      assert.equal(res.status, 202, JSON.stringify(res.body).slice(0, 300));
      assert.equal(res.body["00081198"], undefined);
      const items = res.body["00081199"].Value;
      return new Map(FILES.map((f, i) => [f, items[i]]));
    })();
    seeded.set(ctx, done);
  }
  return done;
}

/** One study of a unique patient: series 1 (CT, 2 instances) and series 2 (MR, 2 instances). */
export async function seedStudy(ctx: TestContext, extra: Record<string, unknown> = {}) {
  const patientId = uniq("P");
  const study = newUid();
  const series = [newUid(), newUid()];
  const instances: { bytes: Bytes; series: string; sop: string }[] = [];
  for (const [s, modality] of [[0, "CT"], [1, "MR"]] as const) {
    for (const n of [1, 2]) {
      const sop = newUid();
      instances.push({
        series: series[s],
        sop,
        bytes: makeInstance({
          PatientID: patientId,
          PatientName: `Qido^${patientId}`,
          StudyInstanceUID: study,
          SeriesInstanceUID: series[s],
          SOPInstanceUID: sop,
          SOPClassUID: CT_IMAGE,
          Modality: modality,
          SeriesNumber: s + 1,
          InstanceNumber: n,
          AccessionNumber: `A${patientId}`,
          Manufacturer: "ACME",
          ...extra,
        }, n),
      });
    }
  }
  const res = await stow(ctx, instances.map((i) => i.bytes));
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return { patientId, study, series, instances };
}

/** A QIDO-RS GET expecting `status` (200: a DICOM JSON array); returns the body. */
export async function qido(ctx: TestContext, path: string, status = 200): Promise<any> {
  const res = await dicomJson(ctx, path);
  assert.equal(res.status, status, `GET ${path}: ${JSON.stringify(res.body)}`);
  if (status === 200) {
    assert.equal(res.headers.get("content-type"), "application/dicom+json");
    assert.ok(Array.isArray(res.body));
  }
  return res.body;
}

/** The values of `tag` in result rows, sorted. */
export const uids = (rows: any[], tag: string): string[] => rows.map((r) => value(r, tag)).sort();
