/**
 * @module Computes a resource's search index rows on write: each search parameter's FHIRPath
 * expression is evaluated (@medplum/core) and its values turned into rows of the parameter's kind.
 */
import {
  convertToSearchableNumbers,
  convertToSearchableQuantities,
  convertToSearchableReferences,
  convertToSearchableTokens,
  convertToSearchableUris,
  evalFhirPathTyped,
  type FhirPathAtom,
  parseFhirPath,
  toTypedValue,
  type TypedValue,
} from "@medplum/core";
import type { Resource, SearchParameter } from "@medplum/fhirtypes";
import { loadDefinitions, searchParamsOf } from "./definitions.ts";
import { type DateRange, dateRange, toTimestamp } from "./search/dates.ts";
import { normalizeText, parseReference } from "./search/values.ts";

export interface IndexRows {
  string: { code: string; grp: number; norm: string; value: string }[];
  token: {
    code: string;
    grp: number;
    system: string | null;
    value: string | null;
    text: string | null;
  }[];
  reference: {
    code: string;
    grp: number;
    target_type: string | null;
    target_id: string | null;
    ref: string;
  }[];
  date: { code: string; grp: number; lo: string; hi: string }[];
  number: { code: string; grp: number; value: string }[];
  quantity: {
    code: string;
    grp: number;
    value: string;
    system: string | null;
    unit_code: string | null;
    unit: string | null;
  }[];
  uri: { code: string; grp: number; value: string }[];
}

export type IndexKind = keyof IndexRows;

/** Parameters answered from the resource table's own columns, not from index rows. */
export const COLUMN_PARAMS = new Set(["_id", "_lastUpdated"]);
const TEXT_SYSTEM = "\u0000text";

export function emptyRows(): IndexRows {
  return { string: [], token: [], reference: [], date: [], number: [], quantity: [], uri: [] };
}

/** Every index row of `resource`; `baseUrl` makes references to this server's own URL local. */
export function indexResource(resource: Resource, baseUrl: string): IndexRows {
  const rows = emptyRows();
  // References to this server by absolute URL are indexed as the relative references they are.
  const absolute = `"reference":"${baseUrl}/`;
  const json = JSON.stringify(resource);
  if (json.includes(absolute)) resource = JSON.parse(json.replaceAll(absolute, `"reference":"`));
  const root = [toTypedValue(resource)];
  for (const def of searchParamsOf(resource.resourceType).values()) {
    if (COLUMN_PARAMS.has(def.code)) continue;
    const sp = def.resource;
    const values = evalFhirPathTyped(expressionFor(resource.resourceType, sp), root);
    if (values.length === 0) continue;
    if (def.type === "composite") indexComposite(rows, sp, values, baseUrl);
    else addValues(rows, def.type, def.code, 0, values, baseUrl);
  }
  return rows;
}

const parsed = new Map<string, FhirPathAtom>();

/**
 * The parsed FHIRPath of a parameter for one type. Parameters defined on Resource
 * (`Resource.meta.tag`) are rewritten to the concrete type, which FHIRPath needs to match.
 */
function expressionFor(type: string, sp: SearchParameter): FhirPathAtom {
  return parsedOnce(`${type}|${sp.url}`, () => expressionText(type, sp));
}

/** Parses a FHIRPath expression the first time its key is seen. */
function parsedOnce(key: string, text: () => string): FhirPathAtom {
  let atom = parsed.get(key);
  if (!atom) parsed.set(key, atom = parseFhirPath(text()));
  return atom;
}

/** The part of a (possibly multi-type) expression that applies to `type`. */
function expressionText(type: string, sp: SearchParameter): string {
  const expression = sp.expression as string;
  const generic = (sp.base as string[] | undefined)?.some((b) =>
    b === "Resource" || b === "DomainResource"
  );
  if (generic) return expression.replace(/\b(?:Resource|DomainResource)\./g, `${type}.`);
  const parts = expression.split(" | ").map((s) => s.trim());
  const own = parts.filter((part) => new RegExp(`^\\(?${type}(\\.|\\)|$)`).test(part));
  if (own.length === 0 || own.length === parts.length) return expression;
  try {
    const text = own.join(" | ");
    parseFhirPath(text);
    return text;
  } catch {
    return expression;
  }
}

function indexComposite(
  rows: IndexRows,
  sp: SearchParameter,
  roots: TypedValue[],
  baseUrl: string,
): void {
  const { byUrl } = loadDefinitions();
  roots.forEach((root, g) => {
    sp.component?.forEach((component, i) => {
      const part = byUrl.get(component.definition as string);
      if (!part?.type || !component.expression) return;
      const atom = parsedOnce(`${sp.url}$${i}`, () => component.expression as string);
      const values = evalFhirPathTyped(atom, [root]);
      addValues(rows, part.type, `${sp.code}$${i}`, g + 1, values, baseUrl);
    });
  });
}

