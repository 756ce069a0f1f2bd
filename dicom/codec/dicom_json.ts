/**
 * @module A dicom-parser DataSet as the DICOM JSON Model (PS3.18 F.2): every attribute with its VR
 * and typed Value; bulk data (pixel data, large OB/OW/UN…) left out as a `BulkDataURI` that points
 * at a relative `bulkdata/<tag path>` for the server to complete per instance.
 */
import dcmjs from "dcmjs";
import type { DataSet, Element } from "dicom-parser";
import { charsetFor, decodeValue, type DicomCharset } from "./charset.ts";

export type DicomJsonValue = string | number | Record<string, string> | DicomJson;
export interface DicomJsonAttribute {
  vr: string;
  Value?: DicomJsonValue[];
  BulkDataURI?: string;
  InlineBinary?: string;
}
export type DicomJson = Record<string, DicomJsonAttribute>;

/** Binary values up to this size are inlined (base64); larger ones become a BulkDataURI. */
const INLINE_LIMIT = 256;
/** The prefix of BulkDataURIs in stored metadata; the server replaces it per instance. */
export const BULK_PREFIX = "bulkdata:";

const STRING_VRS = new Set(["AE", "AS", "CS", "DA", "DT", "LO", "SH", "TM", "UC", "UI"]);
const TEXT_VRS = new Set(["LT", "ST", "UT", "UR"]);
const BINARY_VRS = new Set(["OB", "OD", "OF", "OL", "OV", "OW", "UN"]);
const NUMBER_READERS: Record<string, [number, keyof DataSet]> = {
  US: [2, "uint16"],
  SS: [2, "int16"],
  UL: [4, "uint32"],
  SL: [4, "int32"],
  FL: [4, "float"],
  FD: [8, "double"],
};

interface DictEntry {
  vr: string;
}
const dictionary = dcmjs.data.DicomMetaDictionary.dictionary as Record<string, DictEntry>;

/** The VR of a tag from the data dictionary, for implicit VR data sets (`UN` when unknown). */
export function dictionaryVr(tag: string): string {
  const group = tag.slice(0, 4);
  const element = tag.slice(4);
  if (element === "0000") return "UL";
  if (parseInt(group, 16) % 2 === 1) return "UN";
  const entry = dictionary[`(${group},${element})`] ??
    dictionary[`(${group.slice(0, 2)}xx,${element})`];
  const vr = entry?.vr ?? "UN";
  if (vr === "ox") return "OW";
  if (vr === "xs") return "US";
  if (vr.length !== 2) return vr.slice(0, 2).toUpperCase();
  return vr;
}

export interface ConvertOptions {
  /**
   * The character set inherited from the enclosing data set (PS3.5 7.5.3); a data set with its
   * own Specific Character Set (0008,0005) uses that. Absent: the default repertoire.
   */
  charset?: DicomCharset;
  /** Problems worth a STOW warning (values that are not what their VR says). */
  warnings: string[];
}

/**
 * The character set of a data set: its own Specific Character Set (0008,0005), else the one it
 * inherits; an unknown defined term is a warning (its values are read as the default repertoire).
 */
export function dataSetCharset(
  ds: DataSet,
  inherited?: DicomCharset,
  warnings?: string[],
): DicomCharset {
  if (!ds.elements.x00080005) return inherited ?? charsetFor(undefined);
  const charset = charsetFor(ds.string("x00080005"));
  for (const term of charset.unknown) {
    const note = `Specific Character Set "${term}" is unknown: read as the default repertoire`;
    if (warnings && !warnings.includes(note)) warnings.push(note);
  }
  return charset;
}

/** Converts a data set (top level or a sequence item); `path` is the tag path so far. */
export function toDicomJson(ds: DataSet, opts: ConvertOptions, path = ""): DicomJson {
  const charset = dataSetCharset(ds, opts.charset, opts.warnings);
  if (charset !== opts.charset) opts = { ...opts, charset };
  const out: DicomJson = {};
  const tags = Object.keys(ds.elements).sort();
  for (const key of tags) {
    const element = ds.elements[key];
    const tag = key.slice(1).toUpperCase();
    if (tag.startsWith("0002") || tag.endsWith("0000") || tag.startsWith("FFFE")) continue;
    let vr = element.vr ?? (element.items ? "SQ" : dictionaryVr(tag));
    if (vr === "UN" && !element.items) {
      // An explicit UN of an attribute the dictionary knows is read as its real VR (PS3.5 6.2.2),
      // as other toolkits do: otherwise its UIDs, dates and names are lost as binary.
      const known = dictionaryVr(tag);
      if (known !== "UN" && known !== "SQ") vr = known;
    }
    out[tag] = attribute(ds, element, tag, vr, opts, path ? `${path}/${tag}` : tag);
  }
  return out;
}

