/**
 * @module Parses FHIR search parameters (search.html) into a SearchRequest: modifiers, prefixes,
 * escaping, OR values, chains, `_has`, and the result parameters. Unknown parameters are errors
 * unless the caller asked for `Prefer: handling=lenient`.
 */
import {
  loadDefinitions as loadDefs,
  type SearchParamDef,
  searchParamsOf,
} from "../definitions.ts";
import { badRequest, notSupported } from "../../platform/outcome.ts";
import { isSupportedType } from "../resource_types.ts";
import { dateRange } from "./dates.ts";
import { checkCursor, decodeCursor } from "./cursor.ts";
import { includeProblem, parseInclude } from "./include.ts";
import type { Filter, Prefix, SearchRequest, SortKey, Value } from "./model.ts";
import { invalidCharacter, parseReference } from "./values.ts";

export interface ParseOptions {
  lenient: boolean;
  defaultCount: number;
  maxCount: number;
  baseUrl: string;
}

const PREFIXES = new Set(["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"]);
const MODIFIERS: Record<string, string[]> = {
  string: ["exact", "contains", "missing"],
  token: ["not", "text", "missing"],
  reference: ["missing", "identifier"],
  date: ["missing"],
  number: ["missing"],
  quantity: ["missing"],
  uri: ["missing", "below", "above"],
  composite: [],
};
const RESULT_PARAMS = new Set([
  "_count",
  "_sort",
  "_total",
  "_summary",
  "_elements",
  "_include",
  "_revinclude",
  "_cursor",
  "_format",
  "_pretty",
]);

