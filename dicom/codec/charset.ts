/**
 * @module DICOM character sets (PS3.5 6.1, PS3.3 C.12.1.1.2): the bytes of a value as Unicode by
 * Specific Character Set (0008,0005). Every defined term: the single-byte sets with and without
 * code extensions, ISO 2022 escape sequences (PS3.5 6.1.2.5) switching G0 and G1 between them and
 * the double-byte JIS X 0208, JIS X 0212, KS X 1001 and GB 2312, and the stand-alone UTF-8,
 * GB18030 and GBK. The code tables come from the platform's WHATWG TextDecoder, read once per set;
 * only the escape sequence state machine is ours. Undecodable bytes become U+FFFD.
 */

/** One graphic character set: a byte → code point table, or a 94 × 94 double-byte one (0: none). */
type GraphicSet = { double: false; codes: Uint16Array } | { double: true; codes: Uint16Array };

const REPLACEMENT = 0xfffd;
const ESC = 0x1b;

/** Single-byte sets: WHATWG label (0xA0–0xFF read from it; 0x80–0x9F are C1 controls). */
const SINGLE_LABELS: Record<string, string> = {
  latin2: "iso-8859-2",
  latin3: "iso-8859-3",
  latin4: "iso-8859-4",
  cyrillic: "iso-8859-5",
  arabic: "iso-8859-6",
  greek: "iso-8859-7",
  hebrew: "iso-8859-8",
  latin5: "iso-8859-9",
  thai: "windows-874",
  latin9: "iso-8859-15",
};

/**
 * Where the WHATWG (Microsoft) JIS X 0208 mapping differs from the standard JIS X 0208 ↔ Unicode
 * one (Unicode's JIS0208.TXT, glibc's iconv, Python and so pydicom, dcmtk): kept standard.
 */
const JIS0208_FIXES: [number, number][] = [
  [0x2141, 0x301c], // WAVE DASH, not FULLWIDTH TILDE
  [0x2142, 0x2016], // DOUBLE VERTICAL LINE, not PARALLEL TO
  [0x215d, 0x2212], // MINUS SIGN, not FULLWIDTH HYPHEN-MINUS
  [0x2171, 0x00a2], // CENT SIGN
  [0x2172, 0x00a3], // POUND SIGN
  [0x224c, 0x00ac], // NOT SIGN
];

/** Double-byte sets: WHATWG label, bytes before each EUC pair, fixes. */
const DOUBLE_SOURCES: Record<string, [string, number[], [number, number][]]> = {
  jis0208: ["euc-jp", [], JIS0208_FIXES],
  jis0212: ["euc-jp", [0x8f], []],
  ksx1001: ["euc-kr", [], []],
  gb2312: ["gbk", [], []],
};

const sets = new Map<string, GraphicSet>();

/** A graphic set by name, its table made on first use. */
function graphicSet(name: string): GraphicSet {
  let set = sets.get(name);
  if (!set) {
    set = makeSet(name);
    sets.set(name, set);
  }
  return set;
}

function makeSet(name: string): GraphicSet {
  if (name in DOUBLE_SOURCES) return { double: true, codes: doubleTable(name) };
  const codes = new Uint16Array(256);
  for (let b = 0; b < 0x100; b++) codes[b] = b;
  if (name === "ascii" || name === "latin1") return { double: false, codes };
  if (name === "romaji") return { double: false, codes }; // 0x5C and 0x7E as ASCII, as Shift_JIS
  if (name === "katakana" || name === "katakanaG0") {
    // JIS X 0201 katakana (ISO-IR 13): 0xA1–0xDF in G1, 0x21–0x5F in G0 → U+FF61–U+FF9F.
    const [from, to, start] = name === "katakana" ? [0x80, 0xff, 0xa1] : [0x21, 0x7e, 0x21];
    for (let b = from; b <= to; b++) {
      codes[b] = b >= start && b < start + 63 ? 0xff61 + b - start : REPLACEMENT;
    }
    return { double: false, codes };
  }
  const label = SINGLE_LABELS[name];
  if (!label) throw new Error(`no character set ${name}`);
  const high = new Uint8Array(96).map((_, i) => 0xa0 + i);
  const text = new TextDecoder(label).decode(high);
  for (let i = 0; i < 96; i++) codes[0xa0 + i] = text.charCodeAt(i);
  return { double: false, codes };
}

