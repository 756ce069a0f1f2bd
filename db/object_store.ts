/**
 * @module The object store: where the bytes of DICOM instances (and later masks and exports)
 * live. One interface, two implementations: S3 (`s3_store.ts`, any S3-compatible server) and a
 * local folder (`folder_store.ts`, the embedded default). Postgres keeps only keys and metadata.
 */

export interface ObjectInfo {
  key: string;
  size: number;
}

export interface ObjectStore {
  /** What the store is, for health and logs (`s3 http://host:port/bucket`, `folder ./data/objects`). */
  readonly description: string;
  /** Creates the bucket or folder when missing. Idempotent. */
  init(): Promise<void>;
  /**
   * Stores `bytes` under `key`, replacing what was there. Resolves once it is durable. `sha256`
   * (hex), when the caller has it, spares the store hashing the bytes again (S3 signs it).
   */
  put(key: string, bytes: Uint8Array, contentType?: string, sha256?: string): Promise<void>;
  /** The whole object, or null when there is no such key. */
  get(key: string): Promise<Uint8Array | null>;
  /** The object as a stream, or null when there is no such key. */
  getStream(key: string): Promise<ReadableStream<Uint8Array> | null>;
  /** Bytes `start` to `end` inclusive, or null when there is no such key. */
  getRange(key: string, start: number, end: number): Promise<Uint8Array | null>;
  /** Size of the object, or null when there is no such key. */
  head(key: string): Promise<ObjectInfo | null>;
  /** Removes the object; no error when it is already gone. */
  delete(key: string): Promise<void>;
  /** Every key under `prefix` (for sweeping orphans and tests). */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /**
   * Which of `keys` exist (checking a whole series before answering with it), cheaply: S3 lists
   * the keys' common prefix (one request per 1000 keys) and HEADs a few at a time only where the
   * keys share no folder; the folder store stats a few at a time.
   */
  existing(keys: readonly string[]): Promise<Set<string>>;
  /**
   * A URL that fetches the object without credentials for `seconds`, or null where the store
   * cannot make one (the local folder).
   */
  presignGet(key: string, seconds: number): Promise<string | null>;
  /** Releases connections. */
  close(): Promise<void>;
}

/** Requests in flight at once when `existing` checks keys one by one. */
export const EXISTS_CONCURRENCY = 16;

/** Runs `fn` on every item, at most `limit` at a time; rejects with the first failure. */
export async function forEachLimit<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && next < items.length) {
      const item = items[next++];
      try {
        await fn(item);
      } catch (e) {
        failed = true;
        throw e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