/** Splits on unescaped `sep` and removes the escapes (`\,` `\|` `\$` `\\`). */
export function splitEscaped(value: string, sep: string): string[] {
  const out: string[] = [];
  let cur = "";
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (ch === "\\" && i + 1 < value.length) {
      cur += value[++i];
    } else if (ch === sep) {
      out.push(cur);
      cur = "";
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

/** Splits on the first unescaped `sep`; the parts keep their escapes. */
function splitFirstRaw(value: string, sep: string): [string, string] | undefined {
  for (let i = 0; i < value.length; i++) {
    if (value[i] === "\\") i++;
    else if (value[i] === sep) return [value.slice(0, i), value.slice(i + 1)];
  }
  return undefined;
}

function unescape(value: string): string {
  return value.replace(/\\(.)/g, "$1");
}

/** Splits on unescaped commas, keeping the escapes of the other separators. */
function splitOr(value: string): string[] {
  const out: string[] = [];
  let cur = "";
  for (let i = 0; i < value.length; i++) {
    if (value[i] === "\\" && i + 1 < value.length) {
      cur += value[i] + value[i + 1];
      i++;
    } else if (value[i] === ",") {
      out.push(cur);
      cur = "";
    } else cur += value[i];
  }
  out.push(cur);
  return out;
}

export function parseSearch(
  type: string,
  params: [string, string][],
  options: ParseOptions,
): SearchRequest {
  const request: SearchRequest = {
    type,
    filters: [],
    sort: [],
    count: options.defaultCount,
    total: "accurate",
    include: [],
    revinclude: [],
    used: [],
  };
  for (const [rawKey, rawValue] of params) {
    checkCharacters(rawKey, rawKey);
    checkCharacters(rawValue, rawKey);
    const key = rawKey.trim();
    if (RESULT_PARAMS.has(key) || key.startsWith("_include") || key.startsWith("_revinclude")) {
      parseResultParam(request, key, rawValue, options);
      continue;
    }
    const filter = parseFilter(type, key, rawValue, options);
    if (filter) {
      request.filters.push(filter);
      request.used.push([key, rawValue]);
    }
  }
  if (request.cursor) checkCursor(request, request.cursor);
  return request;
}

/** A 400 naming the parameter when `text` holds a character no FHIR value can (U+0000, …). */
function checkCharacters(text: string, param: string): void {
  const what = invalidCharacter(text);
  if (!what) return;
  throw badRequest(
    `Search parameter ${JSON.stringify(param)} contains ${what}; FHIR values cannot contain ` +
      "control characters other than tab, carriage return and line feed",
    param,
  );
}

function parseResultParam(
  request: SearchRequest,
  key: string,
  value: string,
  options: ParseOptions,
): void {
  switch (key) {
    case "_count": {
      const n = Number(value);
      if (!/^\d+$/.test(value)) {
        throw badRequest(`_count must be a non-negative integer, got "${value}"`, "_count");
      }
      request.count = Math.min(n, options.maxCount);
      request.used.push([key, String(request.count)]);
      return;
    }
    case "_sort":
      request.sort = value.split(",").filter(Boolean).map((s) => parseSort(request.type, s));
      request.used.push([key, value]);
      return;
    case "_total":
      if (!["none", "estimate", "accurate"].includes(value)) {
        throw badRequest(`_total must be none, estimate or accurate, got "${value}"`, "_total");
      }
      request.total = value as SearchRequest["total"];
      request.used.push([key, value]);
      return;
    case "_summary":
      if (!["true", "text", "data", "count", "false"].includes(value)) {
        throw badRequest(
          `_summary must be true, text, data, count or false, got "${value}"`,
          "_summary",
        );
      }
      request.summary = value as SearchRequest["summary"];
      request.used.push([key, value]);
      return;
    case "_elements":
      request.elements = value.split(",").map((s) => s.trim()).filter(Boolean);
      request.used.push([key, value]);
      return;
    case "_cursor":
      request.cursor = decodeCursor(value);
      return;
    case "_format":
    case "_pretty":
      return;
  }
  const [name, modifier] = key.split(":");
  if (modifier && modifier !== "iterate" && modifier !== "recurse") {
    throw badRequest(`Unknown modifier :${modifier} on ${name}`, name);
  }
  const spec = parseInclude(
    value,
    Boolean(modifier),
    name === "_revinclude" ? undefined : request.type,
  );
  const unreachable = includeProblem(spec, name, request.type);
  if (unreachable) {
    // Strict handling (the default) refuses what can never match; lenient ignores it.
    if (options.lenient) return;
    throw badRequest(`${name}=${value}: ${unreachable}`, name);
  }
  (name === "_include" ? request.include : request.revinclude).push(spec);
  request.used.push([key, value]);
}

function parseSort(type: string, raw: string): SortKey {
  const descending = raw.startsWith("-");
  const code = descending ? raw.slice(1) : raw;
  if (code === "_id" || code === "_lastUpdated") return { code, descending };
  const def = searchParamsOf(type).get(code);
  if (!def || def.type === "composite") {
    throw badRequest(`Cannot sort ${type} by "${code}"`, "_sort");
  }
  return { code, descending, def };
}

function parseFilter(
  type: string,
  key: string,
  raw: string,
  options: ParseOptions,
): Filter | undefined {
  if (key.startsWith("_has:")) return parseHas(type, key, raw, options);
  const dot = key.indexOf(".");
  const head = dot >= 0 ? key.slice(0, dot) : key;
  const [code, modifier] = head.split(":", 2);
  if (code === "_id") {
    if (modifier && modifier !== "not" && modifier !== "missing") {
      throw badRequest(`Unknown modifier :${modifier} on _id`, key);
    }
    return { kind: "id", values: splitOr(raw).map(unescape), not: modifier === "not" };
  }
  if (code === "_lastUpdated") {
    if (modifier) throw badRequest(`Unknown modifier :${modifier} on _lastUpdated`, key);
    return { kind: "lastUpdated", values: splitOr(raw).map((v) => parseDate(v, key)) };
  }
  const def = searchParamsOf(type).get(code);
  if (!def) {
    if (options.lenient) return undefined;
    throw badRequest(`Unknown search parameter "${code}" for ${type}`, key);
  }
  if (dot >= 0) return parseChain(type, def, modifier, key.slice(dot + 1), raw, options);
  return parseParam(type, def, modifier, key, raw, options);
}

function parseParam(
  type: string,
  def: SearchParamDef,
  modifier: string | undefined,
  key: string,
  raw: string,
  options: ParseOptions,
): Filter {
  if (modifier) {
    const allowed = MODIFIERS[def.type] ?? [];
    const isTypeModifier = def.type === "reference" && isSupportedType(modifier);
    if (!allowed.includes(modifier) && !isTypeModifier) {
      throw notSupported(
        `Modifier :${modifier} is not supported on ${def.type} parameter "${def.code}"`,
      );
    }
  }
  if (modifier === "missing") {
    if (raw !== "true" && raw !== "false") {
      throw badRequest(`:missing takes true or false, got "${raw}"`, key);
    }
    return { kind: "param", type, def, modifier, values: [], missing: raw === "true" };
  }
  const values = splitOr(raw).map((v) => parseValue(def, v, modifier, key, options.baseUrl));
  if (def.type === "reference" && modifier && modifier !== "identifier") {
    for (const v of values) if (v.kind === "reference" && v.url === undefined) v.type = modifier;
  }
  return { kind: "param", type, def, modifier, values };
}

function parseValue(
  def: SearchParamDef,
  raw: string,
  modifier: string | undefined,
  key: string,
  baseUrl: string,
): Value {
  switch (def.type) {
    case "string":
      return { kind: "string", text: unescape(raw) };
    case "uri":
      return { kind: "uri", text: unescape(raw) };
    case "token":
      return parseToken(raw, modifier);
    case "reference":
      if (modifier === "identifier") return parseToken(raw, undefined);
      return parseRef(raw, baseUrl);
    case "date":
      return parseDate(raw, key);
    case "number":
      return { kind: "number", ...parseNumber(raw, key) };
    case "quantity":
      return parseQuantity(raw, key);
    case "composite":
      return parseComposite(def, raw, key, baseUrl);
  }
  throw notSupported(`Search parameter type ${def.type} is not supported`);
}

function parseToken(raw: string, modifier: string | undefined): Value {
  if (modifier === "text") return { kind: "token", code: unescape(raw) };
  const split = splitFirstRaw(raw, "|");
  if (!split) return { kind: "token", code: unescape(raw) };
  const [system, code] = split;
  return {
    kind: "token",
    system: system === "" ? null : unescape(system),
    code: code === "" ? undefined : unescape(code),
  };
}

function parseRef(raw: string, baseUrl: string): Value {
  const text = unescape(raw);
  if (/^[A-Za-z0-9\-.]{1,64}$/.test(text)) return { kind: "reference", id: text };
  const local = parseReference(text, baseUrl);
  if (local) return { kind: "reference", type: local.type, id: local.id };
  return { kind: "reference", url: text };
}

function splitPrefix(raw: string): [Prefix, string] {
  const p = raw.slice(0, 2);
  if (PREFIXES.has(p) && raw.length > 2 && /[\d-]/.test(raw[2])) return [p as Prefix, raw.slice(2)];
  return ["eq", raw];
}

function parseDate(raw: string, key: string): Extract<Value, { kind: "date" }> {
  const [prefix, text] = splitPrefix(raw);
  const range = dateRange(text);
  if (!range) throw badRequest(`Invalid date "${raw}" for ${key}`, key);
  return { kind: "date", prefix, ...range };
}

const MAX_NUMBER_DIGITS = 1000;
const MAX_NUMBER_EXPONENT = 1000;

/** A number with the half-width of its implicit precision: `6` → 0.5, `6.20` → 0.005, `1e2` → 50. */
function parseNumber(raw: string, key: string): { prefix: Prefix; value: string; half: string } {
  const [prefix, text] = splitPrefix(raw);
  const m = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(text);
  if (!m) throw badRequest(`Invalid number "${raw}" for ${key}`, key);
  // Postgres numeric takes exponents within ±1000; with at most 1000 digits the value and its
  // precision range [value - half, value + half) stay within what numeric holds.
  const digits = m[2].length + (m[3]?.length ?? 0);
  if (digits > MAX_NUMBER_DIGITS || Math.abs(Number(m[4] ?? 0)) > MAX_NUMBER_EXPONENT) {
    throw badRequest(
      `Number "${raw.length > 40 ? `${raw.slice(0, 40)}…` : raw}" for ${key} is out of range: ` +
        `at most ${MAX_NUMBER_DIGITS} digits and an exponent within ±${MAX_NUMBER_EXPONENT}`,
      key,
    );
  }
  const decimals = (m[3]?.length ?? 0) - Number(m[4] ?? 0);
  // The implicit range: ±5 in the first digit past the precision, as a decimal string.
  const half = decimals >= 0 ? `0.${"0".repeat(decimals)}5` : `5${"0".repeat(-decimals - 1)}`;
  return { prefix, value: text, half };
}

function parseQuantity(raw: string, key: string): Value {
  const parts = splitEscaped(raw, "|");
  if (parts.length !== 1 && parts.length !== 3) {
    throw badRequest(
      `Invalid quantity "${raw}" for ${key}: expected [prefix]number[|system|code]`,
      key,
    );
  }
  const number = parseNumber(parts[0], key);
  return {
    kind: "quantity",
    ...number,
    system: parts[1] || undefined,
    unit: parts[2] || undefined,
  };
}

function parseComposite(def: SearchParamDef, raw: string, key: string, baseUrl: string): Value {
  const components = def.resource.component ?? [];
  const raws: string[] = [];
  let rest = raw;
  for (let i = 0; i < components.length - 1; i++) {
    const split = splitFirstRaw(rest, "$");
    if (!split) {
      throw badRequest(`Composite "${key}" needs ${components.length} values joined by $`, key);
    }
    raws.push(split[0]);
    rest = split[1];
  }
  raws.push(rest);
  const { byUrl } = loadDefs();
  const parts = components.map((c, i) => {
    const sp = byUrl.get(c.definition as string);
    if (!sp?.type) throw notSupported(`Composite "${key}" has an unknown component`);
    return parseValue(
      { code: sp.code as string, type: sp.type, resource: sp },
      raws[i],
      undefined,
      key,
      baseUrl,
    );
  });
  return { kind: "composite", parts };
}

function parseChain(
  type: string,
  def: SearchParamDef,
  typeModifier: string | undefined,
  rest: string,
  raw: string,
  options: ParseOptions,
): Filter {
  if (def.type !== "reference") {
    throw badRequest(`Cannot chain through non-reference parameter "${def.code}"`);
  }
  const targets = typeModifier ? [typeModifier] : ((def.resource.target ?? []) as string[]);
  const [innerCode] = rest.split(/[.:]/, 1);
  const candidates = targets.filter((t) =>
    isSupportedType(t) &&
    (innerCode === "_id" || innerCode === "_lastUpdated" || searchParamsOf(t).has(innerCode))
  );
  if (candidates.length === 0) {
    throw badRequest(
      `Chain ${def.code}.${rest}: no target type of ${type}.${def.code} has parameter "${innerCode}"`,
    );
  }
  // Several target types may share the parameter: each is its own chain, OR-ed by the SQL builder.
  return {
    kind: "chain",
    def,
    targets: candidates.map((t) => ({
      type: t,
      inner: parseFilter(t, rest, raw, { ...options, lenient: false })!,
    })),
  };
}

function parseHas(type: string, key: string, raw: string, options: ParseOptions): Filter {
  const parts = key.split(":");
  // _has:Observation:patient:code  →  ["_has", "Observation", "patient", "code"]
  if (parts.length < 4) {
    throw badRequest(`Invalid _has "${key}": expected _has:Type:reference:parameter`, key);
  }
  const [, sourceType, refCode, ...innerParts] = parts;
  if (!isSupportedType(sourceType)) {
    throw badRequest(`Unknown resource type "${sourceType}" in ${key}`, key);
  }
  const def = searchParamsOf(sourceType).get(refCode);
  if (!def || def.type !== "reference") {
    throw badRequest(`"${refCode}" is not a reference parameter of ${sourceType}`, key);
  }
  const targets = (def.resource.target ?? []) as string[];
  if (!targets.includes(type)) {
    throw badRequest(`${sourceType}.${refCode} cannot refer to ${type}`, key);
  }
  const innerKey = innerParts.join(":");
  if (innerKey.startsWith("_has")) throw notSupported(`Nested _has is not supported (${key})`);
  const inner = parseFilter(sourceType, innerKey, raw, { ...options, lenient: false })!;
  return { kind: "has", sourceType, def, inner };
}
