/**
 * @module One FHIR interaction's request and result, independent of HTTP: what the route layer,
 * Bundle entries and operations hand to `interact()` and get back. Imports nothing of the core.
 */
import type { Resource } from "@medplum/fhirtypes";

export interface FhirRequest {
  method: string;
  /** Path segments after the FHIR base: `["Patient", "1", "_history", "2"]`. */
  path: string[];
  query: [string, string][];
  body?: unknown;
  ifMatch?: string;
  ifNoneExist?: string;
  /** The id a transaction gave a created resource before writing it (so references resolve). */
  assignedId?: string;
  /** `Prefer: handling=lenient`. */
  lenient?: boolean;
}

export interface FhirResult {
  status: number;
  body?: Resource;
  location?: string;
  /** Where the result of an asynchronous request can be followed (a Task). */
  contentLocation?: string;
  etag?: string;
  lastModified?: string;
}

/** Location, ETag and Last-Modified for a resource result. */
export function resultOf(
  ctx: { baseUrl: string },
  result: { status: number; resource: Resource },
): FhirResult {
  const r = result.resource;
  const version = r.meta?.versionId;
  return {
    status: result.status,
    body: r,
    etag: version ? `W/"${version}"` : undefined,
    lastModified: r.meta?.lastUpdated,
    location: result.status === 201 && version
      ? `${ctx.baseUrl}/${r.resourceType}/${r.id}/_history/${version}`
      : undefined,
  };
}
