/**
 * @module The values of de-identification (PS3.15 Annex E): replacement UIDs, the per-patient date
 * shift and pseudonym, all derived by HMAC-SHA256 from one export's secret (the same original gives
 * the same replacement within an export, and nothing links two exports); dates shifted by whole
 * days (DA and the date part of DT, at their own precision); dummy values by VR (action D); the
 * cleaning of free-text descriptors (Clean Descriptors Option); and which instances risk
 * identifying text burned into their pixels.
 */
import { createHmac } from "node:crypto";

/** The secrets and caches of one export: every instance of it goes through one session. */
export class DeidKeys {
  readonly #secret: Uint8Array;
  readonly #uids = new Map<string, string>();
  readonly #shifts = new Map<string, number>();

  constructor(secret: Uint8Array = crypto.getRandomValues(new Uint8Array(32))) {
    this.#secret = secret;
  }

  #hmac(label: string): Uint8Array {
    return createHmac("sha256", this.#secret).update(label).digest();
  }

  /**
   * The replacement of a UID: `2.25.` and the first 128 bits of HMAC-SHA256(secret, uid) as a
   * decimal integer (PS3.5 B.2), at most 44 characters.
   */
  uid(original: string): string {
    let uid = this.#uids.get(original);
    if (!uid) {
      const hash = this.#hmac(`uid:${original}`);
      let value = 0n;
      for (let i = 0; i < 16; i++) value = (value << 8n) | BigInt(hash[i]);
      uid = `2.25.${value.toString(10)}`;
      this.#uids.set(original, uid);
    }
    return uid;
  }

  /** Days to add to every date of the patient `key` (1 to 1095 days earlier; never 0). */
  shiftDays(key: string): number {
    let days = this.#shifts.get(key);
    if (days === undefined) {
      const hash = this.#hmac(`date-shift:${key}`);
      days = -(1 + (((hash[0] << 8) | hash[1]) % 1095));
      this.#shifts.set(key, days);
    }
    return days;
  }

  /** The Patient ID that replaces `key`'s: `ANON-` and 12 hex digits of its HMAC. */
  pseudonym(key: string): string {
    const hash = this.#hmac(`patient:${key}`);
    return `ANON-${
      Array.from(hash.subarray(0, 6), (b) => b.toString(16).padStart(2, "0")).join("")
    }`
      .toUpperCase();
  }
}

/** True for UIDs of the DICOM Standard itself (SOP classes, transfer syntaxes, codes). */
export function standardUid(uid: string): boolean {
  return uid.startsWith("1.2.840.10008.");
}

const DAY_MS = 86_400_000;

/** A DA value (YYYYMMDD, or the ACR-NEMA YYYY.MM.DD) moved by `days`; undefined when invalid. */
export function shiftDA(value: string, days: number): string | undefined {
  const m = /^(\d{4})\.?(\d{2})\.?(\d{2})$/.exec(value.trim());
  if (!m) return undefined;
  return moveDate(+m[1], +m[2], +m[3], days, 8);
}

/**
 * A DT value (YYYY[MM[DD[HH[MM[SS[.F]]]]]][&ZZXX]) with its date part moved by `days`, keeping its
 * precision, time of day and offset; undefined when invalid.
 */
export function shiftDT(value: string, days: number): string | undefined {
  const m = /^(\d{4})(\d{2})?(\d{2})?(\d{0,6}(?:\.\d{1,6})?)?([+-]\d{4})?$/.exec(value.trim());
  if (!m) return undefined;
  const digits = 4 + (m[2] ? 2 : 0) + (m[3] ? 2 : 0);
  const date = moveDate(+m[1], m[2] ? +m[2] : 1, m[3] ? +m[3] : 1, days, digits);
  return date === undefined ? undefined : `${date}${m[4] ?? ""}${m[5] ?? ""}`;
}

function moveDate(y: number, mo: number, d: number, days: number, digits: number) {
  if (mo < 1 || mo > 12 || d < 1 || d > 31) return undefined;
  const t = Date.UTC(y, mo - 1, d);
  const check = new Date(t);
  if (check.getUTCDate() !== d || check.getUTCMonth() !== mo - 1) return undefined;
  const moved = new Date(t + days * DAY_MS);
  const text = `${String(moved.getUTCFullYear()).padStart(4, "0")}${
    String(moved.getUTCMonth() + 1).padStart(2, "0")
  }${String(moved.getUTCDate()).padStart(2, "0")}`;
  return text.slice(0, digits);
}