/** The 94 × 94 table of a double-byte set, read from its EUC form through TextDecoder. */
function doubleTable(name: string): Uint16Array {
  const [label, prefix, fixes] = DOUBLE_SOURCES[name];
  const stride = prefix.length + 3;
  const euc = new Uint8Array(94 * 94 * stride);
  let at = 0;
  for (let a = 0; a < 94; a++) {
    for (let b = 0; b < 94; b++) {
      for (const p of prefix) euc[at++] = p;
      euc[at++] = 0xa1 + a;
      euc[at++] = 0xa1 + b;
      euc[at++] = 0x0a;
    }
  }
  const chars = new TextDecoder(label).decode(euc).split("\n");
  const codes = new Uint16Array(94 * 94);
  for (let i = 0; i < 94 * 94; i++) {
    const c = chars[i];
    const code = c.length === 1 ? c.charCodeAt(0) : REPLACEMENT;
    // Private-use results (GBK's user-defined rows) are not characters of the set.
    codes[i] = code === REPLACEMENT || (code >= 0xe000 && code <= 0xf8ff) ? 0 : code;
  }
  for (const [jis, code] of fixes) codes[((jis >> 8) - 0x21) * 94 + (jis & 0xff) - 0x21] = code;
  return codes;
}

/** Escape sequences (PS3.3 Tables C.12-3 and C.12-4, and their ISO 2022 kin) → [G0/G1, set]. */
const ESCAPES: Record<string, [0 | 1, string]> = {
  "(B": [0, "ascii"],
  "(J": [0, "romaji"],
  "(I": [0, "katakanaG0"],
  ")I": [1, "katakana"],
  "-A": [1, "latin1"],
  "-B": [1, "latin2"],
  "-C": [1, "latin3"],
  "-D": [1, "latin4"],
  "-F": [1, "greek"],
  "-G": [1, "arabic"],
  "-H": [1, "hebrew"],
  "-L": [1, "cyrillic"],
  "-M": [1, "latin5"],
  "-T": [1, "thai"],
  "-b": [1, "latin9"],
  "$@": [0, "jis0208"],
  "$B": [0, "jis0208"],
  "$(B": [0, "jis0208"],
  "$(D": [0, "jis0212"],
  "$A": [0, "gb2312"],
  "$(A": [0, "gb2312"],
  "$(C": [0, "ksx1001"],
  "$)A": [1, "gb2312"],
  "$)C": [1, "ksx1001"],
  "$)B": [1, "jis0208"],
  "$)D": [1, "jis0212"],
};

/** What a defined term sets up before any escape sequence: [G0, G1] (G1 null: none). */
const TERMS: Record<string, [string, string | null]> = {
  "6": ["ascii", null],
  "100": ["ascii", "latin1"],
  "101": ["ascii", "latin2"],
  "109": ["ascii", "latin3"],
  "110": ["ascii", "latin4"],
  "126": ["ascii", "greek"],
  "127": ["ascii", "arabic"],
  "138": ["ascii", "hebrew"],
  "144": ["ascii", "cyrillic"],
  "148": ["ascii", "latin5"],
  "166": ["ascii", "thai"],
  "203": ["ascii", "latin9"],
  "13": ["romaji", "katakana"],
  // G0 double-byte sets are only invoked by escape sequences; as value 1, ASCII stays in G0.
  "87": ["ascii", null],
  "159": ["ascii", null],
  "149": ["ascii", "ksx1001"],
  "58": ["ascii", "gb2312"],
};

/** The stand-alone sets (PS3.3 Table C.12-5): no code extensions, decoded whole. */
const STAND_ALONE: Record<string, string> = {
  "ISO_IR 192": "utf-8",
  GB18030: "gb18030",
  GBK: "gbk",
};

/** Which bytes end a value or component and so reset the code extension state (PS3.5 6.1.2.5.3). */
export type Delimiters = "pn" | "strings" | "text";
const DELIMITERS: Record<Delimiters, Uint8Array> = {
  pn: byteFlags([0x5e, 0x3d, 0x5c, 0x0d, 0x0a, 0x09, 0x0c]), // ^ = \ CR LF TAB FF
  strings: byteFlags([0x5c, 0x0d, 0x0a, 0x09, 0x0c]), // \ CR LF TAB FF
  text: byteFlags([0x0d, 0x0a, 0x09, 0x0c]), // CR LF TAB FF
};

function byteFlags(bytes: number[]): Uint8Array {
  const flags = new Uint8Array(256);
  for (const b of bytes) flags[b] = 1;
  return flags;
}

