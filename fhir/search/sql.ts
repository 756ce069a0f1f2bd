/**
 * @module Turns a parsed search into SQL over the index tables: each filter is an EXISTS over one
 * index table (NOT EXISTS for `:not` and `:missing=true`), chains and `_has` join through
 * sp_reference, sorting uses per-row min/max subqueries, and paging is keyset (stable under writes).
 * Also the statements of the total and of `_include`/`_revinclude`.
 */
import type { SearchParamDef } from "../definitions.ts";
import { toTimestamp } from "./dates.ts";
import type {
  Cursor,
  Filter,
  IncludeSpec,
  Prefix,
  SearchRequest,
  SortKey,
  Value,
} from "./model.ts";
import { normalizeText } from "./values.ts";
import { escapeLike, Params as StatementParams } from "../../db/params.ts";

/** The statement's parameters (`db/params.ts`), and table aliases unique within it. */
export class Params extends StatementParams {
  #aliases = 0;
  /** A table alias unique within the statement being built. */
  alias(prefix: string): string {
    return `${prefix}${++this.#aliases}`;
  }
}

const TABLES: Record<string, string> = {
  string: "sp_string",
  token: "sp_token",
  reference: "sp_reference",
  date: "sp_date",
  number: "sp_number",
  quantity: "sp_quantity",
  uri: "sp_uri",
};

/** The SQL condition that resource alias `r` satisfies `filter`. */
export function filterSql(filter: Filter, r: string, p: Params): string {
  switch (filter.kind) {
    case "id": {
      if (filter.values.length === 0) return "TRUE";
      const list = filter.values.map((v) => p.add(v)).join(", ");
      return `${r}.id ${filter.not ? "NOT IN" : "IN"} (${list})`;
    }
    case "lastUpdated":
      return or(
        filter.values.map((v) =>
          dateCond(v, `${r}.last_updated`, `(${r}.last_updated + interval '1 millisecond')`, p)
        ),
      );
    case "chain": {
      const s = p.alias("c");
      const t = p.alias("t");
      const alternatives = filter.targets.map(({ type, inner }) =>
        `(${t}.type = ${p.add(type)} AND ${filterSql(inner, t, p)})`
      );
      return `EXISTS (SELECT 1 FROM sp_reference ${s} JOIN resource ${t} ON ${t}.type = ${s}.target_type AND ${t}.id = ${s}.target_id
        WHERE ${s}.rid = ${r}.rid AND ${s}.code = ${
        p.add(filter.def.code)
      } AND NOT ${t}.deleted AND (${alternatives.join(" OR ")}))`;
    }
    case "has": {
      const s = p.alias("h");
      const h = p.alias("hr");
      return `EXISTS (SELECT 1 FROM sp_reference ${s} JOIN resource ${h} ON ${h}.rid = ${s}.rid
        WHERE ${s}.type = ${p.add(filter.sourceType)} AND ${s}.code = ${p.add(filter.def.code)}
          AND ${s}.target_type = ${r}.type AND ${s}.target_id = ${r}.id AND NOT ${h}.deleted
          AND ${filterSql(filter.inner, h, p)})`;
    }
    case "param":
      return paramSql(filter, r, p);
    case "anyOf": {
      if (!filter.groups.length) return "FALSE";
      const groups = filter.groups.map((g) =>
        g.length ? `(${g.map((f) => filterSql(f, r, p)).join(" AND ")})` : "TRUE"
      );
      return `(${groups.join(" OR ")})`;
    }
    case "compartment": {
      // IN (not EXISTS) lets the planner start from the patient's index rows when that is cheaper.
      const c = p.alias("m");
      const codes = filter.codes.map((code) => p.add(code)).join(", ");
      const linked = codes
        ? `${r}.rid IN (SELECT ${c}.rid FROM sp_reference ${c} WHERE ${c}.type = ${
          p.add(filter.type)
        } AND ${c}.code IN (${codes}) AND ${c}.target_id = ${
          p.add(filter.patient)
        } AND ${c}.target_type = 'Patient')`
        : "FALSE";
      return filter.self ? `(${r}.id = ${p.add(filter.patient)} OR ${linked})` : linked;
    }
  }
}

