/**
 * @module A Bulk Data `$export` kick-off read into an `ExportPlan`: the parameters from the query
 * and (POST) a Parameters body, checked (`_outputFormat`, `_type`, `_since`, `_typeFilter`,
 * `patient`; anything else refused under `Prefer: handling=strict`, the default, or ignored with a
 * warning under `handling=lenient`), the Group's Patient members read through the FHIR API as the
 * caller, and the caller's reach on each type resolved (scopes, a bound patient's compartment,
 * fine-grained scope queries) so the job runs later exactly as far as the caller may read.
 */
import type { Group, Parameters, ParametersParameter } from "@medplum/fhirtypes";
import type { Caller } from "../../auth/access.ts";
import { FhirError, fhirError } from "../../platform/outcome.ts";
import { compartmentParams, reachOf } from "../compartment.ts";
import type { FhirContext } from "../context.ts";
import { RESOURCE_TYPES } from "../resource_types.ts";
import { parseSearch } from "../search/parse.ts";
import type { FhirService } from "../service.ts";
import { type ExportLevel, type ExportPlan, OUTPUT_FORMATS, type TypePlan } from "./model.ts";

export interface KickOff {
  level: ExportLevel;
  /** The Group's id (Group level). */
  group?: string;
  method: string;
  query: [string, string][];
  /** POST: a Parameters resource (or nothing). */
  body?: unknown;
  /** The `Prefer` header. */
  prefer?: string;
  caller?: Caller;
}

/** Parameters this server reads; every other one is unsupported. */
const KNOWN = new Set(["_outputFormat", "_since", "_type", "_typeFilter", "patient"]);
/** Search result parameters: a `_typeFilter` selects resources, it does not shape a result. */
const RESULT_PARAMS =
  /^(_count|_sort|_total|_summary|_elements|_include|_revinclude|_cursor|_format|_pretty|_contained|_containedType)(:|$)/;
/** FHIR `instant`: a time with seconds and a zone. */
const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
/** Not exported: the audit trail is audit/'s, not a stored resource type. */
const NOT_EXPORTED = new Set(["AuditEvent"]);

export interface Prefer {
  respondAsync: boolean;
  lenient: boolean;
}

export function parsePrefer(header: string | undefined): Prefer {
  const tokens = (header ?? "").split(/[,;]/).map((t) => t.trim().toLowerCase());
  return {
    respondAsync: tokens.includes("respond-async"),
    lenient: tokens.some((t) => t.replace(/\s/g, "") === "handling=lenient"),
  };
}

