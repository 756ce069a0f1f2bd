/** @module The object store on an S3-compatible server (AWS S3, Ceph RGW, MinIO) via the AWS SDK. */
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import {
  EXISTS_CONCURRENCY,
  forEachLimit,
  type ObjectInfo,
  type ObjectStore,
} from "./object_store.ts";

export interface S3StoreOptions {
  /** `http(s)://host:port` of the server. */
  endpoint: string;
  bucket: string;
  /** Region for SigV4 signing (`us-east-1` suits RGW and MinIO). */
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** `http://host/bucket/key` rather than `http://bucket.host/key` (RGW and MinIO want true). */
  forcePathStyle: boolean;
  /** Keys per ListObjectsV2 page (default 1000, the S3 maximum); small values are for tests. */
  listPageSize?: number;
  /**
   * How long a request may wait on a silent server (a socket with nothing coming), in ms (default
   * 30 000); connecting gives up after at most 5 s. A stalled server then fails the request (the
   * SDK retries it twice) instead of holding it, and the API answers 503.
   */
  timeoutMs?: number;
}

/** The error as the SDK shapes it: a name and, from the HTTP reply, a status. */
interface SdkError {
  name?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
}

function sdkError(err: unknown): SdkError {
  return (typeof err === "object" && err !== null ? err : {}) as SdkError;
}

/** True when the server said there is no such key (HEAD replies carry no body, only a 404). */
function isMissing(err: unknown): boolean {
  const e = sdkError(err);
  return e.name === "NoSuchKey" || e.name === "NotFound" || e.$metadata?.httpStatusCode === 404;
}

/**
 * Compares keys as S3 sorts them (UTF-8 bytes, i.e. code points): UTF-16 code units order the
 * same except surrogates, which stand for code points above every unit from U+E000.
 */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    const fix = (u: number) => u >= 0xe000 ? u - 0x800 : u >= 0xd800 ? u + 0x2000 : u;
    return fix(x) - fix(y);
  }
  return a.length - b.length;
}

/** How `existing` lists a set of keys: under their common prefix, from just before the first. */
export interface ListPlan {
  prefix: string;
  startAfter: string;
  /** The greatest key: a listing past it has seen every key it could. */
  last: string;
  /** Pages to read before the rest is checked by HEAD (the prefix holds far more than asked). */
  maxPages: number;
}

/**
 * The listing that finds which of `keys` (distinct) exist, or null where HEADs are as cheap:
 * one key, or keys that share no folder (no `/` in their common prefix), such as keys of several
 * studies, whose listing could walk the whole bucket.
 */
export function listPlan(keys: readonly string[], pageSize: number): ListPlan | null {
  if (keys.length < 2) return null;
  const sorted = [...keys].sort(compareKeys);
  const first = sorted[0];
  const last = sorted[sorted.length - 1];
  let n = 0;
  while (n < first.length && first.charCodeAt(n) === last.charCodeAt(n)) n++;
  // A cut inside a surrogate pair would make a prefix S3 cannot encode.
  if (n > 0 && n < first.length && /[\ud800-\udbff]/.test(first[n - 1])) n--;
  const prefix = first.slice(0, n);
  if (!prefix.includes("/")) return null;
  return {
    prefix,
    // A proper prefix of the first key sorts before it, and after nearly all that precede it.
    startAfter: first.slice(0, /[\udc00-\udfff]$/.test(first) ? -2 : -1),
    last,
    maxPages: Math.ceil(keys.length / pageSize) + 1,
  };
}

