/**
 * @module The object store: where the bytes of DICOM instances (and later masks and exports)
 * live. One interface, two implementations: S3 (`s3_store.ts`, any S3-compatible server) and a
 * local folder (`folder_store.ts`, the embedded default). Postgres keeps only keys and metadata.
 */
import { causeChain, SOCKET_ERROR_CODES } from "../platform/socket_errors.ts";

export interface ObjectInfo {
  key: string;
  size: number;
  /** When the object was last written (listings; absent where the store does not say). */
  modified?: Date;
}

export interface PutOptions {
  contentType?: string;
  /** The bytes' SHA-256 (hex), when the caller has it: spares the store hashing them (S3 signs it). */
  sha256?: string;
  /**
   * The key is new and nobody reads it before `put` resolves (a DICOM upload's key, unique to the
   * upload and indexed only after): the folder store then writes it in place, without a temporary
   * file to rename. A crash mid-write leaves a partial object that no row refers to, which the
   * object sweep removes.
   */
  fresh?: boolean;
}

export interface ObjectStore {
  /** What the store is, for health and logs (`s3 http://host:port/bucket`, `folder ./data/objects`). */
  readonly description: string;
  /**
   * How long after a failed `put` its object may still appear (a server that had the whole request
   * when the client gave up may complete it); absent: never (the folder store).
   */
  readonly lateWriteMs?: number;
  /** Creates the bucket or folder when missing. Idempotent. */
  init(): Promise<void>;
  /** Stores `bytes` under `key`, replacing what was there. Resolves once it is durable. */
  put(key: string, bytes: Uint8Array, options?: PutOptions): Promise<void>;
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

/**
 * The object store cannot take or give bytes right now: its server does not answer or refuses
 * (S3 down, restarting, stalled past its timeout, answering 5xx) or its disk is full. The API
 * answers 503 (507 for a full disk) with Retry-After, and STOW-RS fails the parts with 0xA700.
 */
export class ObjectStoreUnavailable extends Error {
  override name = "ObjectStoreUnavailable";
  constructor(
    /** What is wrong, in words: "the object store's disk is full (ENOSPC)". */
    readonly reason: string,
    /** 507 when the store is out of space, else 503. */
    readonly status: 503 | 507,
    options?: { cause?: unknown },
  ) {
    super(`The object store is unavailable: ${reason}`, options);
  }
}

/** Error codes of a store that cannot be reached. */
const UNREACHABLE = new Set(SOCKET_ERROR_CODES);

/**
 * The store's unavailability behind `error`, or null for anything else (a missing key, a bad
 * request, a bug): out of space (ENOSPC, EDQUOT, S3 QuotaExceeded) is 507; an unreachable or
 * failing server (socket errors, the SDK's timeouts, HTTP 5xx), a read-only or failing disk is 503.
 */
export function storeUnavailable(error: unknown): ObjectStoreUnavailable | null {
  if (error instanceof ObjectStoreUnavailable) return error;
  for (const e of causeChain(error)) {
    const { code, name, $metadata } = e as {
      code?: unknown;
      name?: unknown;
      $metadata?: { httpStatusCode?: number };
    };
    const id = typeof code === "string" ? code : typeof name === "string" ? name : "";
    if (id === "ENOSPC" || id === "EDQUOT" || id === "QuotaExceeded") {
      return new ObjectStoreUnavailable(`its storage is full (${id})`, 507, { cause: error });
    }
    if (id === "EROFS" || id === "EIO") {
      return new ObjectStoreUnavailable(`its disk failed (${id})`, 503, { cause: error });
    }
    if (UNREACHABLE.has(id)) {
      return new ObjectStoreUnavailable(`it does not answer (${id})`, 503, { cause: error });
    }
    if (name === "TimeoutError" || name === "RequestTimeout") {
      return new ObjectStoreUnavailable(`it did not answer in time (${name})`, 503, {
        cause: error,
      });
    }
    const http = $metadata?.httpStatusCode;
    if (typeof http === "number" && http >= 500) {
      return new ObjectStoreUnavailable(`it answered HTTP ${http} (${String(name)})`, 503, {
        cause: error,
      });
    }
  }
  return null;
}

/**
 * `store` with every failure that `storeUnavailable` recognizes thrown as ObjectStoreUnavailable
 * (the rest as they were), so callers and the API's error handler need not know which store it is.
 */
export function withStoreFaults(store: ObjectStore): ObjectStore {
  const guard = async <T>(work: () => Promise<T>): Promise<T> => {
    try {
      return await work();
    } catch (e) {
      throw storeUnavailable(e) ?? e;
    }
  };
  return {
    get description() {
      return store.description;
    },
    get lateWriteMs() {
      return store.lateWriteMs;
    },
    init: () => guard(() => store.init()),
    put: (key, bytes, options) => guard(() => store.put(key, bytes, options)),
    get: (key) => guard(() => store.get(key)),
    getStream: (key) => guard(() => store.getStream(key)),
    getRange: (key, start, end) => guard(() => store.getRange(key, start, end)),
    head: (key) => guard(() => store.head(key)),
    delete: (key) => guard(() => store.delete(key)),
    async *list(prefix) {
      try {
        yield* store.list(prefix);
      } catch (e) {
        throw storeUnavailable(e) ?? e;
      }
    },
    existing: (keys) => guard(() => store.existing(keys)),
    presignGet: (key, seconds) => store.presignGet(key, seconds),
    close: () => store.close(),
  };
}