function attribute(
  ds: DataSet,
  el: Element,
  tag: string,
  vr: string,
  opts: ConvertOptions,
  path: string,
): DicomJsonAttribute {
  if (vr === "SQ" || el.items) {
    const items = el.items ?? [];
    return {
      vr: "SQ",
      ...(items.length
        ? {
          Value: items.map((item, i) =>
            item.dataSet ? toDicomJson(item.dataSet, opts, `${path}/${i + 1}`) : {}
          ),
        }
        : {}),
    };
  }
  if (el.length === 0 || el.length === undefined) return { vr };
  if (BINARY_VRS.has(vr) || tag === "7FE00010" || el.encapsulatedPixelData) {
    if (tag === "7FE00010" || el.length > INLINE_LIMIT || el.length === 0xffffffff) {
      return { vr, BulkDataURI: `${BULK_PREFIX}${path}` };
    }
    const bytes = ds.byteArray.subarray(el.dataOffset, el.dataOffset + el.length);
    return { vr, InlineBinary: base64(bytes) };
  }
  const reader = NUMBER_READERS[vr];
  if (reader) {
    const [size, method] = reader;
    const n = Math.floor(el.length / size);
    const fn = ds[method] as (tag: string, index: number) => number;
    const values: number[] = [];
    for (let i = 0; i < n; i++) values.push(fn.call(ds, el.tag, i));
    return { vr, Value: values };
  }
  if (vr === "AT") {
    const values: string[] = [];
    for (let i = 0; i < el.length / 4; i++) {
      const g = ds.uint16(el.tag, i * 2)!;
      const e = ds.uint16(el.tag, i * 2 + 1)!;
      values.push(hex4(g) + hex4(e));
    }
    return { vr, Value: values };
  }
  const decoded = decodeValue(
    opts.charset ?? charsetFor(undefined),
    ds.byteArray.subarray(el.dataOffset, el.dataOffset + el.length),
    vr,
  );
  if (decoded.includes("\uFFFD")) {
    opts.warnings.push(
      `(${tag.slice(0, 4)},${tag.slice(4)}) ${vr} value has bytes its character set does not ` +
        "define (read as U+FFFD)",
    );
  }
  const raw = cleanText(decoded, tag, vr, opts);
  if (TEXT_VRS.has(vr)) {
    const text = raw.replace(/[\0 ]+$/, "");
    return text ? { vr, Value: [text] } : { vr };
  }
  const parts = raw.split("\\").map((s) => s.replace(/^[\0 ]+|[\0 ]+$/g, ""));
  if (vr === "PN") return personName(parts);
  if (vr === "IS" || vr === "DS") {
    const values: (number | null)[] = parts.map((p) => {
      if (p === "") return null;
      const n = Number(p);
      if (!Number.isFinite(n) || (vr === "IS" && !Number.isInteger(n))) {
        opts.warnings.push(
          `(${tag.slice(0, 4)},${tag.slice(4)}) ${vr} value "${p}" is not a number`,
        );
        return null;
      }
      return n;
    });
    return values.some((v) => v !== null) ? { vr, Value: values as number[] } : { vr };
  }
  if (!STRING_VRS.has(vr)) {
    // Unknown VR: keep the text as it is.
    return { vr, Value: [raw.replace(/[\0 ]+$/, "")] };
  }
  return parts.some((p) => p !== "") ? { vr, Value: parts } : { vr };
}

/**
 * Drops NULs inside a value (padding belongs only at the end; Postgres text cannot hold them) and
 * turns other control characters into `?` (text VRs keep tab, CR, LF, FF; ISO 2022 escape
 * sequences are gone once decoded, so a stray ESC is one), with a warning: the value was coerced.
 */
function cleanText(raw: string, tag: string, vr: string, opts: ConvertOptions): string {
  const trimmed = raw.replace(/[\0 ]+$/, "");
  const allowed = TEXT_VRS.has(vr) ? "\t\r\n\f" : "";
  // deno-lint-ignore no-control-regex
  if (!/[\x00-\x1f\x7f]/.test(trimmed)) return raw;
  let changed = false;
  // deno-lint-ignore no-control-regex
  const clean = trimmed.replace(/[\x00-\x1f\x7f]/g, (c) => {
    if (allowed.includes(c)) return c;
    changed = true;
    return c === "\0" ? "" : "?";
  });
  if (changed) {
    opts.warnings.push(`(${tag.slice(0, 4)},${tag.slice(4)}) ${vr} value had control characters`);
  }
  return clean;
}

function personName(parts: string[]): DicomJsonAttribute {
  const values = parts.map((p) => {
    const [alphabetic, ideographic, phonetic] = p.split("=");
    const v: Record<string, string> = {};
    if (alphabetic) v.Alphabetic = alphabetic;
    if (ideographic) v.Ideographic = ideographic;
    if (phonetic) v.Phonetic = phonetic;
    return v;
  });
  return values.some((v) => Object.keys(v).length) ? { vr: "PN", Value: values } : { vr: "PN" };
}

function hex4(n: number): string {
  return n.toString(16).toUpperCase().padStart(4, "0");
}

function base64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

/** The first value of an attribute as a string (PN as its Alphabetic form). */
export function firstString(json: DicomJson, tag: string): string | undefined {
  const v = json[tag]?.Value?.[0];
  if (v === undefined || v === null) return undefined;
  if (typeof v === "object") {
    // A person name: its alphabetic group, else the ideographic or phonetic one (a name written
    // only in kanji is still a name).
    const pn = v as Record<string, string>;
    return pn.Alphabetic || pn.Ideographic || pn.Phonetic || undefined;
  }
  return String(v);
}

/** The first value of an attribute as a number. */
export function firstNumber(json: DicomJson, tag: string): number | undefined {
  const v = json[tag]?.Value?.[0];
  return typeof v === "number" ? v : undefined;
}
