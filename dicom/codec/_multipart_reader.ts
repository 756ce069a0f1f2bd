/**
 * @module `readMultipart`: a streaming multipart/related reader (RFC 2046 §5.1, RFC 2387). It reads
 * the body a chunk at a time, only when the consumer asks for the next part, and holds the current
 * part and at most one chunk. Delimiters are found with Boyer–Moore–Horspool (`BytePattern`) and
 * each search resumes where the last one stopped, so small chunks cost no re-scanning. A part
 * with a `Content-Length` header (our WADO-RS responses send one) is not searched: exactly that
 * many bytes are copied and the delimiter must follow them, or the body is `malformed`.
 */
import { assertBoundary } from "./_multipart_boundary.ts";
import { MultipartError } from "./_multipart_error.ts";
import { BytePattern } from "./_multipart_search.ts";

/** One part of a multipart body; `index` counts from 0. */
export interface MultipartPart {
  headers: Headers;
  body: Uint8Array;
  index: number;
}

/** Byte limits: one part's body, the whole body as read, and one part's header block. */
export interface MultipartLimits {
  maxPartBytes: number;
  maxTotalBytes: number;
  /** Defaults to 16 KiB. */
  maxHeaderBytes?: number;
}

const LF = 0x0a;
const CR = 0x0d;
const DASH = 0x2d;
const DEFAULT_MAX_HEADER_BYTES = 16 * 1024;
/** Transport padding after a boundary longer than this makes the line not a delimiter. */
const MAX_PADDING = 1024;
/** Pieces of a part's body smaller than this are gathered into one, so 1-byte chunks stay cheap. */
const SMALL_PIECE = 1024;
const STAGING_BYTES = 16 * 1024;

/**
 * Yields the parts of `body`, a multipart body delimited by `boundary`, each once its closing
 * delimiter has been read. Ignores the preamble and the epilogue (the stream is cancelled after
 * the close delimiter). Accepts CRLF or bare LF line ends and transport padding after a boundary.
 * Throws a `MultipartError`: `no-boundary`, `truncated` (after yielding every complete part),
 * `part-too-large`, `too-large`, `headers-too-large`, `malformed` or `bad-boundary`.
 */
export async function* readMultipart(
  body: ReadableStream<Uint8Array>,
  boundary: string,
  limits: MultipartLimits,
): AsyncGenerator<MultipartPart> {
  assertBoundary(boundary, false);
  const needle = new BytePattern(new TextEncoder().encode(`\n--${boundary}`));
  const maxHeaderBytes = limits.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
  const src = new Source(body.getReader(), limits.maxTotalBytes);
  try {
    let end = await nextDelimiter(src, needle, () => {});
    if (end === "eof") throw new MultipartError("no-boundary", `no boundary "--${boundary}" found`);
    for (let index = 0; end !== "close"; index++) {
      if (end === "eof-delimiter") {
        throw new MultipartError(
          "truncated",
          `body truncated: it ends in a boundary line, with no close delimiter`,
        );
      }
      const headers = await readHeaders(src, maxHeaderBytes, index);
      const declared = contentLength(headers, index);
      let partBody: Uint8Array;
      if (declared === undefined) {
        const collector = new BodyCollector(limits.maxPartBytes, index);
        end = await nextDelimiter(src, needle, (bytes) => collector.push(bytes));
        partBody = collector.take();
      } else {
        if (declared > limits.maxPartBytes) {
          throw new MultipartError(
            "part-too-large",
            `part ${index} over ${limits.maxPartBytes} bytes`,
            index,
          );
        }
        partBody = await readExactly(src, declared, index);
        end = await nextDelimiter(src, needle, (bytes) => {
          if (bytes.length) {
            throw new MultipartError(
              "malformed",
              `part ${index} does not end where its Content-Length (${declared}) says`,
              index,
            );
          }
        });
      }
      if (end === "eof") {
        throw new MultipartError("truncated", `body truncated inside part ${index}`, index);
      }
      yield { headers, body: partBody, index };
    }
  } finally {
    src.close();
  }
}

/** The unread bytes: `buf[pos..]`, refilled one chunk at a time. */
class Source {
  /** Starts with a virtual LF so that a boundary on the very first line is found like any other. */
  buf: Uint8Array = Uint8Array.of(LF);
  pos = 0;
  done = false;
  #total = 0;

  constructor(
    readonly reader: ReadableStreamDefaultReader<Uint8Array>,
    readonly maxTotal: number,
  ) {}