type ParamFilter = Extract<Filter, { kind: "param" }>;

/**
 * A filter that can drive the search from its index table alone: a plain positive match (not
 * `:not`, `:missing` or composite). Index rows exist only for current, live resources (a delete
 * clears them), so its rows name the matching resources without a join to `resource`.
 */
function drivingFilter(req: SearchRequest): ParamFilter | undefined {
  const usesResourceColumns =
    req.filters.some((f) =>
      f.kind === "id" || f.kind === "lastUpdated" || f.kind === "has" || f.kind === "anyOf" ||
      (f.kind === "compartment" && f.self)
    ) ||
    req.sort.some((k) => k.code === "_id" || k.code === "_lastUpdated");
  if (usesResourceColumns) return undefined;
  return req.filters.find((f): f is ParamFilter =>
    f.kind === "param" && f.def.type !== "composite" && f.missing === undefined &&
    f.modifier !== "not" && f.values.length > 0
  );
}

/** `FROM …` and `WHERE …` of the matching resources' rids, as alias `r`. */
function baseFrom(req: SearchRequest, p: Params): { from: string; where: string } {
  const driver = drivingFilter(req);
  if (!driver) return { from: "resource r", where: baseWhere(req, "r", p) };
  const { table, code } = paramTable(driver);
  const s = p.alias("d");
  const values = or(driver.values.map((v) => valueSql(v, driver.modifier, s, p)));
  const from = `(SELECT DISTINCT ${s}.rid FROM ${table} ${s} WHERE ${s}.type = ${
    p.add(driver.type)
  } AND ${s}.code = ${p.add(code)} AND ${values}) r`;
  const rest = req.filters.filter((f) => f !== driver).map((f) => filterSql(f, "r", p));
  return { from, where: rest.length ? rest.join(" AND ") : "TRUE" };
}

function paramTable(filter: ParamFilter): { table: string; code: string } {
  const byIdentifier = filter.modifier === "identifier";
  return {
    table: byIdentifier ? "sp_token" : TABLES[filter.def.type],
    code: byIdentifier ? `${filter.def.code}:identifier` : filter.def.code,
  };
}

function paramSql(filter: ParamFilter, r: string, p: Params): string {
  const { def, modifier } = filter;
  const s = p.alias("s");
  const { table, code } = paramTable(filter);
  if (def.type === "composite") return compositeSql(filter, r, p);
  const head = `SELECT 1 FROM ${table} ${s} WHERE ${s}.rid = ${r}.rid AND ${s}.type = ${
    p.add(filter.type)
  } AND ${s}.code = ${p.add(code)}`;
  if (filter.missing !== undefined) return `${filter.missing ? "NOT " : ""}EXISTS (${head})`;
  const conds = or(filter.values.map((v) => valueSql(v, modifier, s, p)));
  return `${modifier === "not" ? "NOT " : ""}EXISTS (${head} AND ${conds})`;
}

function compositeSql(filter: Extract<Filter, { kind: "param" }>, r: string, p: Params): string {
  const components = filter.def.resource.component ?? [];
  const alternatives = filter.values.map((value) => {
    if (value.kind !== "composite") return "FALSE";
    const aliases = components.map(() => p.alias("k"));
    const from: string[] = [];
    const where: string[] = [];
    value.parts.forEach((part, i) => {
      const a = aliases[i];
      from.push(`${TABLES[part.kind]} ${a}`);
      where.push(
        `${a}.rid = ${r}.rid AND ${a}.type = ${p.add(filter.type)} AND ${a}.code = ${
          p.add(`${filter.def.code}$${i}`)
        }`,
      );
      if (i > 0) where.push(`${a}.grp = ${aliases[0]}.grp`);
      where.push(valueSql(part, undefined, a, p));
    });
    return `EXISTS (SELECT 1 FROM ${from.join(", ")} WHERE ${where.join(" AND ")})`;
  });
  return or(alternatives);
}

