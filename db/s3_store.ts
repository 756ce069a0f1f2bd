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
import type { ObjectStore } from "./object_store.ts";

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
  });
  const pageSize = opts.listPageSize ?? 1000;

  return {
    description: `s3 ${endpoint}/${Bucket}`,

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

    async put(key, bytes, contentType, sha256) {
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

    async head(key) {
      try {
        const res = await client.send(new HeadObjectCommand({ Bucket, Key: key }));
        return { key, size: res.ContentLength ?? 0 };
      } catch (err) {
        if (isMissing(err)) return null;
        throw err;
      }
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
          if (object.Key !== undefined) yield { key: object.Key, size: object.Size ?? 0 };
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
