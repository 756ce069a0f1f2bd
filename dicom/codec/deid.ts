/**
 * @module De-identification of one Part 10 instance (PS3.15 Annex E): the Basic Application Level
 * Confidentiality Profile, with the Retain Longitudinal Temporal Information with Modified Dates
 * and Clean Descriptors Options when asked (`deid_profile.ts` holds Table E.1-1). The data set is
 * read and written with dcmjs (in its own transfer syntax; a deflated one is written Explicit VR
 * Little Endian), sequences are processed recursively, private attributes removed, UIDs replaced
 * consistently within one export (`DeidKeys`), new File Meta Information written; the Pixel Data
 * element is copied byte for byte from the input (native or encapsulated, fragments and offset
 * table as they were). Patient Identity Removed, De-identification Method and its Code Sequence
 * (CID 7050) and Longitudinal Temporal Information Modified are set.
 */
import dcmjs from "dcmjs";
import type { DataSet } from "dicom-parser";
import { parseDataSet } from "./dataset.ts";
import { dictionaryVr } from "./dicom_json.ts";
import { IMPLEMENTATION } from "./part10.ts";
import {
  type DeidOptions,
  profileRow,
  repeatingGroup,
  resolve,
  type Resolved,
} from "./deid_profile.ts";
import {
  burnedInRisk,
  cleanText,
  DeidKeys,
  dummyValue,
  identifyingWords,
  shiftDA,
  shiftDT,
  standardUid,
} from "./deid_values.ts";

const { DicomDict, DicomMessage } = dcmjs.data;
dcmjs.log.getLogger("validation.dcmjs").setLevel("silent");

export type { DeidOptions } from "./deid_profile.ts";
export { burnedInRisk, DeidKeys } from "./deid_values.ts";

/** Both options: the profile of exports (`deidentify=basic`). */
export const EXPORT_OPTIONS: DeidOptions = { modifiedDates: true, cleanDescriptors: true };

/** One export: its options and keys; every instance of the export goes through the same one. */
export interface DeidSession {
  options: DeidOptions;
  keys: DeidKeys;
}

export function createDeidSession(
  options: DeidOptions = EXPORT_OPTIONS,
  secret?: Uint8Array,
): DeidSession {
  return { options, keys: new DeidKeys(secret) };
}

export class DeidError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DeidError";
  }
}

export interface DeidResult {
  /** The de-identified Part 10 file. */
  bytes: Uint8Array;
  studyUid: string;
  seriesUid: string;
  sopUid: string;
  sopClassUid: string;
  transferSyntaxUid: string;
  /** Why the pixels may hold identifying text (`burnedInRisk`), or null. */
  burnedIn: string | null;
  /** Private attributes removed (all levels). */
  privateRemoved: number;
  /** Whose dates these are (the key of the date shift and the pseudonym). */
  patientKey: string;
  /** The patient's identifying words (names, IDs), for cleaning text that goes with the export. */
  identifiers: readonly string[];
}

interface Element {
  vr: string;
  Value?: unknown[];
  _rawValue?: unknown;
}
type Dataset = Record<string, Element>;

const DEFLATED = "1.2.840.10008.1.2.1.99";
const IMPLICIT = "1.2.840.10008.1.2";
const EXPLICIT = "1.2.840.10008.1.2.1";
const PIXEL_DATA = "7FE00010";
/** Registry identifiers kept whatever their root: coding scheme, context and mapping resource. */
const REGISTRY_UIDS = new Set(["0008010C", "0008010D", "00080117", "00080118"]);
const METHOD_CODES = [
  ["113100", "Basic Application Confidentiality Profile", "basic"],
  ["113107", "Retain Longitudinal With Modified Dates Option", "modifiedDates"],
  ["113105", "Clean Descriptors Option", "cleanDescriptors"],
] as const;
/** Identifying values gathered for the cleaning of free text. */
const IDENTIFYING = (
  "00100010 00100020 00101000 00101001 00101005 00101060 00080050 00080080 00080081 00080090 " +
  "00081010 00081040 00081048 00081050 00081060 00081070 00100030 00101040 00102154 00200010 " +
  "00321032 00400006 00401001 00380010"
).split(" ");

/** The methods applied, as De-identification Method (0012,0063) values (LO, ≤ 64 each). */
export function methodNames(options: DeidOptions): string[] {
  return METHOD_CODES.filter(([, , k]) => k === "basic" || options[k]).map(([, name]) => name);
}

