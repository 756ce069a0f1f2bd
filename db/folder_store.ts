/** @module The object store in a local folder: the embedded default (one file per key, atomic puts). */
import { dirname, join, resolve } from "node:path";
import {
  EXISTS_CONCURRENCY,
  forEachLimit,
  type ObjectInfo,
  type ObjectStore,
} from "./object_store.ts";

/**
 * Names of files being written start with this; `put` renames them onto the key when complete,
 * `list` skips them (one left by a crash is never seen as an object), and keys may not use it.
 */
const TEMP_PREFIX = ".tmp-";

/** Throws unless `key` is a safe relative `/`-separated path (no `..`, `.`, `//`, `\`, leading `/`). */
export function assertValidKey(key: string): void {
  const bad = (why: string) => new TypeError(`invalid object key ${JSON.stringify(key)}: ${why}`);
  if (key === "") throw bad("empty");
  if (key.startsWith("/")) throw bad("leading /");
  if (key.includes("\\")) throw bad("backslash");
  if (key.includes("\0")) throw bad("NUL character");
  for (const segment of key.split("/")) {
    if (segment === "") throw bad("empty path segment");
    if (segment === "." || segment === "..") throw bad(`"${segment}" path segment`);
    if (segment.startsWith(TEMP_PREFIX)) throw bad(`segment starts with ${TEMP_PREFIX}`);
  }
}

/** Throws unless `prefix` is empty or could begin a valid key. */
function assertValidPrefix(prefix: string): void {
  if (prefix === "") return;
  // A prefix may end inside a segment or right after a "/": validate it as a key with a filler.
  assertValidKey(prefix.endsWith("/") ? `${prefix}x` : prefix);
}

function isNotFound(err: unknown): boolean {
  return err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory ||
    err instanceof Deno.errors.IsADirectory;
}

/** fsyncs a folder so that a rename inside it survives a crash. */
async function syncDir(path: string): Promise<void> {
  const dir = await Deno.open(path, { read: true });
  try {
    await dir.sync();
  } finally {
    dir.close();
  }
}

/** Writes all of `bytes` to `file` and syncs its data. */
async function writeAndSync(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await file.write(bytes.subarray(written));
  await file.syncData();
}

/** Folders `put` has made, remembered (at most this many) so that a put skips the mkdir. */
const FOLDERS_REMEMBERED = 4096;

/** Reads from `file` until `buf` is full or the file ends; returns the bytes read. */
async function readFully(file: Deno.FsFile, buf: Uint8Array): Promise<Uint8Array> {
  let filled = 0;
  while (filled < buf.length) {
    const n = await file.read(buf.subarray(filled));
    if (n === null) break;
    filled += n;
  }
  return buf.subarray(0, filled);
}

/** An ObjectStore keeping each key as a file under `dir` (created by `init`). */
export function createFolderStore(dir: string): ObjectStore {
  const root = resolve(dir);
  const folders = new Set<string>();
  /** Creates the new file `path` in `folder`, making the folder first where it is not known. */
  const createIn = async (folder: string, path: string): Promise<Deno.FsFile> => {
    const open = () => Deno.open(path, { write: true, createNew: true, mode: 0o644 });
    if (folders.has(folder)) {
      try {
        return await open();
      } catch (err) {
        // Removed since it was made here: made again below.
        if (!isNotFound(err)) throw err;
        folders.delete(folder);
      }
    }
    await Deno.mkdir(folder, { recursive: true });
    if (folders.size >= FOLDERS_REMEMBERED) folders.delete(folders.values().next().value!);
    folders.add(folder);
    return await open();
  };
  const pathOf = (key: string) => {
    assertValidKey(key);
    return join(root, ...key.split("/"));
  };

  /** Files under `folder` (whose names start with `namePrefix` at the top level), as keys. */
  async function* walk(
    folder: string,
    keyPrefix: string,
    namePrefix = "",
  ): AsyncGenerator<ObjectInfo> {
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(folder));
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      if (entry.name.startsWith(TEMP_PREFIX) || !entry.name.startsWith(namePrefix)) continue;
      const path = join(folder, entry.name);
      const key = keyPrefix + entry.name;
      if (entry.isDirectory) yield* walk(path, `${key}/`);
      else if (entry.isFile) {
        const info = await Deno.stat(path).catch((err) => {
          if (isNotFound(err)) return null; // deleted while listing
          throw err;
        });
        if (info) yield { key, size: info.size, ...(info.mtime ? { modified: info.mtime } : {}) };
      }
    }
  }

  const head = async (key: string): Promise<ObjectInfo | null> => {
    try {
      const info = await Deno.stat(pathOf(key));
      return info.isFile ? { key, size: info.size } : null;
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  };

  return {
    description: `folder ${root}`,

    async init() {
      await Deno.mkdir(root, { recursive: true });
    },

    async put(key, bytes, options = {}) {
      const path = pathOf(key);
      const folder = dirname(path);
      // Written in place when fresh: the name is durable once the folder is synced (which runs
      // beside the file's write and sync: the entry exists from the open on), the bytes once the
      // file is. Else written to a temporary name and renamed onto the key when durable.
      const target = options.fresh ? path : join(folder, `${TEMP_PREFIX}${crypto.randomUUID()}`);
      const file = await createIn(folder, target);
      try {
        try {
          if (options.fresh) await Promise.all([writeAndSync(file, bytes), syncDir(folder)]);
          else await writeAndSync(file, bytes);
        } finally {
          file.close();
        }
        if (!options.fresh) {
          await Deno.rename(target, path);
          await syncDir(folder);
        }
      } catch (err) {
        await Deno.remove(target).catch(() => {});
        throw err;
      }
    },

    async get(key) {
      try {
        return await Deno.readFile(pathOf(key));
      } catch (err) {
        if (isNotFound(err)) return null;
        throw err;
      }
    },

    async getStream(key) {
      const path = pathOf(key);
      try {
        if (!(await Deno.stat(path)).isFile) return null;
        return (await Deno.open(path, { read: true })).readable;
      } catch (err) {
        if (isNotFound(err)) return null;
        throw err;
      }
    },

    async getRange(key, start, end) {
      if (!(Number.isInteger(start) && Number.isInteger(end) && 0 <= start && start <= end)) {
        throw new RangeError(`invalid byte range ${start}-${end}`);
      }
      let file: Deno.FsFile;
      try {
        file = await Deno.open(pathOf(key), { read: true });
      } catch (err) {
        if (isNotFound(err)) return null;
        throw err;
      }
      try {
        const size = (await file.stat()).size;
        if (start >= size) return new Uint8Array(0);
        await file.seek(start, Deno.SeekMode.Start);
        return await readFully(file, new Uint8Array(Math.min(end, size - 1) - start + 1));
      } catch (err) {
        if (isNotFound(err)) return null; // a directory, not an object
        throw err;
      } finally {
        file.close();
      }
    },

    head,

    async existing(keys) {
      const found = new Set<string>();
      await forEachLimit([...new Set(keys)], EXISTS_CONCURRENCY, async (key) => {
        if (await head(key)) found.add(key);
      });
      return found;
    },

    async delete(key) {
      try {
        await Deno.remove(pathOf(key));
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    },

    async *list(prefix) {
      assertValidPrefix(prefix);
      // Start at the deepest folder the prefix names fully; the rest filters its entries' names.
      const cut = prefix.lastIndexOf("/") + 1;
      const base = prefix.slice(0, cut);
      yield* walk(join(root, ...base.split("/")), base, prefix.slice(cut));
    },

    presignGet() {
      return Promise.resolve(null);
    },

    close() {
      return Promise.resolve();
    },
  };
}
