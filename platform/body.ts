/**
 * @module Request bodies read with a ceiling: a declared Content-Length over it is refused before
 * a byte is read, and a body sent without one (chunked) is cut off as soon as it passes it. Either
 * way the answer is a 413 (`HttpError`) and at most `max` bytes (plus one chunk) were held.
 */
import { HttpError } from "./http_error.ts";

/**
 * The whole body of `request` (or of a bare stream), at most `max` bytes; `what` names it in the
 * 413's reason ("The body", "The file"…). A request without a body gives an empty array.
 */
export async function readBounded(
  source: Request | ReadableStream<Uint8Array> | null,
  max: number,
  what = "The body",
): Promise<Uint8Array<ArrayBuffer>> {
  let body: ReadableStream<Uint8Array> | null;
  if (source instanceof Request) {
    const declared = Number(source.headers.get("content-length") ?? NaN);
    if (declared > max) {
      await source.body?.cancel().catch(() => {});
      throw new HttpError(413, `${what} is ${declared} bytes; the limit is ${max}`);
    }
    body = source.body;
  } else body = source;
  if (!body) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > max) {
        await reader.cancel().catch(() => {});
        throw new HttpError(413, `${what} is over ${max} bytes, the limit`);
      }
      chunks.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  if (
    chunks.length === 1 && chunks[0].byteOffset === 0 && chunks[0].buffer instanceof ArrayBuffer &&
    chunks[0].byteLength === chunks[0].buffer.byteLength
  ) {
    return chunks[0] as Uint8Array<ArrayBuffer>;
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** `readBounded`, decoded as UTF-8 (malformed sequences replaced, as `Request.text()` does). */
export async function readBoundedText(
  request: Request,
  max: number,
  what = "The body",
): Promise<string> {
  return new TextDecoder().decode(await readBounded(request, max, what));
}
