/**
 * @module A STOW-RS store response (PS3.18 10.5.3, DICOM JSON) as per-instance results: stored,
 * stored with coerced values, or refused with the reason in words.
 */
import type { Json } from "./fhir_types.ts";

export interface InstanceResult {
  sopInstanceUid: string;
  outcome: "stored" | "warning" | "refused";
  reason?: string;
  retrieveUrl?: string;
}

export interface StowSummary {
  instances: InstanceResult[];
  /** The Study Instance UID(s) of the stored instances. */
  studyUids: string[];
}

/** PS3.18 / PS3.4 failure reasons this server gives, in words. */
export const FAILURE_REASONS: Record<number, string> = {
  0x0110: "processing failure",
  0x0111: "duplicate: a different instance with this SOP Instance UID is stored",
  0x0112: "no such object instance",
  0x0122: "SOP class not supported",
  0xa700: "out of resources",
  0xa900: "the instance belongs to another study than the one addressed",
  0xc000: "not a DICOM file this server can read",
};

const WARNING_REASONS: Record<number, string> = {
  0xb000: "stored; some values were coerced",
  0xb006: "stored; some elements were discarded",
  0xb007: "stored; the data set does not match its SOP class",
};

function studyOf(url: string | undefined): string | undefined {
  return url ? /\/studies\/([0-9.]+)/.exec(url)?.[1] : undefined;
}

/** Reads a store response body (`{}` for an empty one). */
export function parseStowResponse(body: Json): StowSummary {
  const seq = (tag: string) => (body?.[tag]?.Value ?? []) as Json[];
  const uid = (item: Json) => String(item?.["00081155"]?.Value?.[0] ?? "(unknown instance)");
  const instances: InstanceResult[] = [];
  const studies = new Set<string>();
  for (const item of seq("00081199")) {
    const url = item?.["00081190"]?.Value?.[0];
    const warning = item?.["00081196"]?.Value?.[0];
    const study = studyOf(url);
    if (study) studies.add(study);
    instances.push({
      sopInstanceUid: uid(item),
      outcome: warning ? "warning" : "stored",
      ...(warning ? { reason: WARNING_REASONS[warning] ?? `warning 0x${hex(warning)}` } : {}),
      ...(url ? { retrieveUrl: url } : {}),
    });
  }
  for (const item of seq("00081198")) {
    const code = Number(item?.["00081197"]?.Value?.[0] ?? 0x0110);
    instances.push({
      sopInstanceUid: uid(item),
      outcome: "refused",
      reason: `${FAILURE_REASONS[code] ?? "refused"} (0x${hex(code)})`,
    });
  }
  const top = studyOf(body?.["00081190"]?.Value?.[0]);
  if (top) studies.add(top);
  return { instances, studyUids: [...studies] };
}

const hex = (n: number) => n.toString(16).toUpperCase().padStart(4, "0");
