/**
 * @module One DICOM Part 10 instance, parsed with dicom-parser (fast, strict about truncation):
 * the UIDs and attributes the store indexes, and the instance's DICOM JSON metadata. A part that
 * is not Part 10, is truncated, or lacks its UIDs throws a `DicomInputError` with the reason.
 */
import type { DataSet } from "dicom-parser";
import { parseDataSet } from "./dataset.ts";
import { type DicomJson, firstNumber, firstString, toDicomJson } from "./dicom_json.ts";

export class DicomInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DicomInputError";
  }
}

export interface ParsedInstance {
  studyUid: string;
  seriesUid: string;
  sopUid: string;
  sopClassUid: string;
  transferSyntaxUid: string;
  /** The data set as DICOM JSON, bulk data as relative BulkDataURIs. */
  metadata: DicomJson;
  /** Values that were not what their VR says (a STOW warning, not a failure). */
  warnings: string[];
}

const UID = /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$/;

/** True for a syntactically valid UID (PS3.5 9.1): digits and dots, no leading zeros, ≤ 64. */
export function isUid(value: string | undefined): value is string {
  return !!value && value.length <= 64 && UID.test(value);
}

/** Parses a Part 10 file. Throws DicomInputError for anything that cannot be stored. */
export function parseInstance(bytes: Uint8Array): ParsedInstance {
  if (bytes.length < 132 || String.fromCharCode(...bytes.subarray(128, 132)) !== "DICM") {
    throw new DicomInputError("Not a DICOM Part 10 file (no DICM prefix at byte 128)");
  }
  let ds: DataSet;
  let transferSyntaxUid: string;
  let metadata: DicomJson;
  const warnings: string[] = [];
  let metaSop: string | undefined;
  try {
    ds = parseDataSet(bytes);
    transferSyntaxUid = ds.string("x00020010")?.replace(/\0/g, "").trim() ?? "";
    // Strings are decoded by the data set's Specific Character Set (charset.ts).
    metadata = toDicomJson(ds, { warnings });
    metaSop = ds.string("x00020003")?.replace(/\0/g, "").trim();
  } catch (e) {
    const inner = (e as { exception?: unknown })?.exception ?? e;
    const message = typeof inner === "string"
      ? inner
      : inner instanceof Error
      ? inner.message
      : String(inner);
    throw new DicomInputError(`Cannot parse the DICOM data set: ${cleanParserMessage(message)}`);
  }
  if (!transferSyntaxUid) throw new DicomInputError("No Transfer Syntax UID (0002,0010)");
  const uid = (tag: string, name: string): string => {
    const v = firstString(metadata, tag);
    if (!v) throw new DicomInputError(`Missing ${name} (${tag.slice(0, 4)},${tag.slice(4)})`);
    if (!isUid(v)) throw new DicomInputError(`Invalid ${name} "${v}"`);
    return v;
  };
  const studyUid = uid("0020000D", "Study Instance UID");
  const seriesUid = uid("0020000E", "Series Instance UID");
  const sopUid = uid("00080018", "SOP Instance UID");
  const sopClassUid = uid("00080016", "SOP Class UID");
  if (metaSop && metaSop !== sopUid) {
    warnings.push(`Media Storage SOP Instance UID ${metaSop} differs from SOP Instance UID`);
  }
  // Where the receiver keeps what it was given, DICOM JSON still names the syntax it holds.
  metadata["00083002"] = { vr: "UI", Value: [transferSyntaxUid] };
  return { studyUid, seriesUid, sopUid, sopClassUid, transferSyntaxUid, metadata, warnings };
}

function cleanParserMessage(message: string): string {
  const m = message.replace(/^dicomParser[.:]\w+:\s*/, "");
  return /buffer overrun|past the end|end of input/i.test(m) ? `truncated data (${m})` : m;
}

/** Frames in the instance (Number of Frames, 1 when absent and there is pixel data). */
export function frameCount(metadata: DicomJson): number {
  const n = firstNumber(metadata, "00280008");
  if (n && n > 0) return Math.floor(n);
  return metadata["7FE00010"] ? 1 : 0;
}
