/** @module `writeMultipart`: a multipart/related body streamed from parts pulled one at a time. */
import { assertBoundary } from "./_multipart_boundary.ts";
import { MultipartError } from "./_multipart_error.ts";

/** One part to write: its Content-Type, its bytes (or a stream of them) and any further headers. */
export interface OutgoingPart {
  contentType: string;
  body: Uint8Array | ReadableStream<Uint8Array>;
  headers?: Record<string, string>;
}

const encoder = new TextEncoder();
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * Streams `parts` as a multipart/related body delimited by `boundary`: each part is pulled from
 * `parts` only when the consumer has read everything before it, and a streamed part body is
 * passed through chunk by chunk, so a large study never sits in memory. Cancelling the stream
 * cancels the current part body and returns the iterator. Throws a `MultipartError` (`bad-boundary`
 * at once, `malformed` in the stream for a header that would break the framing).
 */
export function writeMultipart(
  parts: AsyncIterable<OutgoingPart>,
  boundary: string,
): ReadableStream<Uint8Array> {
  assertBoundary(boundary, true);
  let iterator: AsyncIterator<OutgoingPart> | undefined;
  let partBody: ReadableStreamDefaultReader<Uint8Array> | undefined;
  let written = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      // Each pull enqueues something or closes: with nothing enqueued the stream would stall.
      for (;;) {
        if (partBody) {
          const { value, done } = await partBody.read();
          if (!done && value.byteLength === 0) continue;
          if (!done) return controller.enqueue(value);
          partBody.releaseLock();
          partBody = undefined;
        }
        iterator ??= parts[Symbol.asyncIterator]();
        const next = await iterator.next();
        const lead = written === 0 ? "" : "\r\n";
        if (next.done) {
          controller.enqueue(encoder.encode(`${lead}--${boundary}--\r\n`));
          return controller.close();
        }
        const part = next.value;
        controller.enqueue(
          encoder.encode(`${lead}--${boundary}\r\n${partHeaders(part, written)}\r\n`),
        );
        written++;
        if (part.body instanceof Uint8Array) {
          if (part.body.byteLength > 0) controller.enqueue(part.body);
        } else partBody = part.body.getReader();
        return;
      }
    },
    async cancel(reason) {
      await partBody?.cancel(reason);
      await iterator?.return?.();
    },
  }, { highWaterMark: 0 });
}

/** The header lines of a part, each ending in CRLF; Content-Type first, never twice. */
function partHeaders(part: OutgoingPart, index: number): string {
  const fields: [string, string][] = [["Content-Type", part.contentType]];
  for (const [name, value] of Object.entries(part.headers ?? {})) {
    if (name.toLowerCase() !== "content-type") fields.push([name, value]);
  }
  let text = "";
  for (const [name, value] of fields) {
    if (!HEADER_NAME.test(name) || !HEADER_VALUE.test(value)) {
      throw new MultipartError(
        "malformed",
        `bad header ${JSON.stringify(name)} in part ${index}`,
        index,
      );
    }
    text += `${name}: ${value}\r\n`;
  }
  return text;
}
