/**
 * @module AuditEvents as FHIR: read by id and search, from the audit table (migration 008; its SQL
 * in `audit_repo.ts`), in the order recorded (newest first by default), paged with an opaque
 * cursor. Supported search parameters: `date` (with eq, ne is not, gt, ge, lt, le), `agent`
 * (`user/<id>`, `client/<id>`), `agent-name`, `entity` (`Type/id`), `patient`, `type`, `subtype`,
 * `action`, `outcome`, `address`, `_count`, `_sort` (`date` or `-date`). Anything else is a 400,
 * as elsewhere.
 */
import type { AuditEvent, Bundle } from "@medplum/fhirtypes";
import type { Sql } from "../db/db.ts";
import { badRequest, notFound } from "../platform/outcome.ts";
import {
  AUDIT_SEARCH_COLUMN as COLUMN,
  type AuditCondition,
  type AuditDateOp,
  readAuditRow,
  searchAuditRows,
} from "./audit_repo.ts";
import { rowToAuditEvent } from "./log.ts";

export async function readAuditEvent(sql: Sql, id: string): Promise<AuditEvent> {
  if (!/^[0-9a-f-]{36}$/.test(id)) throw notFound(`AuditEvent/${id} is not known`);
  const row = await readAuditRow(sql, id);
  if (!row) throw notFound(`AuditEvent/${id} is not known`);
  return rowToAuditEvent(row);
}

export async function searchAuditEvents(
  sql: Sql,
  query: [string, string][],
  options: { baseUrl: string; defaultCount: number; maxCount: number },
): Promise<Bundle> {
  const conditions: AuditCondition[] = [];
  let count = options.defaultCount;
  let descending = true;
  let cursor: { recorded: string; id: string } | undefined;
  for (const [name, value] of query) {
    if (value.includes("\u0000")) throw badRequest(`${name}: NUL characters are not allowed`);
    if (name === "_count") {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 0) throw badRequest(`_count: expected a whole number`);
      count = Math.min(n, options.maxCount);
    } else if (name === "_sort") {
      if (value !== "date" && value !== "-date") {
        throw badRequest("_sort: AuditEvents sort by date or -date");
      }
      descending = value === "-date";
    } else if (name === "_cursor") {
      try {
        const [recorded, id] = JSON.parse(atob(value));
        if (typeof recorded !== "string" || typeof id !== "string") throw new Error();
        cursor = { recorded, id };
      } catch {
        throw badRequest("_cursor: not a cursor this server made");
      }
    } else if (name === "date") {
      const m = /^(eq|gt|ge|lt|le)?(\d{4}(-\d{2}(-\d{2}(T[0-9:.]+(Z|[+-]\d{2}:\d{2})?)?)?)?)$/
        .exec(value);
      if (!m) throw badRequest(`date: expected [eq|gt|ge|lt|le]YYYY[-MM[-DD[Thh:mm:ss[Z]]]]`);
      const [lo, hi] = bounds(m[2]);
      conditions.push({ date: (m[1] ?? "eq") as AuditDateOp, lo, hi });
    } else if (COLUMN[name]) {
      const values = value.split(",").map((v) => v.replace(/^[^|]*\|/, "")).filter(Boolean);
      if (!values.length || values.some((v) => v.length > 256)) {
        throw badRequest(`${name}: expected one or more values of at most 256 characters`);
      }
      conditions.push({ param: name, values });
    } else if (name !== "_format" && name !== "_pretty" && name !== "_total") {
      throw badRequest(
        `AuditEvent search: unknown parameter "${name}" (supported: date, ${
          Object.keys(COLUMN).join(", ")
        }, _count, _sort)`,
      );
    }
  }
  const rows = await searchAuditRows(sql, { conditions, cursor, descending, limit: count + 1 });
  const page = rows.slice(0, count);
  const self = new URLSearchParams(query.filter(([k]) => k !== "_cursor"));
  const link: NonNullable<Bundle["link"]> = [{
    relation: "self",
    url: `${options.baseUrl}/AuditEvent?${new URLSearchParams(query)}`,
  }];
  if (rows.length > count && page.length) {
    const last = page[page.length - 1];
    const recorded = new Date(last.recorded as unknown as string).toISOString();
    self.set("_cursor", btoa(JSON.stringify([recorded, last.id])));
    link.push({ relation: "next", url: `${options.baseUrl}/AuditEvent?${self}` });
  }
  return {
    resourceType: "Bundle",
    type: "searchset",
    link,
    entry: page.map((r) => {
      const resource = rowToAuditEvent(r);
      return {
        fullUrl: `${options.baseUrl}/AuditEvent/${resource.id}`,
        resource,
        search: { mode: "match" as const },
      };
    }),
  };
}

/** The instant range [lo, hi) a date of some precision covers (UTC when no zone is given). */
function bounds(value: string): [string, string] {
  const parts = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(.+))?)?)?$/.exec(value)!;
  const [, y, m, d, t] = parts;
  if (t) {
    const at = new Date(
      /[Z+-]\d*:?\d*$/.test(t) && /Z|[+-]\d{2}:\d{2}$/.test(t)
        ? `${y}-${m}-${d}T${t}`
        : `${y}-${m}-${d}T${t}Z`,
    );
    if (isNaN(at.getTime())) throw badRequest(`date: ${value} is not a valid time`);
    const seconds = /:\d{2}:\d{2}/.test(t);
    return [at.toISOString(), new Date(at.getTime() + (seconds ? 1000 : 60_000)).toISOString()];
  }
  const start = new Date(Date.UTC(Number(y), m ? Number(m) - 1 : 0, d ? Number(d) : 1));
  if (isNaN(start.getTime()) || (m && (Number(m) < 1 || Number(m) > 12))) {
    throw badRequest(`date: ${value} is not a valid date`);
  }
  const end = new Date(start);
  if (d) end.setUTCDate(end.getUTCDate() + 1);
  else if (m) end.setUTCMonth(end.getUTCMonth() + 1);
  else end.setUTCFullYear(end.getUTCFullYear() + 1);
  return [start.toISOString(), end.toISOString()];
}
