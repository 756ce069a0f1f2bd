/** @module The few FHIR R4 shapes the UI reads, loosely typed (the server validates them). */

// deno-lint-ignore no-explicit-any
export type Json = any;

export interface Reference {
  reference?: string;
  display?: string;
  identifier?: { system?: string; value?: string };
}

export interface Resource {
  resourceType: string;
  id?: string;
  meta?: { versionId?: string; lastUpdated?: string };
  [key: string]: Json;
}

export interface BundleEntry {
  fullUrl?: string;
  resource?: Resource;
  search?: { mode?: "match" | "include" | "outcome" };
}

export interface Bundle {
  resourceType: "Bundle";
  type: string;
  total?: number;
  link?: { relation: string; url: string }[];
  entry?: BundleEntry[];
}

/** The resources of a Bundle, optionally of one type and search mode. */
export function resourcesOf(
  bundle: Bundle,
  type?: string,
  mode?: "match" | "include",
): Resource[] {
  return (bundle.entry ?? [])
    .filter((e) => e.resource && (!type || e.resource.resourceType === type))
    .filter((e) => !mode || (e.search?.mode ?? "match") === mode)
    .map((e) => e.resource!);
}

/** The link of a relation (`next`, `previous`, `self`) of a searchset, if any. */
export function linkOf(bundle: Bundle, relation: string): string | undefined {
  return bundle.link?.find((l) => l.relation === relation)?.url;
}

/** `http://host/fhir/ImagingStudy/1/_history/2` or `ImagingStudy/1` → `ImagingStudy/1`. */
export function relativeRef(ref: string | undefined): string | undefined {
  if (!ref) return undefined;
  const m = /([A-Z][A-Za-z]+\/[A-Za-z0-9\-.]{1,64})(?:\/_history\/[^/]+)?$/.exec(ref);
  return m?.[1];
}

/** The id of a reference (`Patient/7` → `7`). */
export function refId(ref: string | undefined): string | undefined {
  return relativeRef(ref)?.split("/")[1];
}