/** De-identifies a Part 10 file; throws DeidError when it cannot be read. */
export function deidentifyPart10(bytes: Uint8Array, session: DeidSession): DeidResult {
  const { meta, dict } = read(bytes);
  const inputSyntax = text(meta["00020010"]);
  if (!inputSyntax) throw new DeidError("No Transfer Syntax UID (0002,0010)");
  const syntax = inputSyntax === DEFLATED ? EXPLICIT : inputSyntax;
  const parsed = parseInput(bytes);
  const pixel = rawPixelData(parsed, inputSyntax);
  delete dict[PIXEL_DATA];
  const facts = {
    burnedInAnnotation: text(dict["00280301"]),
    modality: text(dict["00080060"]),
    sopClassUid: text(dict["00080016"]),
    hasPixelData: !!pixel,
  };
  const identifiers = identifyingWords(IDENTIFYING.flatMap((t) => strings(dict[t])));
  // Whose dates move together: the Patient ID (with its issuer), else the Patient's Name.
  const id = text(dict["00100020"]);
  const patientKey = id
    ? `id:${id}^${text(dict["00100021"]) ?? ""}`
    : `name:${strings(dict["00100010"]).join("=")}`;
  const walk = new Walk(session, identifiers, patientKey);
  walk.dataset(dict, true);
  stamp(dict, session.options);
  const sopUid = text(dict["00080018"]);
  const sopClassUid = text(dict["00080016"]) ?? text(meta["00020002"]);
  if (!sopUid || !sopClassUid) throw new DeidError("No SOP Instance UID or SOP Class UID");
  const file = new DicomDict({
    "00020001": { vr: "OB", Value: [new Uint8Array([0, 1]).buffer] },
    "00020002": { vr: "UI", Value: [sopClassUid] },
    "00020003": { vr: "UI", Value: [sopUid] },
    "00020010": { vr: "UI", Value: [syntax] },
    "00020012": { vr: "UI", Value: [IMPLEMENTATION.classUid] },
    "00020013": { vr: "SH", Value: [IMPLEMENTATION.versionName] },
  });
  file.dict = dict;
  const written = new Uint8Array(file.write({ allowInvalidVRLength: true }));
  assertNoUidLeft(parsed, pixel, written, walk.kept);
  const out = new Uint8Array(written.length + (pixel?.length ?? 0));
  out.set(written);
  if (pixel) out.set(pixel, written.length);
  return {
    bytes: out,
    studyUid: text(dict["0020000D"]) ?? "",
    seriesUid: text(dict["0020000E"]) ?? "",
    sopUid,
    sopClassUid,
    transferSyntaxUid: syntax,
    burnedIn: burnedInRisk(facts),
    privateRemoved: walk.privateRemoved,
    patientKey,
    identifiers,
  };
}

function read(bytes: Uint8Array): { meta: Dataset; dict: Dataset } {
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length);
  const attempt = (ignoreErrors: boolean) => {
    const d = DicomMessage.readFile(buffer as ArrayBuffer, { ignoreErrors });
    return { meta: d.meta as Dataset, dict: d.dict as Dataset };
  };
  try {
    return attempt(false);
  } catch (e) {
    // dcmjs refuses multi-valued character sets (ISO 2022) unless errors are ignored: the strings
    // are then decoded with the first, which can only garble what is kept (descriptions).
    if (/character set/i.test(String(e))) return attempt(true);
    throw new DeidError(`Cannot read the DICOM data set: ${e instanceof Error ? e.message : e}`);
  }
}

function parseInput(bytes: Uint8Array): DataSet {
  try {
    return parseDataSet(bytes);
  } catch (e) {
    const inner = (e as { exception?: unknown })?.exception ?? e;
    throw new DeidError(`Cannot read the DICOM data set: ${String(inner)}`);
  }
}

/**
 * The top-level Pixel Data element (header and value) as it is in the file, or undefined. Deflated
 * files are inflated first (they are written Explicit VR Little Endian, which is what they hold).
 */