function valueSql(
  v: Value,
  modifier: string | undefined,
  s: string,
  p: Params,
): string {
  switch (v.kind) {
    case "string": {
      const norm = escapeLike(normalizeText(v.text));
      if (modifier === "exact") return `${s}.value = ${p.add(v.text)}`;
      if (modifier === "contains") return `${s}.norm LIKE ${p.add(`%${norm}%`)}`;
      return `${s}.norm LIKE ${p.add(`${norm}%`)}`;
    }
    case "token": {
      if (modifier === "text") {
        const norm = escapeLike(normalizeText(v.code ?? ""));
        return `(${s}.text LIKE ${p.add(`${norm}%`)} OR ${s}.text LIKE ${p.add(`% ${norm}%`)})`;
      }
      const conds: string[] = [];
      if (v.code !== undefined) conds.push(`${s}.value = ${p.add(v.code)}`);
      if (v.system === null) conds.push(`${s}.system IS NULL`);
      else if (v.system !== undefined) conds.push(`${s}.system = ${p.add(v.system)}`);
      if (v.code === undefined) conds.push(`${s}.value IS NOT NULL`);
      return and(conds);
    }
    case "reference": {
      // An empty value is a url too (one no reference has): never an undefined id parameter.
      if (v.url !== undefined) return `${s}.ref = ${p.add(v.url)}`;
      const conds = [`${s}.target_id = ${p.add(v.id)}`];
      if (v.type) conds.push(`${s}.target_type = ${p.add(v.type)}`);
      return and(conds);
    }
    case "date":
      return dateCond(v, `${s}.lo`, `${s}.hi`, p);
    case "number":
      return numberCond(v.prefix, v.value, v.half, `${s}.value`, p);
    case "quantity": {
      const conds = [numberCond(v.prefix, v.value, v.half, `${s}.value`, p)];
      if (v.system) conds.push(`${s}.system = ${p.add(v.system)}`);
      if (v.unit) {
        conds.push(
          v.system
            ? `${s}.unit_code = ${p.add(v.unit)}`
            : `(${s}.unit_code = ${p.add(v.unit)} OR ${s}.unit = ${p.add(v.unit)})`,
        );
      }
      return and(conds);
    }
    case "uri":
      if (modifier === "below") return `${s}.value LIKE ${p.add(`${escapeLike(v.text)}%`)}`;
      if (modifier === "above") return `${p.add(v.text)} LIKE ${s}.value || '%'`;
      return `${s}.value = ${p.add(v.text)}`;
    case "composite":
      return "FALSE";
  }
}

/** Date prefixes on half-open ranges (search.html §3.1.1.5.2): eq contains, gt/lt overlap. */
function dateCond(v: Extract<Value, { kind: "date" }>, lo: string, hi: string, p: Params): string {
  const ts = (ms: number) => p.add(toTimestamp(ms), "::timestamptz");
  switch (v.prefix) {
    case "eq":
      return `(${lo} >= ${ts(v.lo)} AND ${hi} <= ${ts(v.hi)})`;
    case "ne":
      return `NOT (${lo} >= ${ts(v.lo)} AND ${hi} <= ${ts(v.hi)})`;
    case "gt":
      return `${hi} > ${ts(v.hi)}`;
    case "lt":
      return `${lo} < ${ts(v.lo)}`;
    case "ge":
      return `(${lo} >= ${ts(v.lo)} OR ${hi} > ${ts(v.hi)})`;
    case "le":
      return `(${hi} <= ${ts(v.hi)} OR ${lo} < ${ts(v.lo)})`;
    case "sa":
      return `${lo} >= ${ts(v.hi)}`;
    case "eb":
      return `${hi} <= ${ts(v.lo)}`;
    case "ap": {
      const margin = Math.max(0.1 * Math.abs(Date.now() - v.lo), 86_400_000);
      return `(${lo} < ${ts(v.hi + margin)} AND ${hi} > ${ts(v.lo - margin)})`;
    }
  }
}