/** The text decoding of one Specific Character Set value. */
export interface DicomCharset {
  /** The defined terms, normalized; an empty value 1 as "". */
  readonly terms: readonly string[];
  /** Terms it does not know (decoded as the default repertoire). */
  readonly unknown: readonly string[];
  /** The bytes of one value of a VR affected by the character set, as Unicode. */
  decode(bytes: Uint8Array, delimiters?: Delimiters): string;
}

const UTF16 = new TextDecoder("utf-16le", { ignoreBOM: true });
const ASCII = new TextDecoder("utf-8");

/** ISO 8859-1 (exactly; WHATWG's "latin1" is windows-1252): one code point per byte. */
export function decodeLatin1(bytes: Uint8Array): string {
  let ascii = true;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) return ASCII.decode(bytes);
  const codes = new Uint16Array(bytes.length);
  codes.set(bytes);
  return UTF16.decode(codes);
}

/**
 * A defined term as the standard spells it, from common misspellings ("ISO_IR100", "ISO IR 100",
 * "ISO-2022-IR-87", any case); "UTF-8" is ISO_IR 192.
 */
export function normalizeTerm(term: string): string {
  const t = term.trim().toUpperCase();
  const ext = /^ISO[ _-]?2022[ _-]?(?:IR[ _-]?)?(\d+)$/.exec(t);
  if (ext) return `ISO 2022 IR ${ext[1]}`;
  const plain = /^ISO[ _-]?IR[ _-]?(\d+)$/.exec(t);
  if (plain) return `ISO_IR ${plain[1]}`;
  if (t === "UTF-8" || t === "UTF8") return "ISO_IR 192";
  if (t === "ISO 2022 GBK") return "GBK";
  return t;
}

const cache = new Map<string, DicomCharset>();

/**
 * The decoding for a Specific Character Set (0008,0005) value as read (backslash-separated;
 * absent or empty: the default repertoire), made once per distinct value.
 */
export function charsetFor(specificCharacterSet: string | undefined): DicomCharset {
  const key = specificCharacterSet ?? "";
  let charset = cache.get(key);
  if (!charset) {
    if (cache.size >= 256) cache.clear();
    charset = makeCharset(key);
    cache.set(key, charset);
  }
  return charset;
}

function makeCharset(value: string): DicomCharset {
  const terms = value.replace(/[\0 ]+$/, "").split("\\").map(normalizeTerm);
  const unknown: string[] = [];
  const known = (t: string) => t === "" || t in STAND_ALONE || termNumber(t) !== undefined;
  for (const t of terms) if (!known(t)) unknown.push(t);
  const first = terms[0];
  if (first in STAND_ALONE) {
    // Code extensions cannot follow a stand-alone set: any further values are ignored.
    // A byte order mark is kept, as pydicom keeps it.
    const decoder = new TextDecoder(STAND_ALONE[first], { ignoreBOM: true });
    return { terms, unknown, decode: (bytes) => decoder.decode(bytes) };
  }
  const [g0, g1] = TERMS[termNumber(first) ?? "6"];
  const initial: State = { g0: graphicSet(g0), g1: g1 ? graphicSet(g1) : null };
  return {
    terms,
    unknown,
    decode: (bytes, delimiters = "strings") => decodeIso2022(bytes, initial, delimiters),
  };
}

/** The registration number of a term this module knows ("ISO_IR 100", "ISO 2022 IR 87" → …). */
function termNumber(term: string): string | undefined {
  if (term === "") return "6";
  const m = /^ISO(?:_| 2022 )IR (\d+)$/.exec(term);
  return m && m[1] in TERMS ? m[1] : undefined;
}

const LATIN1 = graphicSet("latin1");

interface State {
  g0: GraphicSet;
  /** null: no G1 set designated; bytes 0x80–0xFF are then read as ISO 8859-1, as pydicom does. */
  g1: GraphicSet | null;
}

/**
 * The ISO 2022 state machine: escape sequences designate G0 or G1; a delimiter (while G0 holds a
 * single-byte set) or a control delimiter returns both to the initial sets; bytes 0x21–0x7E are
 * read through G0, 0x80–0xFF through G1, double-byte sets two at a time. A known escape sequence
 * is followed even where (0008,0005) does not name its set; an unknown one is one U+FFFD. The
 * result is built as UTF-16 code units (little-endian, as every platform Deno runs on).
 */