/** The dummy that action D puts in a value of `vr` (a string, a number, or bytes). */
export function dummyValue(vr: string): string | number | ArrayBuffer {
  switch (vr) {
    case "DA":
      return "19000101";
    case "DT":
      return "19000101000000";
    case "TM":
      return "000000";
    case "AS":
      return "000Y";
    case "DS":
    case "IS":
      return "0";
    case "UR":
      return "urn:anonymized";
    case "US":
    case "SS":
    case "UL":
    case "SL":
    case "FL":
    case "FD":
    case "UV":
    case "SV":
      return 0;
    case "OB":
    case "OD":
    case "OF":
    case "OL":
    case "OV":
    case "OW":
    case "UN":
      return new ArrayBuffer(2);
    default:
      // AE, CS, LO, LT, PN, SH, ST, UC, UT: fits every one of them (CS: upper case, ≤ 16).
      return "ANONYMIZED";
  }
}

/**
 * Free text cleaned of what could identify (Clean Descriptors Option): the identifying values of
 * the data set (names, IDs, accession number, institution…) wherever they appear, anything shaped
 * like a date, runs of five or more digits (record numbers, telephone numbers) and e-mail
 * addresses. What is left of the text, its medical description, stays.
 */
export function cleanText(text: string, identifiers: readonly string[]): string {
  let out = text;
  for (const id of identifiers) {
    if (id.length < 2) continue;
    const escaped = id.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    out = out.replace(new RegExp(`(?<![\\p{L}\\p{N}])${escaped}(?![\\p{L}\\p{N}])`, "giu"), " ");
  }
  return out
    .replace(/\S+@\S+\.\S+/g, " ")
    .replace(/\b\d{1,4}[-./]\d{1,2}[-./]\d{1,4}\b/g, " ")
    .replace(/\d{5,}/g, " ")
    .replace(/\s+/g, " ")
    .replace(/^[\s,;:.^\\/-]+|[\s,;:^\\/-]+$/g, "")
    .trim();
}

/** The words and values of a data set that cleaning removes from free text. */
export function identifyingWords(values: readonly string[]): string[] {
  const words = new Set<string>();
  for (const v of values) {
    const whole = v.replace(/\^+/g, " ").trim();
    if (whole.length >= 2) words.add(whole);
    for (const part of v.split(/[\^=\s,]+/)) if (part.length >= 2) words.add(part);
  }
  // Longest first, so a full name goes before its parts.
  return [...words].sort((a, b) => b.length - a.length);
}

/**
 * Modalities whose images often carry identifying text in their pixels (ultrasound, angiography,
 * endoscopy, photography, secondary capture, scanned documents, slide labels).
 */
export const BURNED_IN_MODALITIES: ReadonlySet<string> = new Set([
  "US",
  "XA",
  "RF",
  "ES",
  "XC",
  "GM",
  "OP",
  "IO",
  "PX",
  "SM",
  "OT",
  "DOC",
  "SC",
]);

/** What an instance says about burned-in text (from its index metadata or its data set). */
export interface BurnedInFacts {
  burnedInAnnotation?: string;
  modality?: string;
  sopClassUid?: string;
  hasPixelData: boolean;
}

/**
 * Why an instance may carry identifying text in its pixels, or null: Burned In Annotation
 * (0028,0301) YES, or absent on a modality (or a Secondary Capture SOP class) likely to carry it.
 * Such an instance is flagged, and left out of an export unless the caller includes it.
 */
export function burnedInRisk(f: BurnedInFacts): string | null {
  if (!f.hasPixelData) return null;
  const flag = f.burnedInAnnotation?.trim().toUpperCase();
  if (flag === "YES") return "Burned In Annotation (0028,0301) is YES";
  if (flag === "NO") return null;
  const modality = f.modality?.trim().toUpperCase() ?? "";
  if (BURNED_IN_MODALITIES.has(modality)) {
    return `Burned In Annotation (0028,0301) is absent and modality ${modality} often carries burned-in text`;
  }
  if (f.sopClassUid?.startsWith("1.2.840.10008.5.1.4.1.1.7")) {
    return "Burned In Annotation (0028,0301) is absent on a Secondary Capture image";
  }
  return null;
}
