/**
 * @module Binary's native form (FHIR R4 binary.html "Serving Binary Resources using the RESTful
 * API"): `GET Binary/[id]` answers the raw content in its own `contentType` unless the client asks
 * for FHIR (Accept naming a FHIR or JSON media type, or `_format`); `POST Binary` and
 * `PUT Binary/[id]` with any other Content-Type store the body as the Binary's `data`, that
 * Content-Type as its `contentType`, and `X-Security-Context` as its `securityContext`. Access,
 * validation, versions and history are the FHIR core's, as for the JSON form.
 */
import { Buffer } from "node:buffer";
import type { Context } from "hono";
import type { Binary } from "@medplum/fhirtypes";
import type { FhirRequest, FhirResult } from "../fhir/request.ts";
import { readBounded } from "../platform/body.ts";

const FHIR_MEDIA = /(fhir|json)/i;

/** Whether this request reads or writes a Binary in its native form (not as FHIR JSON). */
export function nativeBinary(
  c: Context,
  segments: string[],
  method: string,
  url: URL,
): "read" | "write" | undefined {
  if (segments[0] !== "Binary" || url.searchParams.has("_format")) return undefined;
  if ((method === "GET" || method === "HEAD") && segments.length === 2) {
    const accept = c.req.header("accept") ?? "";
    return FHIR_MEDIA.test(accept) ? undefined : "read";
  }
  const write = (method === "POST" && segments.length === 1) ||
    (method === "PUT" && segments.length === 2);
  const contentType = c.req.header("content-type") ?? "";
  if (write && contentType && !FHIR_MEDIA.test(contentType.split(";")[0])) return "write";
  return undefined;
}

/** The Binary a native write stores: the body as `data`, the Content-Type as `contentType`. */
export async function binaryOf(c: Context, segments: string[], max: number): Promise<Binary> {
  const bytes = await readBounded(c.req.raw, max);
  const context = c.req.header("x-security-context");
  return {
    resourceType: "Binary",
    ...(segments[1] ? { id: segments[1] } : {}),
    contentType: (c.req.header("content-type") ?? "").trim(),
    ...(context ? { securityContext: { reference: context } } : {}),
    data: Buffer.from(bytes).toString("base64"),
  };
}

/** A native read: the content in its `contentType`, with the resource's version headers. */
export function nativeResponse(
  c: Context,
  result: FhirResult,
  request: FhirRequest,
  headers: Record<string, string>,
): Response {
  const binary = result.body as Binary;
  const bytes = Buffer.from(binary.data ?? "", "base64");
  const out: Record<string, string> = {
    ...headers,
    "Content-Type": binary.contentType || "application/octet-stream",
    "Content-Length": String(bytes.byteLength),
  };
  if (binary.securityContext?.reference) {
    out["X-Security-Context"] = binary.securityContext.reference;
  }
  if (request.method === "HEAD" || c.req.method === "HEAD") {
    return c.body(null, result.status as 200, out);
  }
  return c.body(new Uint8Array(bytes), result.status as 200, out);
}