function decodeIso2022(bytes: Uint8Array, initial: State, which: Delimiters): string {
  const n = bytes.length;
  let high = false;
  let escape = false;
  for (let i = 0; i < n; i++) {
    const b = bytes[i];
    if (b === ESC) {
      escape = true;
      break;
    }
    if (b >= 0x80) high = true;
  }
  // ASCII and JIS X 0201 Romaji agree on every byte (0x5C and 0x7E read as Shift_JIS reads them).
  if (!escape && !high) return ASCII.decode(bytes);
  const out = new Uint16Array(n);
  if (!escape && !initial.g1?.double) {
    // No code extension: one table (its 0x00–0x7F are ASCII) for every byte.
    const codes = (initial.g1 ?? LATIN1).codes;
    for (let i = 0; i < n; i++) out[i] = codes[bytes[i]];
    return UTF16.decode(out);
  }
  const delimiters = DELIMITERS[which];
  let k = 0;
  let g0 = initial.g0;
  let g1 = initial.g1;
  for (let i = 0; i < n;) {
    const b = bytes[i];
    if (b === ESC) {
      // ESC, intermediate bytes 0x20–0x2F, a final byte 0x30–0x7E.
      let j = i + 1;
      while (j < n && j - i <= 3 && bytes[j] >= 0x20 && bytes[j] <= 0x2f) j++;
      const designation = j < n && bytes[j] >= 0x30 && bytes[j] <= 0x7e
        ? ESCAPES[String.fromCharCode(...bytes.subarray(i + 1, j + 1))]
        : undefined;
      if (designation) {
        const set = graphicSet(designation[1]);
        if (designation[0] === 0) g0 = set;
        else g1 = set;
        i = j + 1;
      } else {
        // Unknown or cut short: one U+FFFD for the whole sequence, the sets unchanged.
        out[k++] = REPLACEMENT;
        i = j < n && bytes[j] >= 0x30 && bytes[j] <= 0x7e ? j + 1 : j;
      }
      continue;
    }
    if (b < 0x21 || b === 0x7f) {
      out[k++] = b;
      if (delimiters[b]) (g0 = initial.g0, g1 = initial.g1);
      i++;
    } else if (b < 0x80) {
      if (g0.double) {
        const t = i + 1 < n ? bytes[i + 1] : 0;
        if (t >= 0x21 && t <= 0x7e) {
          out[k++] = g0.codes[(b - 0x21) * 94 + t - 0x21] || REPLACEMENT;
          i += 2;
        } else {
          out[k++] = REPLACEMENT;
          i++;
        }
      } else {
        out[k++] = g0.codes[b];
        if (delimiters[b]) (g0 = initial.g0, g1 = initial.g1);
        i++;
      }
    } else if (!g1) {
      out[k++] = b;
      i++;
    } else if (g1.double) {
      const t = i + 1 < n ? bytes[i + 1] : 0;
      if (b >= 0xa1 && b <= 0xfe && t >= 0xa1 && t <= 0xfe) {
        out[k++] = g1.codes[(b - 0xa1) * 94 + t - 0xa1] || REPLACEMENT;
        i += 2;
      } else {
        out[k++] = REPLACEMENT;
        i++;
      }
    } else {
      out[k++] = g1.codes[b];
      i++;
    }
  }
  return UTF16.decode(out.subarray(0, k));
}

/** VRs whose values Specific Character Set applies to (PS3.5 6.1.2.3); others are ASCII. */
export const CHARSET_VRS = new Set(["PN", "LO", "SH", "ST", "LT", "UT", "UC"]);

/**
 * One element's value bytes as text: VRs in CHARSET_VRS (and unknown VRs) through `charset`, the
 * default-repertoire VRs (AE, AS, CS, DA, DS, DT, IS, TM, UI, UR) byte for byte as ISO 8859-1.
 */
export function decodeValue(charset: DicomCharset, bytes: Uint8Array, vr: string): string {
  if (vr === "PN") return charset.decode(bytes, "pn");
  if (vr === "ST" || vr === "LT" || vr === "UT") return charset.decode(bytes, "text");
  if (vr === "LO" || vr === "SH" || vr === "UC") return charset.decode(bytes, "strings");
  if (DEFAULT_REPERTOIRE_VRS.has(vr)) return decodeLatin1(bytes);
  return charset.decode(bytes, "strings");
}

const DEFAULT_REPERTOIRE_VRS = new Set([
  "AE",
  "AS",
  "CS",
  "DA",
  "DS",
  "DT",
  "IS",
  "TM",
  "UI",
  "UR",
]);
