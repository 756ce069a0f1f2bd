/**
 * @module What the DICOM writers share (SEG, SR, the synthetic CT): a naturalized dataset (dcmjs
 * keywords) written as a Part 10 file, Explicit VR Little Endian, with its File Meta Information,
 * by dcmjs's encoder (`denaturalizeDataset` → `DicomDict.write()`); this service's implementation
 * identity; UIDs derived from a label; coded concepts; DA and TM values.
 */
import dcmjs from "dcmjs";
import { createHash } from "node:crypto";

const { DicomDict, DicomMetaDictionary } = dcmjs.data;

export const EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1";

/** Who wrote the file (File Meta Information: Implementation Class UID and Version Name). */
export interface Implementation {
  classUid: string;
  versionName: string;
}

/**
 * The file of `dataset`; its SOPClassUID and SOPInstanceUID go into the meta information. Binary
 * values are ArrayBuffers; `_vrMap` names the VR where dcmjs cannot tell (PixelData: OB or OW).
 */
export function writePart10(
  dataset: Record<string, unknown>,
  implementation: Implementation,
): Uint8Array {
  const meta = {
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: dataset.SOPClassUID,
    MediaStorageSOPInstanceUID: dataset.SOPInstanceUID,
    TransferSyntaxUID: EXPLICIT_VR_LITTLE_ENDIAN,
    ImplementationClassUID: implementation.classUid,
    ImplementationVersionName: implementation.versionName,
  };
  const dict = new DicomDict(DicomMetaDictionary.denaturalizeDataset(meta));
  dict.dict = DicomMetaDictionary.denaturalizeDataset(dataset);
  return new Uint8Array(dict.write());
}

/**
 * A UID of the 2.25 root (PS3.5 B.2) derived from `label` by SHA-256: the same label always gives
 * the same UID, so an object written again for the same job keeps its identity.
 */
export function uidFrom(label: string): string {
  const hash = createHash("sha256").update(label).digest();
  let value = 0n;
  for (let i = 0; i < 16; i++) value = (value << 8n) | BigInt(hash[i]);
  return `2.25.${value.toString(10)}`;
}

/** This service's implementation, for the File Meta Information of what it writes. */
export const IMPLEMENTATION: Implementation = {
  classUid: uidFrom("imaging-ai:implementation"),
  versionName: "IMAGING_AI_1",
};

/** A coded concept (PS3.3 Code Sequence Macro): value, scheme, meaning. */
export interface Code {
  value: string;
  scheme: string;
  meaning: string;
}

/** A one-item code sequence of `c` (naturalized). */
export function codeSequence(c: Code): Record<string, string>[] {
  return [{ CodeValue: c.value, CodingSchemeDesignator: c.scheme, CodeMeaning: c.meaning }];
}

/** `d` as DICOM DA (YYYYMMDD) and TM (HHMMSS), in UTC. */
export function daTm(d: Date): { date: string; time: string } {
  const iso = d.toISOString();
  return {
    date: iso.slice(0, 10).replaceAll("-", ""),
    time: iso.slice(11, 19).replaceAll(":", ""),
  };
}

/**
 * A Part 10 file of a dataset received as bytes (a C-STORE's data set, in `transferSyntaxUid`):
 * dcmjs writes the File Meta Information and the bytes follow as they came, unparsed.
 */
export function part10FromDataset(
  dataset: Uint8Array | Uint8Array[],
  meta: {
    sopClassUid: string;
    sopInstanceUid: string;
    transferSyntaxUid: string;
    sourceAeTitle?: string;
  },
  implementation: Implementation = IMPLEMENTATION,
): Uint8Array {
  const header = new DicomDict(DicomMetaDictionary.denaturalizeDataset({
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: meta.sopClassUid,
    MediaStorageSOPInstanceUID: meta.sopInstanceUid,
    TransferSyntaxUID: meta.transferSyntaxUid,
    ImplementationClassUID: implementation.classUid,
    ImplementationVersionName: implementation.versionName,
    ...(meta.sourceAeTitle ? { SourceApplicationEntityTitle: meta.sourceAeTitle } : {}),
  }));
  header.dict = {};
  const written = new Uint8Array(header.write());
  // Only the meta group is kept (whatever dcmjs wrote for the empty dataset after it, e.g. an
  // empty deflate stream, goes).
  const metaBytes = written.subarray(0, dataSetOffset(written));
  const parts = Array.isArray(dataset) ? dataset : [dataset];
  const out = new Uint8Array(metaBytes.length + parts.reduce((n, p) => n + p.length, 0));
  out.set(metaBytes, 0);
  let at = metaBytes.length;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Where a Part 10 file's data set starts: after "DICM" (at 128 behind the preamble, or at 0 in a
 * file written without one) and the File Meta group, whose group length (0002,0000) counts it.
 */
export function dataSetOffset(file: Uint8Array): number {
  const dicm = (at: number) =>
    file[at] === 0x44 && file[at + 1] === 0x49 && file[at + 2] === 0x43 && file[at + 3] === 0x4d;
  const meta = dicm(128) ? 132 : dicm(0) ? 4 : -1;
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  // (0002,0000) UL, explicit VR: tag (4), "UL" (2), length 4 (2), then the value.
  if (
    meta < 0 || file.length < meta + 12 || view.getUint16(meta, true) !== 0x0002 ||
    view.getUint16(meta + 2, true) !== 0x0000
  ) {
    throw new RangeError("Not a Part 10 file with a File Meta group length");
  }
  return meta + 12 + view.getUint32(meta + 8, true);
}