function rawPixelData(ds: DataSet, syntax: string): Uint8Array | undefined {
  const el = ds.elements.x7fe00010;
  if (!el) return undefined;
  const header = syntax === IMPLICIT ? 8 : 12;
  const start = el.dataOffset - header;
  const end = el.dataOffset + el.length;
  const b = ds.byteArray;
  const big = syntax === "1.2.840.10008.1.2.2";
  const tagOk = big
    ? b[start] === 0x7f && b[start + 1] === 0xe0 && b[start + 2] === 0x00 && b[start + 3] === 0x10
    : b[start] === 0xe0 && b[start + 1] === 0x7f && b[start + 2] === 0x10 && b[start + 3] === 0x00;
  if (start < 0 || end > b.length || !tagOk) {
    throw new DeidError("The Pixel Data element could not be located in the file");
  }
  return b.slice(start, end);
}

/** UID-shaped text (leading zeros too: invalid UIDs identify as well): root 0, 1 or 2, 4+ parts. */
const UID_SHAPE = /^[0-2](\.\d+){3,}$/;

/**
 * The safety net: no instance UID of the input may be left in what dcmjs wrote. The input's UIDs
 * are those dicom-parser (an independent reader) finds in UI attributes, sequences included, and
 * any UID-shaped text outside the Pixel Data (what no reader parsed, e.g. an item encoded in
 * another VR form, which dcmjs keeps as UN bytes). Standard and registry UIDs the walk kept are
 * allowed. An instance that fails is refused rather than exported with what it hides.
 */
function assertNoUidLeft(
  input: DataSet,
  pixel: Uint8Array | undefined,
  written: Uint8Array,
  kept: ReadonlySet<string>,
): void {
  const originals = new Set<string>();
  const collect = (ds: DataSet) => {
    for (const [key, el] of Object.entries(ds.elements)) {
      if (el.items) { for (const item of el.items) if (item.dataSet) collect(item.dataSet); }
      const tag = key.slice(1).toUpperCase();
      if (key === "x7fe00010" || (el.vr ?? dictionaryVr(tag)) !== "UI") continue;
      for (const v of (ds.string(key) ?? "").split("\\")) {
        const uid = v.replace(/[\0\s]+$/, "").trim();
        if (uid.length >= 8 && uid.includes(".")) originals.add(uid);
      }
    }
  };
  collect(input);
  const latin1 = new TextDecoder("latin1");
  const b = input.byteArray;
  const el = input.elements.x7fe00010;
  const head = pixel && el ? b.subarray(0, el.dataOffset) : b;
  const tail = pixel && el ? b.subarray(el.dataOffset + el.length) : new Uint8Array(0);
  for (const part of [head, tail]) {
    for (const t of latin1.decode(part).match(/[0-9.]+/g) ?? []) {
      if (t.length >= 10 && UID_SHAPE.test(t)) originals.add(t);
    }
  }
  const tokens = new Set(latin1.decode(written).match(/[0-9.]+/g) ?? []);
  for (const uid of originals) {
    if (tokens.has(uid) && !kept.has(uid) && !standardUid(uid)) {
      throw new DeidError(
        `UID ${
          uid.slice(0, 16)
        }… of the input would survive de-identification: part of the data set could not be read faithfully`,
      );
    }
  }
}

/** One pass over a data set and its sequences. */
class Walk {
  privateRemoved = 0;
  /** The UIDs kept as they were (standard and registry ones). */
  readonly kept = new Set<string>();
  readonly #days: number;

  constructor(
    readonly session: DeidSession,
    readonly identifiers: string[],
    readonly patientKey: string,
  ) {
    this.#days = session.keys.shiftDays(patientKey);
  }

  dataset(ds: Dataset, top: boolean): void {
    for (const tag of Object.keys(ds)) {
      const el = ds[tag];
      const group = parseInt(tag.slice(0, 4), 16);
      if (group % 2 === 1) {
        delete ds[tag];
        this.privateRemoved++;
        continue;
      }
      // Group 0002 belongs in the File Meta Information only; after the Pixel Data (copied last)
      // only trailing padding, signatures and retired coefficients can follow.
      // Curves and overlays go whole: Overlay Data (60xx,3000) is X, and a plane without it is
      // not an overlay any more.
      if (group === 2 || (top && tag > PIXEL_DATA) || repeatingGroup(tag)) {
        delete ds[tag];
        continue;
      }
      const vr = el.vr;
      const row = profileRow(tag);
      const action: Resolved = row ? resolve(row, vr, this.session.options) : this.#unlisted(el);
      this.#apply(ds, tag, el, action, row?.basic);
    }
  }

