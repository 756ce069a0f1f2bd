/** @module Normalisation shared by indexing and searching: text folding and reference parsing. */

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
