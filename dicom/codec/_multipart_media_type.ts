/** @module `parseMediaType`: a Content-Type header (RFC 9110 §8.3.1) as a type and its parameters. */
import { MultipartError } from "./_multipart_error.ts";

/** A parsed media type: `type` is `type/subtype` lower-cased; parameter names are lower-cased. */
export interface MediaType {
  type: string;
  params: Record<string, string>;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const WS = /[ \t]/;

/**
 * Parses `type/subtype *(; name=value)`. Values may be tokens or quoted strings (unquoted, with
 * backslash escapes undone); spaces around `;`, `=` and `/` and empty parameters are tolerated.
 * An unquoted value may hold any visible character but `;` and `"` (clients send
 * `type=application/dicom` unquoted). Throws a `MultipartError` of kind `bad-media-type`.
 */
export function parseMediaType(header: string): MediaType {
  const fail = (why: string): never => {
    throw new MultipartError("bad-media-type", `bad media type ${JSON.stringify(header)}: ${why}`);
  };
  const semi = header.indexOf(";");
  const essence = (semi < 0 ? header : header.slice(0, semi)).trim();
  const slash = essence.indexOf("/");
  const main = essence.slice(0, slash).trim();
  const sub = essence.slice(slash + 1).trim();
  if (slash < 0 || !TOKEN.test(main) || !TOKEN.test(sub)) fail("expected type/subtype");
  const params: Record<string, string> = Object.create(null);
  let i = semi < 0 ? header.length : semi + 1;
  while (i < header.length) {
    const eq = header.indexOf("=", i);
    const nextSemi = header.indexOf(";", i);
    if (eq < 0 || (nextSemi >= 0 && nextSemi < eq)) {
      // Only an empty parameter (`;;` or a trailing `;`) may lack a `=`.
      const end = nextSemi < 0 ? header.length : nextSemi;
      if (header.slice(i, end).trim() !== "") fail(`parameter without a value at ${i}`);
      i = end + 1;
      continue;
    }
    const name = header.slice(i, eq).trim().toLowerCase();
    if (!TOKEN.test(name)) fail(`bad parameter name at ${i}`);
    if (name in params) fail(`parameter ${name} given twice`);
    let j = eq + 1;
    while (j < header.length && WS.test(header[j])) j++;
    let value = "";
    if (header[j] === '"') {
      for (j++; j < header.length && header[j] !== '"'; j++) {
        if (header[j] === "\\") j++;
        if (j < header.length) value += header[j];
      }
      if (j >= header.length) fail(`unterminated quoted value of ${name}`);
      j++;
      while (j < header.length && WS.test(header[j])) j++;
      if (j < header.length && header[j] !== ";") fail(`text after the quoted value of ${name}`);
    } else {
      const end = header.indexOf(";", j);
      value = header.slice(j, end < 0 ? header.length : end).trim();
      j = end < 0 ? header.length : end;
      if (!/^[\x21\x23-\x3a\x3c-\x7e]+$/.test(value)) fail(`bad value of ${name}`);
    }
    params[name] = value;
    i = j + 1;
  }
  return { type: `${main}/${sub}`.toLowerCase(), params: { ...params } };
}