/** Number prefixes; `eq` uses the value's implicit precision [value - half, value + half). */
function numberCond(prefix: Prefix, value: string, half: string, col: string, p: Params): string {
  const n = p.add(value, "::numeric");
  switch (prefix) {
    case "eq":
    case "ne": {
      const h = p.add(half, "::numeric");
      const inRange = `(${col} >= ${n} - ${h} AND ${col} < ${n} + ${h})`;
      return prefix === "eq" ? inRange : `NOT ${inRange}`;
    }
    case "gt":
    case "sa":
      return `${col} > ${n}`;
    case "lt":
    case "eb":
      return `${col} < ${n}`;
    case "ge":
      return `${col} >= ${n}`;
    case "le":
      return `${col} <= ${n}`;
    case "ap":
      return `(${col} >= ${n} - abs(${n}) * 0.1 AND ${col} <= ${n} + abs(${n}) * 0.1)`;
  }
}

function or(parts: string[]): string {
  if (parts.length === 0) return "FALSE";
  return parts.length === 1 ? parts[0] : `(${parts.join(" OR ")})`;
}

function and(parts: string[]): string {
  if (parts.length === 0) return "TRUE";
  return parts.length === 1 ? parts[0] : `(${parts.join(" AND ")})`;
}

/** A sort key's SQL expression and the type its cursor value is cast back to. */
function sortExpr(key: SortKey, r: string, p: Params): { expr: string; cast: string } {
  if (key.code === "_id") return { expr: `${r}.id`, cast: "::text" };
  if (key.code === "_lastUpdated") return { expr: `${r}.last_updated`, cast: "::timestamptz" };
  const def = key.def as SearchParamDef;
  const agg = key.descending ? "max" : "min";
  const column: Record<string, [string, string]> = {
    string: ["norm", "::text"],
    token: ["value", "::text"],
    reference: ["ref", "::text"],
    date: [key.descending ? "hi" : "lo", "::timestamptz"],
    number: ["value", "::numeric"],
    quantity: ["value", "::numeric"],
    uri: ["value", "::text"],
  };
  const [col, cast] = column[def.type];
  return {
    expr: `(SELECT ${agg}(x.${col}) FROM ${
      TABLES[def.type]
    } x WHERE x.rid = ${r}.rid AND x.code = ${p.add(def.code)})`,
    cast,
  };
}

export interface SearchSql {
  text: string;
  params: unknown[];
  /** How many sort values precede the rid in each row's cursor. */
  sortCount: number;
}

/** The page query: rows (rid, content, k0..kn as text) in page order, `count + 1` of them. */
export function pageSql(req: SearchRequest): SearchSql {
  const p = new Params();
  const { from, where } = baseFrom(req, p);
  const keys = req.sort.map((k) => ({ ...sortExpr(k, "r", p), descending: k.descending }));
  const reverse = req.cursor?.direction === "prev";
  const select = keys.map((k, i) => `${k.expr} AS k${i}`).join(", ");
  // The page is chosen on rids and sort keys alone; content is read for its rows only.
  const inner = `SELECT r.rid${select ? `, ${select}` : ""} FROM ${from} WHERE ${where}`;
  // Order: for each key, nulls last, then the value; rid breaks ties. `prev` reads backwards.
  const order: { col: string; desc: boolean; cast: string; nullFlag?: boolean }[] = [];
  keys.forEach((k, i) => {
    order.push({ col: `k${i}`, desc: false, cast: k.cast, nullFlag: true });
    order.push({ col: `k${i}`, desc: k.descending, cast: k.cast });
  });
  order.push({ col: "rid", desc: false, cast: "::bigint" });
  if (reverse) order.forEach((o) => (o.desc = !o.desc));
  const orderBy = (alias: string) =>
    order.map((o) =>
      o.nullFlag
        ? `(${alias}.${o.col} IS NULL) ${o.desc ? "DESC" : "ASC"}`
        : `${alias}.${o.col} ${o.desc ? "DESC" : "ASC"}`
    ).join(", ");
  const keyset = req.cursor ? keysetSql(order, req.cursor, p) : "TRUE";
  const outSelect = keys.map((_, i) => `g.k${i}::text AS k${i}`).join(", ");
  const text = `SELECT g.rid, c.content${outSelect ? `, ${outSelect}` : ""} FROM (
      SELECT q.* FROM (${inner}) q WHERE ${keyset} ORDER BY ${orderBy("q")} LIMIT ${
    p.add(req.count + 1, "::int")
  }
    ) g JOIN resource c ON c.rid = g.rid ORDER BY ${orderBy("g")}`;
  return { text, params: p.values, sortCount: keys.length };
}