/** The plan of a kick-off and the warnings (lenient handling) for the manifest's `error`. */
export async function planExport(
  fhir: FhirService,
  k: KickOff,
): Promise<{ plan: ExportPlan; warnings: string[] }> {
  const prefer = parsePrefer(k.prefer);
  if (!prefer.respondAsync) {
    throw fhirError(400, "invalid", "$export needs the header `Prefer: respond-async`");
  }
  const warnings: string[] = [];
  /** Refuses (strict) or warns and goes on (lenient). */
  const unsupported = (msg: string, expression?: string) => {
    if (!prefer.lenient) throw fhirError(400, "not-supported", msg, expression);
    warnings.push(msg);
  };
  const params = [...k.query.filter(([name]) => name !== "_format"), ...bodyParams(k)];
  const all = (name: string) => params.filter(([n]) => n === name).map(([, v]) => v);
  for (const [name] of params) {
    if (!KNOWN.has(name)) unsupported(`$export parameter ${name} is not supported`, name);
  }
  for (const format of all("_outputFormat")) {
    if (!OUTPUT_FORMATS.has(format.trim())) {
      throw fhirError(
        400,
        "not-supported",
        `_outputFormat ${format} is not supported: application/fhir+ndjson only`,
        "_outputFormat",
      );
    }
  }
  const sinces = all("_since");
  if (sinces.length > 1) throw fhirError(400, "invalid", "_since given twice", "_since");
  const since = sinces[0];
  if (since !== undefined && (!INSTANT.test(since) || Number.isNaN(Date.parse(since)))) {
    throw fhirError(400, "invalid", `_since must be an instant, not "${since}"`, "_since");
  }
  const level = k.level;
  const inCompartment = (t: string) => t === "Patient" || compartmentParams(t) !== undefined;
  const exportable = (t: string) =>
    (RESOURCE_TYPES as readonly string[]).includes(t) && !NOT_EXPORTED.has(t) &&
    (level === "system" || inCompartment(t));

  // _type: the types asked for (each checked), or every type the level exports.
  const asked = [...new Set(all("_type").flatMap(splitList))];
  const requested: string[] = [];
  for (const t of asked) {
    if (exportable(t)) requested.push(t);
    else {
      const why = !(RESOURCE_TYPES as readonly string[]).includes(t)
        ? "is not a resource type this server serves"
        : NOT_EXPORTED.has(t)
        ? "is not exported (the audit trail is read through the audit API)"
        : "is not in the Patient compartment";
      if (!prefer.lenient) throw fhirError(400, "not-supported", `_type ${t} ${why}`, "_type");
      warnings.push(`_type ${t} ${why}: left out`);
    }
  }
  if (asked.length && !requested.length) {
    throw fhirError(400, "not-supported", "_type names no type this export can include", "_type");
  }
  const explicit = requested.length > 0;
  const candidates = explicit ? requested : RESOURCE_TYPES.filter(exportable);

  // _typeFilter: `Type?query`, each read as the server's own search would.
  const filters = new Map<string, string[]>();
  for (const raw of all("_typeFilter").flatMap(splitList)) {
    const q = raw.indexOf("?");
    const type = q < 0 ? raw : raw.slice(0, q);
    const query = q < 0 ? "" : raw.slice(q + 1);
    if (!exportable(type) || (explicit && !requested.includes(type))) {
      unsupported(`_typeFilter ${raw}: ${type} is not one of the types exported`, "_typeFilter");
      continue;
    }
    const pairs = [...new URLSearchParams(query)];
    const result = pairs.find(([name]) => RESULT_PARAMS.test(name));
    if (result) {
      unsupported(`_typeFilter ${raw}: ${result[0]} is not a search criterion`, "_typeFilter");
      continue;
    }
    try {
      parseSearch(type, pairs, {
        lenient: prefer.lenient,
        defaultCount: 1,
        maxCount: 1,
        baseUrl: fhir.context.baseUrl,
      });
    } catch (e) {
      if (e instanceof FhirError) {
        throw fhirError(400, "invalid", `_typeFilter ${raw}: ${e.message}`, "_typeFilter");
      }
      throw e;
    }
    filters.set(type, [...filters.get(type) ?? [], query]);
  }

  // patient (Patient and Group level): references to Patients.
  const patientRefs = all("patient");
  let patients: string[] | undefined;
  if (patientRefs.length) {
    if (level === "system") unsupported("patient applies to Patient and Group exports", "patient");
    else patients = [...new Set(patientRefs.flatMap(splitList).map(patientId))];
  }
  let group: string | undefined;
  if (level === "group") {
    group = k.group!;
    const members = await groupMembers(fhir, group, k.caller);
    patients = patients ? patients.filter((p) => members.includes(p)) : members;
  }

  // The caller's reach on each type; a type it may not read is refused when asked for by name,
  // left out otherwise.
  const ctx: FhirContext = { ...fhir.context, caller: k.caller };
  const types: TypePlan[] = [];
  let refusal: unknown;
  for (const type of candidates) {
    try {
      const reach = reachOf(ctx, type, "search");
      types.push({
        type,
        ...(reach.patient !== undefined ? { patient: reach.patient } : {}),
        ...(reach.queries ? { queries: reach.queries } : {}),
        ...(filters.has(type) ? { typeFilters: filters.get(type) } : {}),
      });
    } catch (e) {
      if (!(e instanceof FhirError) || e.status !== 403) throw e;
      if (explicit && !prefer.lenient) throw e;
      if (explicit) warnings.push(`${type} left out: ${e.message}`);
      refusal ??= e;
    }
  }
  if (!types.length) throw refusal ?? fhirError(400, "invalid", "Nothing to export");
  return {
    plan: {
      level,
      ...(group !== undefined ? { group } : {}),
      ...(patients ? { patients } : {}),
      ...(since !== undefined ? { since: new Date(since).toISOString() } : {}),
      types,
    },
    warnings,
  };
}

function splitList(value: string): string[] {
  return value.split(",").map((s) => s.trim()).filter(Boolean);
}

/** `Patient/1`, or an absolute URL ending so, → `1`; 400 for anything else. */
function patientId(reference: string): string {
  const m = /(?:^|\/)Patient\/([A-Za-z0-9\-.]{1,64})$/.exec(reference);
  if (!m) {
    throw fhirError(400, "invalid", `patient ${reference} is not a Patient reference`, "patient");
  }
  return m[1];
}

/** The parameters of a POST kick-off's Parameters body, as name/value pairs. */
function bodyParams(k: KickOff): [string, string][] {
  if (k.method !== "POST" || k.body === undefined || k.body === null) return [];
  const body = k.body as Parameters;
  if (body.resourceType !== "Parameters") {
    throw fhirError(400, "invalid", "A POST $export takes a Parameters resource");
  }
  return (body.parameter ?? []).map((p): [string, string] => [p.name ?? "", valueOf(p)]);
}

function valueOf(p: ParametersParameter): string {
  const v = p.valueString ?? p.valueCode ?? p.valueInstant ?? p.valueDateTime ?? p.valueUri ??
    p.valueCanonical ?? p.valueId ?? p.valueReference?.reference ??
    (p.valueBoolean === undefined ? undefined : String(p.valueBoolean));
  if (v === undefined) {
    throw fhirError(400, "invalid", `Parameter ${p.name} has no value this server reads`, p.name);
  }
  return v;
}

/** The ids of the Group's Patient members, read as the caller (its access applies). */
async function groupMembers(
  fhir: FhirService,
  id: string,
  caller: Caller | undefined,
): Promise<string[]> {
  const result = await fhir.interact({ method: "GET", path: ["Group", id], query: [] }, caller);
  const group = result.body as Group | undefined;
  if (result.status !== 200 || group?.resourceType !== "Group") {
    throw fhirError(404, "not-found", `Group/${id} not found`);
  }
  const ids = new Set<string>();
  for (const m of group.member ?? []) {
    const ref = m.entity?.reference ?? "";
    const match = /(?:^|\/)Patient\/([A-Za-z0-9\-.]{1,64})$/.exec(ref);
    if (match && !m.inactive) ids.add(match[1]);
  }
  return [...ids];
}