/** An ObjectStore in one bucket of an S3-compatible server (the bucket is created by `init`). */
export function createS3Store(opts: S3StoreOptions): ObjectStore {
  const endpoint = opts.endpoint.replace(/\/+$/, "");
  const Bucket = opts.bucket;
  const client = new S3Client({
    endpoint,
    region: opts.region,
    forcePathStyle: opts.forcePathStyle,
    credentials: { accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey },
    // SDKs since 3.729 add CRC32 checksums to every upload and ask for them on downloads unless
    // told otherwise; S3-compatible servers that predate that (Ceph RGW before Squid) reject them.
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    requestHandler: {
      connectionTimeout: Math.min(5_000, opts.timeoutMs ?? 30_000),
      requestTimeout: opts.timeoutMs ?? 30_000,
      // Without it the handler only logs a warning and the request waits on.
      throwOnRequestTimeout: true,
    },
  });
  const pageSize = opts.listPageSize ?? 1000;

  const head = async (key: string): Promise<ObjectInfo | null> => {
    try {
      const res = await client.send(new HeadObjectCommand({ Bucket, Key: key }));
      return { key, size: res.ContentLength ?? 0 };
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
  };

  /**
   * Lists the plan's range and takes `wanted` out of it as they appear; answers the keys still
   * unsure (listing gave up before passing them), after the listing proved the others missing.
   */
  const listExisting = async (
    plan: ListPlan,
    wanted: Set<string>,
    found: Set<string>,
  ): Promise<string[]> => {
    let token: string | undefined;
    let seen: string | undefined;
    for (let page = 0; page < plan.maxPages; page++) {
      const res = await client.send(
        new ListObjectsV2Command({
          Bucket,
          Prefix: plan.prefix,
          MaxKeys: pageSize,
          ...(token ? { ContinuationToken: token } : { StartAfter: plan.startAfter }),
        }),
      );
      for (const object of res.Contents ?? []) {
        if (object.Key === undefined) continue;
        seen = object.Key;
        if (wanted.delete(object.Key)) found.add(object.Key);
      }
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
      // Done: every wanted key turned up, the listing ended, or it went past the last one.
      if (!wanted.size || !token || (seen !== undefined && compareKeys(seen, plan.last) >= 0)) {
        return [];
      }
    }
    // Out of pages: keys before the last one listed are missing; the rest are unsure.
    return [...wanted].filter((key) => seen === undefined || compareKeys(key, seen) > 0);
  };

  return {
    description: `s3 ${endpoint}/${Bucket}`,
    // The SDK's three attempts, each up to the timeout, and a minute for the server to finish.
    lateWriteMs: 3 * (opts.timeoutMs ?? 30_000) + 60_000,

    async init() {
      try {
        await client.send(new HeadBucketCommand({ Bucket }));
        return;
      } catch (err) {
        if (!isMissing(err)) throw err;
      }
      try {
        await client.send(new CreateBucketCommand({ Bucket }));
      } catch (err) {
        // Another replica created it between our HEAD and CREATE.
        if (sdkError(err).name !== "BucketAlreadyOwnedByYou") throw err;
      }
    },

    async put(key, bytes, { contentType, sha256 } = {}) {
      const command = new PutObjectCommand({
        Bucket,
        Key: key,
        Body: bytes,
        ContentLength: bytes.length,
        ContentType: contentType ?? "application/octet-stream",
      });
      if (sha256) {
        // The caller hashed the bytes already: SigV4 signs this header instead of hashing again.
        command.middlewareStack.add(
          (next) => (args) => {
            (args.request as { headers: Record<string, string> }).headers["x-amz-content-sha256"] =
              sha256;
            return next(args);
          },
          { step: "build", name: "precomputedPayloadHash" },
        );
      }
      await client.send(command);
    },

    async get(key) {
      try {
        const res = await client.send(new GetObjectCommand({ Bucket, Key: key }));
        return res.Body ? await res.Body.transformToByteArray() : new Uint8Array(0);
      } catch (err) {
        if (isMissing(err)) return null;
        throw err;
      }
    },

    async getStream(key) {
      try {
        const res = await client.send(new GetObjectCommand({ Bucket, Key: key }));
        if (!res.Body) return new Blob([]).stream();
        return res.Body.transformToWebStream() as ReadableStream<Uint8Array>;
      } catch (err) {
        if (isMissing(err)) return null;
        throw err;
      }
    },

    async getRange(key, start, end) {
      if (!(Number.isInteger(start) && Number.isInteger(end) && 0 <= start && start <= end)) {
        throw new RangeError(`invalid byte range ${start}-${end}`);
      }
      try {
        const res = await client.send(
          new GetObjectCommand({ Bucket, Key: key, Range: `bytes=${start}-${end}` }),
        );
        const bytes = res.Body ? await res.Body.transformToByteArray() : new Uint8Array(0);
        // A server that ignores Range answers 200 with the whole object.
        return res.ContentRange ? bytes : bytes.slice(start, end + 1);
      } catch (err) {
        if (isMissing(err)) return null;
        // 416: the range starts past the end; the folder store answers no bytes for that too.
        if (sdkError(err).name === "InvalidRange") return new Uint8Array(0);
        throw err;
      }
    },

    head,

    async existing(keys) {
      const wanted = [...new Set(keys)];
      const found = new Set<string>();
      const plan = listPlan(wanted, pageSize);
      const unsure = plan ? await listExisting(plan, new Set(wanted), found) : wanted;
      await forEachLimit(unsure, EXISTS_CONCURRENCY, async (key) => {
        if (await head(key)) found.add(key);
      });
      return found;
    },

    async delete(key) {
      try {
        await client.send(new DeleteObjectCommand({ Bucket, Key: key }));
      } catch (err) {
        if (!isMissing(err)) throw err;
      }
    },

    async *list(prefix) {
      let ContinuationToken: string | undefined;
      do {
        const res = await client.send(
          new ListObjectsV2Command({
            Bucket,
            Prefix: prefix,
            MaxKeys: pageSize,
            ContinuationToken,
          }),
        );
        for (const object of res.Contents ?? []) {
          if (object.Key === undefined) continue;
          yield {
            key: object.Key,
            size: object.Size ?? 0,
            ...(object.LastModified ? { modified: object.LastModified } : {}),
          };
        }
        ContinuationToken = res.IsTruncated ? res.NextContinuationToken : undefined;
      } while (ContinuationToken);
    },

    presignGet(key, seconds) {
      return getSignedUrl(client, new GetObjectCommand({ Bucket, Key: key }), {
        expiresIn: seconds,
      });
    },

    close() {
      client.destroy();
      return Promise.resolve();
    },
  };
}
