/**
 * @module Runs a parsed search: the page query, the total, `_include`/`_revinclude` (with
 * `:iterate`), each statement made by `sql.ts`, and the searchset Bundle with self/next/previous
 * links.
 */
import type { Bundle, BundleEntry, BundleLink, Resource } from "@medplum/fhirtypes";
import type { Row, Sql } from "../../db/db.ts";
import { orderKeys } from "../../db/resource_repo.ts";
import type { FhirContext } from "../context.ts";
import type { Cursor, IncludeSpec, SearchRequest } from "./model.ts";
import { encodeCursor } from "./cursor.ts";
import { countSql, forwardIncludeSql, pageSql, reverseIncludeSql } from "./sql.ts";
import { shapeResource } from "./summary.ts";

export interface SearchPage {
  matches: Resource[];
  includes: Resource[];
  total?: number;
  next?: Cursor;
  prev?: Cursor;
}

const MAX_INCLUDES = 1000;
const ITERATE_DEPTH = 3;

export async function executeSearch(sql: Sql, req: SearchRequest): Promise<SearchPage> {
  const page: SearchPage = { matches: [], includes: [] };
  const wantTotal = req.summary === "count" || req.total !== "none";
  const count = async () => {
    const c = countSql(req);
    return Number((await sql.query<{ n: number }>(c.text, c.params))[0].n);
  };
  if (req.summary === "count" || req.count === 0) {
    if (wantTotal) page.total = await count();
    return page;
  }
  const q = pageSql(req);
  let rows = await sql.query(q.text, q.params);
  const more = rows.length > req.count;
  // A first page that holds every match is its own total: no count query needed.
  if (wantTotal) page.total = !req.cursor && !more ? rows.length : await count();
  rows = rows.slice(0, req.count);
  const backwards = req.cursor?.direction === "prev";
  if (backwards) rows.reverse();
  const cursorOf = (row: Row, direction: Cursor["direction"]): Cursor => ({
    direction,
    values: [
      ...Array.from({ length: q.sortCount }, (_, i) => (row[`k${i}`] ?? null) as string | null),
      Number(row.rid),
    ],
  });
  if (rows.length > 0) {
    const first = rows[0];
    const last = rows[rows.length - 1];
    if (backwards ? true : more) page.next = cursorOf(last, "next");
    if (backwards ? more : Boolean(req.cursor)) page.prev = cursorOf(first, "prev");
  }
  page.matches = rows.map((r) => orderKeys(r.content as Resource));
  const rids = rows.map((r) => Number(r.rid));
  if (req.include.length || req.revinclude.length) {
    page.includes = await loadIncludes(sql, req, rids, page.matches);
  }
  return page;
}

async function loadIncludes(
  sql: Sql,
  req: SearchRequest,
  rids: number[],
  matches: Resource[],
): Promise<Resource[]> {
  const seen = new Set(matches.map((r) => `${r.resourceType}/${r.id}`));
  const out: Resource[] = [];
  let frontier = rids.map((rid, i) => ({ rid, resource: matches[i] }));
  for (
    let depth = 0;
    depth < ITERATE_DEPTH && frontier.length > 0 && out.length < MAX_INCLUDES;
    depth++
  ) {
    const found: { rid: number; resource: Resource }[] = [];
    // The first round applies every include; later rounds only the :iterate ones.
    const specs = (list: IncludeSpec[]) => list.filter((s) => depth === 0 || s.iterate);
    for (const spec of specs(req.include)) {
      const sources = frontier.filter((f) => f.resource.resourceType === spec.sourceType);
      if (sources.length) found.push(...await forwardInclude(sql, spec, sources.map((s) => s.rid)));
    }
    for (const spec of specs(req.revinclude)) {
      const targets = frontier.map((f) => f.resource);
      if (targets.length) found.push(...await reverseInclude(sql, spec, targets));
    }
    frontier = [];
    for (const f of found) {
      const key = `${f.resource.resourceType}/${f.resource.id}`;
      if (seen.has(key) || out.length >= MAX_INCLUDES) continue;
      seen.add(key);
      out.push(f.resource);
      frontier.push(f);
    }
  }
  return out;
}

async function forwardInclude(sql: Sql, spec: IncludeSpec, rids: number[]) {
  const q = forwardIncludeSql(spec, rids, MAX_INCLUDES);
  const rows = await sql.query(q.text, q.params);
  return rows.map((r) => ({ rid: Number(r.rid), resource: orderKeys(r.content as Resource) }));
}

async function reverseInclude(sql: Sql, spec: IncludeSpec, targets: Resource[]) {
  const byType = new Map<string, string[]>();
  for (const t of targets) {
    if (spec.targetType && t.resourceType !== spec.targetType) continue;
    byType.set(t.resourceType, [...(byType.get(t.resourceType) ?? []), t.id as string]);
  }
  if (byType.size === 0) return [];
  const q = reverseIncludeSql(spec, byType, MAX_INCLUDES);
  const rows = await sql.query(q.text, q.params);
  return rows.map((r) => ({ rid: Number(r.rid), resource: orderKeys(r.content as Resource) }));
}

/** The searchset Bundle for a page, with links that carry the canonical parameters. */
export function searchBundle(
  ctx: FhirContext,
  req: SearchRequest,
  page: SearchPage,
  path: string,
): Bundle {
  const url = (cursor?: Cursor) => {
    const qs = new URLSearchParams(req.used);
    if (cursor) qs.set("_cursor", encodeCursor(cursor));
    const s = qs.toString();
    return `${ctx.baseUrl}/${path}${s ? `?${s}` : ""}`;
  };
  const link: BundleLink[] = [{ relation: "self", url: url(req.cursor) }];
  if (page.next) link.push({ relation: "next", url: url(page.next) });
  if (page.prev) link.push({ relation: "previous", url: url(page.prev) });
  const entry: BundleEntry[] = [
    ...page.matches.map((r) => entryOf(ctx, shapeResource(r, req), "match")),
    ...page.includes.map((r) => entryOf(ctx, shapeResource(r, req), "include")),
  ];
  const bundle: Bundle = {
    resourceType: "Bundle",
    id: crypto.randomUUID(),
    meta: { lastUpdated: new Date().toISOString() },
    type: "searchset",
  };
  if (page.total !== undefined) bundle.total = page.total;
  bundle.link = link;
  if (entry.length) bundle.entry = entry;
  return bundle;
}

/** A searchset entry: the resource, its full URL, and whether it matched or was included. */
export function entryOf(
  ctx: Pick<FhirContext, "baseUrl">,
  resource: Resource,
  mode: "match" | "include",
): BundleEntry {
  return {
    fullUrl: `${ctx.baseUrl}/${resource.resourceType}/${resource.id}`,
    resource,
    search: { mode },
  };
}