function keysetSql(
  order: { col: string; desc: boolean; cast: string; nullFlag?: boolean }[],
  cursor: Cursor,
  p: Params,
): string {
  // cursor.values: one per sort key, then the rid.
  const valueOf = (i: number): string | number | null => {
    const keyIndex = Math.floor(i / 2);
    return i === order.length - 1
      ? cursor.values[cursor.values.length - 1]
      : cursor.values[keyIndex] ?? null;
  };
  const eq: string[] = [];
  const after: string[] = [];
  order.forEach((o, i) => {
    const v = valueOf(i);
    const col = `q.${o.col}`;
    if (o.nullFlag) {
      const isNull = v === null;
      eq.push(isNull ? `${col} IS NULL` : `${col} IS NOT NULL`);
      // false (a value) sorts before true (null); reversed when the flag is read descending.
      after.push(
        !o.desc ? (isNull ? "FALSE" : `${col} IS NULL`) : (isNull ? `${col} IS NOT NULL` : "FALSE"),
      );
    } else if (v === null) {
      eq.push(`${col} IS NULL`);
      after.push("FALSE");
    } else {
      const param = p.add(String(v), o.cast);
      eq.push(`${col} = ${param}`);
      after.push(`${col} ${o.desc ? "<" : ">"} ${param}`);
    }
  });
  const disjuncts = order.map((_, j) => [...eq.slice(0, j), after[j]].join(" AND "));
  return `(${disjuncts.map((d) => `(${d})`).join(" OR ")})`;
}

/** The WHERE clause shared by the page and the count. */
function baseWhere(req: SearchRequest, r: string, p: Params): string {
  const conds = [`${r}.type = ${p.add(req.type)}`, `NOT ${r}.deleted`];
  for (const f of req.filters) conds.push(filterSql(f, r, p));
  return conds.join(" AND ");
}

export function countSql(req: SearchRequest): { text: string; params: unknown[] } {
  const p = new Params();
  const { from, where } = baseFrom(req, p);
  return { text: `SELECT count(*)::int AS n FROM ${from} WHERE ${where}`, params: p.values };
}

/**
 * `_include`: the resources that `spec`'s references from the rows `rids` point at (rid, content),
 * `limit` at most.
 */
export function forwardIncludeSql(
  spec: IncludeSpec,
  rids: number[],
  limit: number,
): { text: string; params: unknown[] } {
  const p = new Params();
  const list = rids.map((r) => p.add(r, "::bigint")).join(", ");
  const text = `SELECT DISTINCT t.rid, t.content FROM sp_reference s
       JOIN resource t ON t.type = s.target_type AND t.id = s.target_id
     WHERE s.rid IN (${list}) AND s.type = ${p.add(spec.sourceType)} AND s.code = ${
    p.add(spec.code)
  }
       AND NOT t.deleted${
    spec.targetType ? ` AND t.type = ${p.add(spec.targetType)}` : ""
  } LIMIT ${limit}`;
  return { text, params: p.values };
}

/**
 * `_revinclude`: the resources whose `spec` references point at the targets (ids by type; none
 * empty), as (rid, content), `limit` at most.
 */
export function reverseIncludeSql(
  spec: IncludeSpec,
  byType: Map<string, string[]>,
  limit: number,
): { text: string; params: unknown[] } {
  const p = new Params();
  const conds = [...byType].map(([type, ids]) =>
    `(s.target_type = ${p.add(type)} AND s.target_id IN (${ids.map((id) => p.add(id)).join(", ")}))`
  );
  const text =
    `SELECT DISTINCT h.rid, h.content FROM sp_reference s JOIN resource h ON h.rid = s.rid
     WHERE s.type = ${p.add(spec.sourceType)} AND s.code = ${p.add(spec.code)} AND NOT h.deleted
       AND (${conds.join(" OR ")}) LIMIT ${limit}`;
  return { text, params: p.values };
}
