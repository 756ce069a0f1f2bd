/**
 * @module A minimal STOW-RS client (DICOM PS3.18 §10.5): `POST {base}/studies` with a
 * `multipart/related; type="application/dicom"` body of DICOM Part 10 instances, one part each.
 */

/** A multipart/related request body and its Content-Type header. */
export interface MultipartBody {
  contentType: string;
  body: Blob;
}

/** The outcome of one STOW-RS request. */
export interface StowResponse {
  status: number;
  ok: boolean;
  instances: number;
  bytes: number;
  ms: number;
  /** Items of ReferencedSOPSequence (0008,1199) / FailedSOPSequence (0008,1198), when returned. */
  stored?: number;
  failed?: number;
  /** The start of a response body that was not DICOM JSON (for error reports). */
  text?: string;
}

/** Options of `stowInstances`. */
export interface StowOptions {
  /** Extra request headers (e.g. Authorization). */
  headers?: HeadersInit;
  /** POST to `{base}/studies/{uid}` instead of `{base}/studies`. */
  studyInstanceUid?: string;
  /** The fetch to use (tests, proxies); the global one by default. */
  fetch?: typeof fetch;
  /** The boundary; random by default. */
  boundary?: string;
}

const CRLF = "\r\n";

/** A random RFC 2046 boundary (≤ 70 characters, safe characters only). */
export function createBoundary(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `synth-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** Wraps DICOM Part 10 files as one `multipart/related; type="application/dicom"` body. */
export function encodeMultipartRelated(
  instances: readonly Uint8Array[],
  boundary = createBoundary(),
): MultipartBody {
  if (!/^[0-9A-Za-z'()+_,\-./:=?]{1,70}$/.test(boundary)) {
    throw new RangeError(`invalid multipart boundary: ${boundary}`);
  }
  const parts: BlobPart[] = [];
  const head = `--${boundary}${CRLF}Content-Type: application/dicom${CRLF}${CRLF}`;
  for (const instance of instances) parts.push(head, instance as Uint8Array<ArrayBuffer>, CRLF);
  parts.push(`--${boundary}--${CRLF}`);
  return {
    contentType: `multipart/related; type="application/dicom"; boundary=${boundary}`,
    body: new Blob(parts),
  };
}

/** Stores instances with one STOW-RS request to `baseUrl` (the DICOMweb root, e.g. `/dicomweb`). */
export async function stowInstances(
  baseUrl: string,
  instances: readonly Uint8Array[],
  options: StowOptions = {},
): Promise<StowResponse> {
  const doFetch = options.fetch ?? fetch;
  const base = baseUrl.replace(/\/+$/, "");
  const url = options.studyInstanceUid
    ? `${base}/studies/${encodeURIComponent(options.studyInstanceUid)}`
    : `${base}/studies`;
  const { contentType, body } = encodeMultipartRelated(instances, options.boundary);
  const headers = new Headers(options.headers);
  headers.set("Content-Type", contentType);
  headers.set("Accept", "application/dicom+json");
  const started = performance.now();
  const response = await doFetch(url, { method: "POST", headers, body });
  const text = await response.text();
  const result: StowResponse = {
    status: response.status,
    ok: response.ok,
    instances: instances.length,
    bytes: body.size,
    ms: performance.now() - started,
  };
  try {
    const json = JSON.parse(text) as Record<string, { Value?: unknown[] } | undefined>;
    result.stored = json["00081199"]?.Value?.length ?? 0;
    result.failed = json["00081198"]?.Value?.length ?? 0;
  } catch {
    if (text) result.text = text.slice(0, 300);
  }
  return result;
}
