/**
 * @module Normalisation shared by indexing and searching: text folding, reference parsing, and
 * the characters no FHIR value may hold (searches and writes refuse them alike).
 */

/** Lower-cases and strips accents, so that `Müller`, `MULLER` and `muller` compare equal. */
export function normalizeText(s: string): string {
  return s.normalize("NFD").replace(/\p{M}/gu, "").toLowerCase();
}

export interface ParsedReference {
  type: string;
  id: string;
  version?: string;
}

const LOCAL_REF =
  /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/([A-Za-z0-9\-.]{1,64}))?$/;

/**
 * Parses `Type/id` (optionally `/_history/v`), also when prefixed with this server's base URL.
 * Any other absolute URL, a fragment or a URN is not local: undefined.
 */
export function parseReference(ref: string, baseUrl: string): ParsedReference | undefined {
  let local = ref;
  const base = baseUrl.endsWith("/") ? baseUrl : `${baseUrl}/`;
  if (ref.startsWith(base)) local = ref.slice(base.length);
  const m = LOCAL_REF.exec(local);
  if (!m) return undefined;
  return { type: m[1], id: m[2], version: m[3] };
}

/**
 * C0 control characters other than tab, CR and LF (U+0000 among them, which Postgres text and
 * jsonb cannot hold) and unpaired UTF-16 surrogates (not Unicode characters; jsonb refuses them):
 * R4 strings are Unicode characters without these (datatypes §string), and no URI, code, id,
 * base64 or XHTML value carries one either.
 */
// deno-lint-ignore no-control-regex
const FORBIDDEN_CHARACTER = /[\u0000-\u0008\u000B\u000C\u000E-\u001F]/;

/** What makes `text` impossible as a FHIR value (`the control character U+0000`), or undefined. */
export function invalidCharacter(text: string): string | undefined {
  const bad = FORBIDDEN_CHARACTER.exec(text);
  if (bad) {
    const code = bad[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, "0");
    return `the control character U+${code}`;
  }
  return text.isWellFormed() ? undefined : "an unpaired UTF-16 surrogate";
}
