/**
 * @module The files of a ZIP archive as they stream in (fflate's streaming `Unzip`): each entry is
 * yielded once complete, and the request body is not read further until the consumer has taken
 * the entries found so far, so memory holds the entries of one body chunk, not the archive.
 */
import { Unzip, UnzipInflate } from "fflate";

export interface ZipEntry {
  name: string;
  bytes: Uint8Array;
}

export class ZipError extends Error {
  constructor(message: string, readonly kind: "malformed" | "too-large") {
    super(message);
    this.name = "ZipError";
  }
}

export async function* zipEntries(
  body: ReadableStream<Uint8Array>,
  limits: { maxEntryBytes: number; maxTotalBytes: number },
): AsyncGenerator<ZipEntry> {
  const done: ZipEntry[] = [];
  let failure: Error | undefined;
  let open = 0;
  const unzip = new Unzip((file) => {
    if (file.name.endsWith("/")) return; // a folder
    const chunks: Uint8Array[] = [];
    let size = 0;
    open++;
    file.ondata = (err, chunk, final) => {
      if (failure) return;
      if (err) {
        failure = new ZipError(`Entry ${file.name}: ${err.message}`, "malformed");
        return;
      }
      size += chunk.length;
      if (size > limits.maxEntryBytes) {
        failure = new ZipError(
          `Entry ${file.name} is over ${limits.maxEntryBytes} bytes`,
          "too-large",
        );
        file.terminate();
        return;
      }
      chunks.push(chunk);
      if (final) {
        open--;
        done.push({ name: file.name, bytes: concat(chunks, size) });
      }
    };
    try {
      file.start();
    } catch (e) {
      failure = new ZipError(`Entry ${file.name}: ${(e as Error).message}`, "malformed");
    }
  });
  unzip.register(UnzipInflate);
  const reader = body.getReader();
  let total = 0;
  let sawAny = false;
  try {
    while (true) {
      const { value, done: end } = await reader.read();
      try {
        if (value) {
          total += value.length;
          if (total > limits.maxTotalBytes) {
            throw new ZipError(`The archive is over ${limits.maxTotalBytes} bytes`, "too-large");
          }
          if (!sawAny && value.length >= 2 && (value[0] !== 0x50 || value[1] !== 0x4b)) {
            throw new ZipError("Not a ZIP archive (no PK signature)", "malformed");
          }
          sawAny = true;
          unzip.push(value, false);
        }
        if (end) unzip.push(new Uint8Array(0), true);
      } catch (e) {
        if (e instanceof ZipError) throw e;
        throw new ZipError(`Malformed ZIP archive: ${(e as Error).message}`, "malformed");
      }
      if (failure) throw failure;
      while (done.length) yield done.shift()!;
      if (end) break;
    }
    if (!sawAny) throw new ZipError("The body is empty", "malformed");
    if (open > 0) throw new ZipError("The archive ends inside an entry (truncated)", "malformed");
  } finally {
    reader.releaseLock();
    await body.cancel().catch(() => {});
  }
}

function concat(chunks: Uint8Array[], size: number): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(size);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}
