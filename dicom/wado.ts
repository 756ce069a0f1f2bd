/**
 * @module WADO-RS (PS3.18 10.4): instances as stored (multipart/related, streamed one at a time
 * from the object store), metadata from the index (never by re-reading files), frames and bulk
 * data cut out of the stored instance.
 */
import dicomParser, { type DataSet, type Element } from "dicom-parser";
import { parseDataSet } from "./codec/dataset.ts";
import * as repo from "../db/dicom_repo.ts";
import type { InstanceRow } from "../db/dicom_repo.ts";
import { BULK_PREFIX } from "./codec/dicom_json.ts";
import type { DicomContext } from "./context.ts";
import { DicomwebError } from "./errors.ts";
import type { OutgoingPart } from "./codec/multipart.ts";

export interface Target {
  studyUid: string;
  seriesUid?: string;
  sopUid?: string;
}

/** The instances a target names; 404 when there are none. */
export async function instancesOf(
  deps: DicomContext,
  t: Target,
  metadata = false,
): Promise<InstanceRow[]> {
  const rows = await repo.listInstances(deps.db, t, metadata);
  if (!rows.length) {
    const what = t.sopUid
      ? `Instance ${t.sopUid}`
      : t.seriesUid
      ? `Series ${t.seriesUid}`
      : `Study ${t.studyUid}`;
    throw new DicomwebError(404, `${what} not found`);
  }
  return rows;
}

/** The rows of a retrieve split by whether their bytes are in the object store. */
export interface StoredInstances {
  present: InstanceRow[];
  missing: InstanceRow[];
}

/**
 * Checks at once (one listing per series on S3) that the rows' objects exist, before a retrieve
 * answers: none missing is the whole answer, some missing a partial one (206, PS3.18 10.4.3), all
 * missing a 404 saying the bytes are gone (the index knows the instances).
 */
export async function storedInstances(
  deps: DicomContext,
  t: Target,
  rows: InstanceRow[],
): Promise<StoredInstances> {
  const existing = await deps.store.existing(rows.map((r) => r.object_key));
  const present: InstanceRow[] = [];
  const missing: InstanceRow[] = [];
  for (const row of rows) (existing.has(row.object_key) ? present : missing).push(row);
  if (missing.length) {
    deps.log("error", "DICOM objects missing from the store", {
      missing: missing.length,
      of: rows.length,
      keys: missing.slice(0, 20).map((r) => r.object_key),
    });
  }
  if (!present.length) {
    const what = t.sopUid
      ? `instance ${t.sopUid}`
      : `all ${rows.length} instances of ${
        t.seriesUid ? `series ${t.seriesUid}` : `study ${t.studyUid}`
      }`;
    throw new DicomwebError(404, `The bytes of ${what} are missing from the object store`);
  }
  return { present, missing };
}

/**
 * The stored instances as multipart parts, fetched lazily one by one. An object that vanished
 * after `storedInstances` checked it errors the stream (the client sees a truncated multipart, never
 * a complete-looking one with an instance left out).
 */
export async function* instanceParts(
  deps: DicomContext,
  rows: InstanceRow[],
): AsyncGenerator<OutgoingPart> {
  for (const row of rows) {
    // Small objects in one read (one chunk down the response); large ones streamed.
    const body = Number(row.size) <= WHOLE_OBJECT_BYTES
      ? await deps.store.get(row.object_key)
      : await deps.store.getStream(row.object_key);
    if (!body) {
      deps.log("error", "DICOM object vanished from the store during a retrieve; aborting it", {
        key: row.object_key,
        sopInstanceUid: row.sop_uid,
      });
      throw new Error(
        `The bytes of instance ${row.sop_uid} vanished from the object store during the retrieve`,
      );
    }
    yield {
      contentType: `application/dicom; transfer-syntax=${row.transfer_syntax}`,
      body,
      // The length lets a reader copy the part instead of searching it for the boundary.
      headers: { "Content-Location": instanceUrl(deps, row), "Content-Length": String(row.size) },
    };
  }
}

/** Objects up to this size are read whole rather than streamed into a WADO-RS response. */
const WHOLE_OBJECT_BYTES = 4 * 1024 * 1024;

export function instanceUrl(deps: DicomContext, row: InstanceRow): string {
  return `${deps.dicomwebBase}/studies/${row.study_uid}/series/${row.series_uid}/instances/${row.sop_uid}`;
}

/** The DICOM JSON metadata of the rows, as one JSON array text, BulkDataURIs made absolute. */
export function metadataJson(deps: DicomContext, rows: InstanceRow[]): string {
  const parts = rows.map((row) =>
    row.metadata.replaceAll(
      `"BulkDataURI":"${BULK_PREFIX}`,
      `"BulkDataURI":"${instanceUrl(deps, row)}/bulkdata/`,
    )
  );
  return `[${parts.join(",")}]`;
}

/** Parses a stored instance fully (for frames and bulk data). */
async function loadDataSet(deps: DicomContext, row: InstanceRow): Promise<DataSet> {
  const bytes = await deps.store.get(row.object_key);
  if (!bytes) throw new DicomwebError(404, `The bytes of instance ${row.sop_uid} are missing`);
  return parseDataSet(bytes);
}