  /** Appends the next non-empty chunk to `buf[pos..]` and sets `pos` to 0; false at the end. */
  async more(): Promise<boolean> {
    for (;;) {
      if (this.done) return false;
      const { value, done } = await this.reader.read();
      if (done) {
        this.done = true;
        return false;
      }
      if (!(value instanceof Uint8Array)) {
        throw new TypeError("multipart body chunks must be bytes");
      }
      if (value.byteLength === 0) continue;
      this.#total += value.byteLength;
      if (this.#total > this.maxTotal) {
        throw new MultipartError("too-large", `multipart body over ${this.maxTotal} bytes`);
      }
      // The kept tail is short (a partial delimiter or header block), so the copy is rare and small.
      this.buf = this.pos === this.buf.length ? value : join(this.buf.subarray(this.pos), value);
      this.pos = 0;
      return true;
    }
  }

  close(): void {
    if (!this.done) this.reader.cancel().catch(() => {});
    this.reader.releaseLock();
  }
}

type DelimiterEnd = "next" | "close" | "eof-delimiter" | "eof";

/**
 * Moves `src` past the next delimiter line, handing the bytes before it to `sink`. On `next`,
 * `src.pos` is left on the LF ending the delimiter line; `eof-delimiter` means the body ended in
 * a delimiter line (the bytes before it were complete), `eof` that it ended with none.
 */
async function nextDelimiter(
  src: Source,
  needle: BytePattern,
  sink: (bytes: Uint8Array) => void,
): Promise<DelimiterEnd> {
  let from = src.pos;
  for (;;) {
    const buf = src.buf;
    const at = needle.indexIn(buf, from);
    if (at >= 0) {
      const tail = classifyTail(buf, at + needle.length);
      if (tail === "none") {
        from = at + 1;
        continue;
      }
      const end = at > src.pos && buf[at - 1] === CR ? at - 1 : at;
      sink(buf.subarray(src.pos, end));
      src.pos = end;
      if (tail === "more") {
        if (src.done) return "eof-delimiter";
        const resume = at - end;
        await src.more();
        from = src.pos + resume;
        continue;
      }
      src.pos = tail.end;
      return tail.kind;
    }
    if (src.done) return "eof";
    const keep = partialDelimiterStart(buf, src.pos, needle);
    sink(buf.subarray(src.pos, keep));
    src.pos = keep;
    await src.more();
    from = src.pos;
  }
}

type Tail = "none" | "more" | { kind: "next" | "close"; end: number };

/** What follows a boundary at `p`: `--` closes; padding then a line end is a delimiter. */
function classifyTail(buf: Uint8Array, p: number): Tail {
  if (p < buf.length && buf[p] === DASH) {
    if (p + 1 === buf.length) return "more";
    return buf[p + 1] === DASH ? { kind: "close", end: p + 2 } : "none";
  }
  let q = p;
  while (q < buf.length && (buf[q] === 0x20 || buf[q] === 0x09) && q - p <= MAX_PADDING) q++;
  if (q - p > MAX_PADDING) return "none";
  if (q === buf.length) return "more";
  if (buf[q] === LF) return { kind: "next", end: q };
  if (buf[q] !== CR) return "none";
  if (q + 1 === buf.length) return "more";
  return buf[q + 1] === LF ? { kind: "next", end: q + 1 } : "none";
}

/** Where a delimiter cut off by the end of `buf` may begin (with its CR); `buf.length` if nowhere. */
function partialDelimiterStart(buf: Uint8Array, pos: number, needle: BytePattern): number {
  const len = buf.length;
  const k = needle.partialAtEnd(buf, pos);
  if (k < len) return k > pos && buf[k - 1] === CR ? k - 1 : k;
  return len > pos && buf[len - 1] === CR ? len - 1 : len;
}

/** A part's Content-Length, when it has one; a value that is not a byte count is `malformed`. */
function contentLength(headers: Headers, index: number): number | undefined {
  const value = headers.get("content-length");
  if (value === null) return undefined;
  if (!/^\d{1,15}$/.test(value)) {
    throw new MultipartError("malformed", `bad Content-Length in part ${index}: ${value}`, index);
  }
  return Number(value);
}

