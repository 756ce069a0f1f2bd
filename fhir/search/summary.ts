/** @module `_summary` and `_elements`: trims resources in a searchset and marks them SUBSETTED. */
import { getDataType } from "@medplum/core";
import type { Resource } from "@medplum/fhirtypes";

const SUBSETTED = {
  system: "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
  code: "SUBSETTED",
};
const ALWAYS = new Set(["resourceType", "id", "meta"]);

export interface Shaping {
  summary?: "true" | "text" | "data" | "count" | "false";
  elements?: string[];
}

/** Applies `_summary` (true, text, data) or `_elements` to one resource. */
export function shapeResource(resource: Resource, shaping: Shaping): Resource {
  const { summary, elements } = shaping;
  if (elements?.length) {
    return keep(resource, (k) => elements.includes(k) || mandatory(resource.resourceType).has(k));
  }
  if (summary === "true") {
    const props = summaryProps(resource.resourceType);
    return keep(resource, (k) => props.has(k));
  }
  if (summary === "text") {
    return keep(resource, (k) => k === "text" || mandatory(resource.resourceType).has(k));
  }
  if (summary === "data") return keep(resource, (k) => k !== "text");
  return resource;
}

function keep(resource: Resource, wanted: (key: string) => boolean): Resource {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(resource)) {
    const base = k.startsWith("_") ? k.slice(1) : k;
    if (ALWAYS.has(k) || wanted(base) || wanted(choiceStem(base))) out[k] = v;
  }
  const meta = { ...(resource.meta ?? {}) };
  meta.tag = [...(meta.tag ?? []).filter((t) => t.code !== "SUBSETTED"), SUBSETTED];
  out.meta = meta;
  return out as unknown as Resource;
}

/** `valueQuantity` → `value`, so `_elements=value` keeps a choice element. */
function choiceStem(key: string): string {
  const m = /^([a-z][a-zA-Z]*?)(?:[A-Z][a-zA-Z]*)$/.exec(key);
  return m ? m[1] : key;
}

function summaryProps(type: string): Set<string> {
  try {
    return getDataType(type).summaryProperties ?? new Set();
  } catch {
    return new Set();
  }
}

function mandatory(type: string): Set<string> {
  try {
    return getDataType(type).mandatoryProperties ?? new Set();
  } catch {
    return new Set();
  }
}
