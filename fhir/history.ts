/** @module History of a resource, a type or the whole system, as a `history` Bundle, newest first. */
import type { Bundle, BundleEntry, Resource } from "@medplum/fhirtypes";
import type { Sql } from "../db/db.ts";
import { countHistory, readCurrent, readHistory } from "../db/resource_repo.ts";
import type { FhirContext } from "./context.ts";
import { badRequest, notFound } from "../platform/outcome.ts";
import { dateRange } from "./search/dates.ts";
import { ID_PATTERN } from "./validate.ts";

export interface HistoryTarget {
  type?: string;
  id?: string;
}

const METHOD_STATUS: Record<string, string> = {
  POST: "201 Created",
  PUT: "200 OK",
  PATCH: "200 OK",
  DELETE: "200 OK",
};

export async function history(
  ctx: FhirContext,
  sql: Sql,
  target: HistoryTarget,
  params: URLSearchParams,
): Promise<Bundle> {
  // An id no resource can have (a NUL, say) is unknown without asking the database.
  if (target.id && !ID_PATTERN.test(target.id)) {
    throw notFound(`${target.type}/${target.id} not found`);
  }
  if (target.type && target.id && !(await readCurrent(sql, target.type, target.id))) {
    throw notFound(`${target.type}/${target.id} not found`);
  }
  const count = params.has("_count") ? Number(params.get("_count")) : ctx.defaultCount;
  if (!Number.isInteger(count) || count < 0) {
    throw badRequest(`_count must be a non-negative integer`, "_count");
  }
  const since = instantParam(params, "_since");
  const at = instantParam(params, "_at");
  const page = params.get("_page");
  let before: [string, number, number] | undefined;
  if (page) {
    const m = /^(\d+)\.(\d+)\.(\d+)$/.exec(page);
    if (!m) throw badRequest(`Invalid _page "${page}"`, "_page");
    const [ms, rid, version] = m.slice(1).map(Number);
    // Only what this server writes: a time within Date's range, a safe row id, an int version.
    if (ms > 8.64e15 || !Number.isSafeInteger(rid) || version >= 2 ** 31) {
      throw badRequest(`Invalid _page "${page}"`, "_page");
    }
    before = [new Date(ms).toISOString(), rid, version];
  }
  const rows = await readHistory(sql, {
    ...target,
    since,
    at,
    before,
    count: Math.min(count, ctx.maxCount),
  });
  const more = rows.length > Math.min(count, ctx.maxCount);
  const shown = rows.slice(0, Math.min(count, ctx.maxCount));
  const path = [target.type, target.id, "_history"].filter(Boolean).join("/");
  const self = new URLSearchParams();
  for (const k of ["_count", "_since", "_at"]) if (params.has(k)) self.set(k, params.get(k)!);
  const link = [{
    relation: "self",
    url: withQuery(
      `${ctx.baseUrl}/${path}`,
      new URLSearchParams([...self, ...(page ? [["_page", page]] : [])]),
    ),
  }];
  if (more && shown.length) {
    const last = shown[shown.length - 1];
    const next = new URLSearchParams(self);
    next.set("_page", `${Date.parse(last.lastUpdated)}.${last.rid}.${last.version}`);
    link.push({ relation: "next", url: withQuery(`${ctx.baseUrl}/${path}`, next) });
  }
  const entry: BundleEntry[] = shown.map((row) => {
    const fullUrl = `${ctx.baseUrl}/${row.type}/${row.id}`;
    const e: BundleEntry = {
      fullUrl,
      request: {
        method: row.method as "POST",
        url: row.method === "POST" ? row.type : `${row.type}/${row.id}`,
      },
      response: {
        status: row.deleted ? "204 No Content" : METHOD_STATUS[row.method] ?? "200 OK",
        etag: `W/"${row.version}"`,
        lastModified: row.lastUpdated,
      },
    };
    if (row.content) e.resource = row.content as unknown as Resource;
    return e;
  });
  const bundle: Bundle = { resourceType: "Bundle", id: crypto.randomUUID(), type: "history", link };
  if (!page && target.id) {
    // total only for an instance's history: counting a type's or the system's versions is a scan.
    bundle.total = await countHistory(sql, target, since, at);
  }
  if (entry.length) bundle.entry = entry;
  return bundle;
}

function withQuery(url: string, qs: URLSearchParams): string {
  const s = qs.toString();
  return s ? `${url}?${s}` : url;
}

function instantParam(params: URLSearchParams, name: string): string | undefined {
  const v = params.get(name);
  if (!v) return undefined;
  const r = dateRange(v);
  if (!r) throw badRequest(`${name} must be an instant, got "${v}"`, name);
  return new Date(r.lo).toISOString();
}