function addValues(
  rows: IndexRows,
  type: string,
  code: string,
  grp: number,
  values: TypedValue[],
  baseUrl: string,
): void {
  switch (type) {
    case "string":
      for (const value of searchableStrings(values)) {
        rows.string.push({ code, grp, norm: normalizeText(value), value });
      }
      break;
    case "token":
      for (const t of convertToSearchableTokens(values, { textSearchSystem: TEXT_SYSTEM })) {
        if (t.system === TEXT_SYSTEM) {
          if (t.value) {
            rows.token.push({ code, grp, system: null, value: null, text: normalizeText(t.value) });
          }
        } else if (t.value !== undefined || t.system !== undefined) {
          rows.token.push({
            code,
            grp,
            system: t.system ?? null,
            value: t.value ?? null,
            text: null,
          });
        }
      }
      break;
    case "reference":
      for (const ref of convertToSearchableReferences(values)) {
        const parsed = parseReference(ref, baseUrl);
        rows.reference.push({
          code,
          grp,
          target_type: parsed?.type ?? null,
          target_id: parsed?.id ?? null,
          ref,
        });
      }
      for (const v of values) {
        const identifier = (v.value as { identifier?: { system?: string; value?: string } })
          ?.identifier;
        if (v.type === "Reference" && identifier?.value) {
          rows.token.push({
            code: `${code}:identifier`,
            grp,
            system: identifier.system ?? null,
            value: identifier.value,
            text: null,
          });
        }
      }
      break;
    case "date":
      for (const range of searchableDates(values)) {
        rows.date.push({ code, grp, lo: toTimestamp(range.lo), hi: toTimestamp(range.hi) });
      }
      break;
    case "number":
      for (const [value] of convertToSearchableNumbers(values)) {
        if (value !== undefined && Number.isFinite(value)) {
          rows.number.push({ code, grp, value: String(value) });
        }
      }
      break;
    case "quantity":
      for (const q of convertToSearchableQuantities(values)) {
        if (typeof q.value !== "number") continue;
        rows.quantity.push({
          code,
          grp,
          value: String(q.value),
          system: q.system ?? null,
          unit_code: q.code ?? null,
          unit: q.unit ?? null,
        });
      }
      break;
    case "uri":
      for (const value of convertToSearchableUris(values)) {
        if (value) rows.uri.push({ code, grp, value });
      }
      break;
  }
}

/** Strings a string parameter matches: each part of a HumanName or Address, or the value itself. */
function searchableStrings(values: TypedValue[]): string[] {
  const out: string[] = [];
  const push = (s: unknown) => {
    if (typeof s === "string" && s.trim()) out.push(s.trim());
  };
  for (const { type, value } of values) {
    if (type === "HumanName") {
      const n = value as Record<string, unknown>;
      for (const k of ["text", "family"]) push(n[k]);
      for (const k of ["given", "prefix", "suffix"]) (n[k] as string[] | undefined)?.forEach(push);
    } else if (type === "Address") {
      const a = value as Record<string, unknown>;
      for (const k of ["text", "city", "district", "state", "postalCode", "country"]) push(a[k]);
      (a.line as string[] | undefined)?.forEach(push);
    } else if (typeof value === "string") {
      push(value);
    } else if (value && typeof value === "object" && "display" in value) {
      push((value as { display?: string }).display);
    }
  }
  return out;
}

/** Ranges a date parameter matches: dates, instants, Periods (open ends infinite) and Timing events. */
function searchableDates(values: TypedValue[]): DateRange[] {
  const out: DateRange[] = [];
  for (const { type, value } of values) {
    if (typeof value === "string") {
      const r = dateRange(value);
      if (r) out.push(r);
    } else if (type === "Period") {
      const p = value as { start?: string; end?: string };
      const start = p.start ? dateRange(p.start) : undefined;
      const end = p.end ? dateRange(p.end) : undefined;
      if (start || end) out.push({ lo: start?.lo ?? -Infinity, hi: end?.hi ?? Infinity });
    } else if (type === "Timing") {
      const t = value as {
        event?: string[];
        repeat?: { boundsPeriod?: { start?: string; end?: string } };
      };
      for (const e of t.event ?? []) {
        const r = dateRange(e);
        if (r) out.push(r);
      }
      const b = t.repeat?.boundsPeriod;
      if (b?.start || b?.end) {
        out.push({
          lo: b.start ? dateRange(b.start)?.lo ?? -Infinity : -Infinity,
          hi: b.end ? dateRange(b.end)?.hi ?? Infinity : Infinity,
        });
      }
    }
  }
  return out;
}