  /** Attributes the table does not list: kept, but for UIDs, dates and sequences. */
  #unlisted(el: Element): Resolved {
    if (el.vr === "SQ") return "recurse";
    if (el.vr === "UI") return "uid";
    if (el.vr === "DA" || el.vr === "DT") {
      return this.session.options.modifiedDates ? "shift" : "empty";
    }
    return "keep";
  }

  #apply(ds: Dataset, tag: string, el: Element, action: Resolved, basic?: string): void {
    const values = el.Value ?? [];
    switch (action) {
      case "remove":
        delete ds[tag];
        return;
      case "empty":
        ds[tag] = { vr: el.vr, Value: [] };
        return;
      case "dummy":
        ds[tag] = { vr: el.vr, Value: [this.#dummy(tag, el.vr)] };
        return;
      case "uid":
        ds[tag] = {
          vr: el.vr,
          Value: values.map((v) => {
            if (typeof v !== "string" || !v) return v;
            if (!standardUid(v) && !REGISTRY_UIDS.has(tag)) return this.session.keys.uid(v);
            this.kept.add(v);
            return v;
          }),
        };
        return;
      case "shift": {
        const shift = el.vr === "DA" ? shiftDA : shiftDT;
        const moved = values.map((v) => typeof v === "string" && v ? shift(v, this.#days) : v);
        ds[tag] = { vr: el.vr, Value: moved.every((v) => v !== undefined) ? moved : [] };
        return;
      }
      case "clean": {
        const cleaned = values.map((v) => cleanText(asText(v), this.identifiers)).filter(Boolean);
        if (cleaned.length) {
          ds[tag] = {
            vr: el.vr,
            Value: el.vr === "PN" ? cleaned.map((a) => ({ Alphabetic: a })) : cleaned,
          };
        } else if (basic === "D") ds[tag] = { vr: el.vr, Value: [this.#dummy(tag, el.vr)] };
        else if (basic?.startsWith("X")) delete ds[tag];
        else ds[tag] = { vr: el.vr, Value: [] };
        return;
      }
      case "recurse":
        if (tag === "00401101") {
          // Person Identification Code Sequence (D): a dummy code, not the person's.
          ds[tag] = { vr: "SQ", Value: [dummyCode()] };
          return;
        }
        for (const item of values) this.dataset(item as Dataset, false);
        return;
      case "keep":
        if (el.vr === "SQ") { for (const item of values) this.dataset(item as Dataset, false); }
        return;
    }
  }

  #dummy(tag: string, vr: string): unknown {
    if (tag === "00100020") return this.session.keys.pseudonym(this.patientKey);
    const v = dummyValue(vr);
    return vr === "PN" ? { Alphabetic: v } : v;
  }
}

function dummyCode(): Dataset {
  return {
    "00080100": { vr: "SH", Value: ["ANONYMIZED"] },
    "00080102": { vr: "SH", Value: ["99DEID"] },
    "00080104": { vr: "LO", Value: ["ANONYMIZED"] },
  };
}

/** Patient Identity Removed, the methods and their codes, and what became of the dates. */
function stamp(dict: Dataset, options: DeidOptions): void {
  dict["00120062"] = { vr: "CS", Value: ["YES"] };
  dict["00120063"] = { vr: "LO", Value: methodNames(options) };
  dict["00120064"] = {
    vr: "SQ",
    Value: METHOD_CODES.filter(([, , k]) => k === "basic" || options[k]).map(([code, meaning]) => ({
      "00080100": { vr: "SH", Value: [code] },
      "00080102": { vr: "SH", Value: ["DCM"] },
      "00080104": { vr: "LO", Value: [meaning] },
    })),
  };
  dict["00280303"] = { vr: "CS", Value: [options.modifiedDates ? "MODIFIED" : "REMOVED"] };
}

function asText(v: unknown): string {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && "Alphabetic" in v) {
    return String((v as { Alphabetic: string }).Alphabetic);
  }
  return v === undefined || v === null ? "" : String(v);
}

/** The values of a string attribute as text (PN as its Alphabetic group). */
function strings(el: Element | undefined): string[] {
  return (el?.Value ?? []).map(asText).map((s) => s.trim()).filter(Boolean);
}

function text(el: Element | undefined): string | undefined {
  return strings(el)[0];
}