/** Copies the next `n` bytes of `src` into one new array. */
async function readExactly(src: Source, n: number, index: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let filled = 0;
  while (filled < n) {
    if (src.pos === src.buf.length && !(await src.more())) {
      throw new MultipartError("truncated", `body truncated inside part ${index}`, index);
    }
    const take = Math.min(n - filled, src.buf.length - src.pos);
    out.set(src.buf.subarray(src.pos, src.pos + take), filled);
    filled += take;
    src.pos += take;
  }
  return out;
}

/** Reads a part's header block, `src.pos` being on the LF that ended its delimiter line. */
async function readHeaders(src: Source, maxHeaderBytes: number, index: number): Promise<Headers> {
  let from = src.pos;
  for (;;) {
    const { buf, pos } = src;
    const windowEnd = Math.min(buf.length, pos + maxHeaderBytes + 4);
    const blank = blankLine(buf, from, windowEnd);
    if (blank >= 0) {
      src.pos = blank + (buf[blank + 1] === LF ? 2 : 3);
      return parseHeaderBlock(latin1(buf.subarray(pos + 1, blank)), index);
    }
    if (windowEnd - pos >= maxHeaderBytes + 4) {
      throw new MultipartError(
        "headers-too-large",
        `headers of part ${index} over ${maxHeaderBytes} bytes`,
        index,
      );
    }
    if (src.done) {
      throw new MultipartError(
        "truncated",
        `body truncated in the headers of part ${index}`,
        index,
      );
    }
    const resume = Math.max(pos, buf.length - 2) - pos;
    await src.more();
    from = src.pos + resume;
  }
}

/** The index of the LF that starts an empty line (LF LF or LF CR LF) in `buf[from..end)`, or -1. */
function blankLine(buf: Uint8Array, from: number, end: number): number {
  const window = buf.subarray(0, end);
  for (let i = window.indexOf(LF, from); i >= 0 && i + 1 < end; i = window.indexOf(LF, i + 1)) {
    if (window[i + 1] === LF) return i;
    if (window[i + 1] === CR && i + 2 < end && window[i + 2] === LF) return i;
  }
  return -1;
}

/** Bytes as ISO-8859-1 text (what header bytes are; TextDecoder's "latin1" is windows-1252). */
function latin1(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    text += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return text;
}

function join(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Header lines (`Name: value`, folded lines joined) into Headers. */
function parseHeaderBlock(text: string, index: number): Headers {
  const headers = new Headers();
  if (text === "" || text === "\r") return headers;
  const lines: string[] = [];
  for (const line of text.replace(/\r$/, "").split(/\r?\n/)) {
    if ((line[0] === " " || line[0] === "\t") && lines.length > 0) {
      lines[lines.length - 1] += " " + line.trim();
    } else lines.push(line);
  }
  for (const line of lines) {
    const colon = line.indexOf(":");
    const name = line.slice(0, Math.max(colon, 0)).trim();
    try {
      if (!name) throw new TypeError("no header name");
      headers.append(name, line.slice(colon + 1).trim());
    } catch {
      throw new MultipartError(
        "malformed",
        `bad header line in part ${index}: ${JSON.stringify(line.slice(0, 80))}`,
        index,
      );
    }
  }
  return headers;
}

/** A part's body as pieces, checked against the limit as they come and copied once at the end. */
class BodyCollector {
  #pieces: Uint8Array[] = [];
  #length = 0;
  #staging: Uint8Array | undefined;
  #staged = 0;

  constructor(readonly maxBytes: number, readonly index: number) {}

  push(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.#length += bytes.length;
    if (this.#length > this.maxBytes) {
      throw new MultipartError(
        "part-too-large",
        `part ${this.index} over ${this.maxBytes} bytes`,
        this.index,
      );
    }
    if (bytes.length >= SMALL_PIECE) {
      this.#flush();
      this.#pieces.push(bytes);
      return;
    }
    if (this.#staging && this.#staged + bytes.length > this.#staging.length) this.#flush();
    this.#staging ??= new Uint8Array(STAGING_BYTES);
    this.#staging.set(bytes, this.#staged);
    this.#staged += bytes.length;
  }

  take(): Uint8Array {
    this.#flush();
    const out = new Uint8Array(this.#length);
    let offset = 0;
    for (const piece of this.#pieces) {
      out.set(piece, offset);
      offset += piece.length;
    }
    this.#pieces = [];
    return out;
  }

  #flush(): void {
    if (this.#staging && this.#staged > 0) {
      this.#pieces.push(this.#staging.subarray(0, this.#staged));
    }
    this.#staging = undefined;
    this.#staged = 0;
  }
}
