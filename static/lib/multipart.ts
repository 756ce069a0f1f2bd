/** @module Reads the parts of a `multipart/related` body (a WADO-RS frames answer) from bytes. */

export interface Part {
  headers: Record<string, string>;
  body: Uint8Array;
}

/** The boundary parameter of a multipart Content-Type. */
export function boundaryOf(contentType: string): string | undefined {
  const m = /;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  return m ? (m[1] ?? m[2]) : undefined;
}

function indexOf(hay: Uint8Array, needle: Uint8Array, from: number): number {
  const first = needle[0];
  outer: for (let i = hay.indexOf(first, from); i >= 0 && i <= hay.length - needle.length;) {
    for (let j = 1; j < needle.length; j++) {
      if (hay[i + j] !== needle[j]) {
        i = hay.indexOf(first, i + 1);
        continue outer;
      }
    }
    return i;
  }
  return -1;
}

/** Every part of `body` (RFC 2046): headers by lower-case name, body bytes as views. */
export function parseMultipart(body: Uint8Array, boundary: string): Part[] {
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  const delimiter = enc.encode(`--${boundary}`);
  const parts: Part[] = [];
  let at = indexOf(body, delimiter, 0);
  while (at >= 0) {
    let start = at + delimiter.length;
    if (body[start] === 0x2d && body[start + 1] === 0x2d) break; // closing delimiter
    if (body[start] === 0x0d && body[start + 1] === 0x0a) start += 2;
    const headerEnd = indexOf(body, enc.encode("\r\n\r\n"), start);
    if (headerEnd < 0) break;
    const headers: Record<string, string> = {};
    for (const line of dec.decode(body.subarray(start, headerEnd)).split("\r\n")) {
      const colon = line.indexOf(":");
      if (colon > 0) {
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
    }
    const next = indexOf(body, enc.encode(`\r\n--${boundary}`), headerEnd + 4);
    if (next < 0) break;
    parts.push({ headers, body: body.subarray(headerEnd + 4, next) });
    at = next + 2;
  }
  return parts;
}