const ENCAPSULATED_TYPES: Record<string, string> = {
  "1.2.840.10008.1.2.4.50": "image/jpeg",
  "1.2.840.10008.1.2.4.51": "image/jpeg",
  "1.2.840.10008.1.2.4.57": "image/jpeg",
  "1.2.840.10008.1.2.4.70": "image/jpeg",
  "1.2.840.10008.1.2.4.80": "image/jls",
  "1.2.840.10008.1.2.4.81": "image/jls",
  "1.2.840.10008.1.2.4.90": "image/jp2",
  "1.2.840.10008.1.2.4.91": "image/jp2",
  "1.2.840.10008.1.2.5": "image/dicom-rle",
};

/** Frames (1-based numbers) of one instance as multipart parts. */
export async function frameParts(
  deps: DicomContext,
  row: InstanceRow,
  numbers: number[],
): Promise<{ parts: OutgoingPart[]; type: string }> {
  const ds = await loadDataSet(deps, row);
  const pixel = ds.elements.x7fe00010;
  if (!pixel) throw new DicomwebError(404, `Instance ${row.sop_uid} has no pixel data`);
  const frames = Math.max(1, Number(ds.intString("x00280008") ?? 1) || 1);
  for (const n of numbers) {
    if (n < 1 || n > frames) {
      throw new DicomwebError(
        404,
        `Frame ${n} does not exist (instance ${row.sop_uid} has ${frames})`,
      );
    }
  }
  const ts = row.transfer_syntax;
  if (pixel.encapsulatedPixelData) {
    const type = ENCAPSULATED_TYPES[ts] ?? "application/octet-stream";
    const table = pixel.basicOffsetTable?.length
      ? pixel.basicOffsetTable
      : frames === pixel.fragments?.length
      ? undefined
      : dicomParser.createJPEGBasicOffsetTable(ds, pixel);
    const parts = numbers.map((n) => ({
      contentType: `${type}; transfer-syntax=${ts}`,
      body: frames === 1 && !table
        ? dicomParser.readEncapsulatedPixelDataFromFragments(ds, pixel, 0, pixel.fragments!.length)
        : table
        ? dicomParser.readEncapsulatedImageFrame(ds, pixel, n - 1, table)
        : dicomParser.readEncapsulatedPixelDataFromFragments(ds, pixel, n - 1, 1),
    }));
    return { parts: parts.map((p) => ({ ...p, body: new Uint8Array(p.body) })), type };
  }
  const rows = ds.uint16("x00280010") ?? 0;
  const cols = ds.uint16("x00280011") ?? 0;
  const samples = ds.uint16("x00280002") ?? 1;
  const bits = ds.uint16("x00280100") ?? 16;
  const frameBits = rows * cols * samples * bits;
  if (!frameBits || frameBits % 8) {
    throw new DicomwebError(406, `Frames of ${bits}-bit packed pixel data cannot be cut out`);
  }
  const size = frameBits / 8;
  const bigEndian = ts === "1.2.840.10008.1.2.2";
  const parts = numbers.map((n) => {
    const start = pixel.dataOffset + (n - 1) * size;
    if (start + size > ds.byteArray.length) {
      throw new DicomwebError(404, `Frame ${n} lies beyond the pixel data of ${row.sop_uid}`);
    }
    const frame = new Uint8Array(ds.byteArray.subarray(start, start + size));
    if (bigEndian && bits > 8) swapBytes(frame, bits / 8);
    return {
      contentType: "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1",
      body: frame,
    };
  });
  return { parts, type: "application/octet-stream" };
}

function swapBytes(bytes: Uint8Array, width: number): void {
  for (let i = 0; i + width <= bytes.length; i += width) {
    bytes.subarray(i, i + width).reverse();
  }
}

/** The value of the attribute at `path` (`7FE00010`, `00540016/1/00181072`) as bytes. */
export async function bulkData(
  deps: DicomContext,
  row: InstanceRow,
  path: string[],
): Promise<Uint8Array> {
  const ds = await loadDataSet(deps, row);
  let current: DataSet = ds;
  let element: Element | undefined;
  for (let i = 0; i < path.length; i++) {
    const tag = path[i];
    if (!/^[0-9A-Fa-f]{8}$/.test(tag)) {
      throw new DicomwebError(404, `No bulk data at ${path.join("/")}`);
    }
    element = current.elements[`x${tag.toLowerCase()}`];
    if (!element) {
      throw new DicomwebError(404, `No attribute ${tag} at ${path.slice(0, i + 1).join("/")}`);
    }
    if (i + 1 < path.length) {
      const item = element.items?.[Number(path[++i]) - 1]?.dataSet;
      if (!item) throw new DicomwebError(404, `No item ${path[i]} in ${tag}`);
      current = item;
    }
  }
  if (!element || element.items) throw new DicomwebError(404, `No bulk data at ${path.join("/")}`);
  if (element.encapsulatedPixelData) {
    return new Uint8Array(
      dicomParser.readEncapsulatedPixelDataFromFragments(ds, element, 0, element.fragments!.length),
    );
  }
  const bytes = new Uint8Array(
    current.byteArray.subarray(element.dataOffset, element.dataOffset + element.length),
  );
  // Bulk data is served in the default transfer syntax, little endian (PS3.18 8.7.3.3).
  const width = SWAP_WIDTHS[element.vr ?? ""];
  if (row.transfer_syntax === "1.2.840.10008.1.2.2" && width) swapBytes(bytes, width);
  return bytes;
}

/** Byte widths of the binary VRs whose values a big endian data set stores swapped. */
const SWAP_WIDTHS: Record<string, number> = { OW: 2, OF: 4, OL: 4, OD: 8, OV: 8 };
