/**
 * @module SQL for resources: the current row, the version history (and its count), the search
 * index rows, whether a Patient exists, and the advisory lock that serialises conditional writes
 * on the same criteria. Every function takes the connection or transaction to run on, so callers
 * decide the boundary.
 */
import type { Row, Sql } from "./db.ts";

export interface StoredResource {
  rid: number;
  version: number;
  deleted: boolean;
  content: Record<string, unknown> | null;
  lastUpdated: string;
}

export interface NewVersion {
  type: string;
  id: string;
  version: number;
  lastUpdated: string;
  deleted: boolean;
  method: "POST" | "PUT" | "PATCH" | "DELETE";
  content: Record<string, unknown> | null;
}

/** Index rows by table suffix (`string` → sp_string), each row's columns by name. */
export type IndexRowSet = Record<string, Record<string, unknown>[]>;

const INDEX_COLUMNS: Record<string, string[]> = {
  string: ["code", "grp", "norm", "value"],
  token: ["code", "grp", "system", "value", "text"],
  reference: ["code", "grp", "target_type", "target_id", "ref"],
  date: ["code", "grp", "lo", "hi"],
  number: ["code", "grp", "value"],
  quantity: ["code", "grp", "value", "system", "unit_code", "unit"],
  uri: ["code", "grp", "value"],
};
const INDEX_TABLES = Object.keys(INDEX_COLUMNS);

function toStored(row: Row): StoredResource {
  return {
    rid: Number(row.rid),
    version: Number(row.version),
    deleted: Boolean(row.deleted),
    content: orderKeys(row.content as Record<string, unknown> | null),
    lastUpdated: new Date(row.last_updated as string).toISOString(),
  };
}

/** The current row, locked for update when `lock` (inside a transaction). */
export async function readCurrent(
  sql: Sql,
  type: string,
  id: string,
  lock = false,
): Promise<StoredResource | undefined> {
  const rows = await sql.query(
    `SELECT rid, version, deleted, content, last_updated FROM resource WHERE type = $1 AND id = $2${
      lock ? " FOR UPDATE" : ""
    }`,
    [type, id],
  );
  return rows[0] ? toStored(rows[0]) : undefined;
}

export async function readVersion(
  sql: Sql,
  type: string,
  id: string,
  version: number,
): Promise<StoredResource | undefined> {
  const rows = await sql.query(
    `SELECT v.rid, v.version, v.deleted, v.content, v.last_updated FROM resource_version v
       JOIN resource r ON r.rid = v.rid WHERE r.type = $1 AND r.id = $2 AND v.version = $3`,
    [type, id, version],
  );
  return rows[0] ? toStored(rows[0]) : undefined;
}

/**
 * Inserts the resource row if absent and locks it; returns the current state, or undefined when the
 * row was just created (the caller then writes version 1 into it).
 */
export async function insertOrLock(
  sql: Sql,
  v: NewVersion,
): Promise<{ rid: number; existing?: StoredResource }> {
  const inserted = await sql.query(
    `INSERT INTO resource (type, id, version, last_updated, deleted, content) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (type, id) DO NOTHING RETURNING rid`,
    [v.type, v.id, v.version, v.lastUpdated, v.deleted, v.content],
  );
  if (inserted[0]) return { rid: Number(inserted[0].rid) };
  const existing = await readCurrent(sql, v.type, v.id, true);
  if (!existing) throw new Error(`resource ${v.type}/${v.id} vanished during write`);
  return { rid: existing.rid, existing };
}

export async function updateCurrent(sql: Sql, rid: number, v: NewVersion): Promise<void> {
  await sql.query(
    `UPDATE resource SET version = $2, last_updated = $3, deleted = $4, content = $5 WHERE rid = $1`,
    [rid, v.version, v.lastUpdated, v.deleted, v.content],
  );
}

export async function insertVersion(sql: Sql, rid: number, v: NewVersion): Promise<void> {
  await sql.query(
    `INSERT INTO resource_version (rid, version, type, id, last_updated, deleted, method, content)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
    [rid, v.version, v.type, v.id, v.lastUpdated, v.deleted, v.method, v.content],
  );
}

/**
 * Replaces every index row of `rid` with `rows` in one statement: data-modifying CTEs delete the
 * old rows (skipped for a resource written for the first time) and insert the new ones, so a
 * write costs one round trip for its whole index however many tables it touches.
 */
export async function replaceIndex(
  sql: Sql,
  rid: number,
  type: string,
  rows: IndexRowSet | null,
  options: { fresh?: boolean } = {},
): Promise<void> {
  const params: unknown[] = [rid, type];
  const parts: string[] = [];
  if (!options.fresh) {
    for (const table of INDEX_TABLES) {
      parts.push(`DELETE FROM sp_${table} WHERE rid = $1 AND type = $2`);
    }
  }
  for (const table of INDEX_TABLES) {
    const list = rows?.[table] ?? [];
    if (list.length === 0) continue;
    const tuples = list.map((row) => {
      const placeholders = INDEX_COLUMNS[table].map((c) => {
        params.push(row[c] ?? null);
        return `$${params.length}${CASTS[c] ?? ""}`;
      });
      return `($1::bigint, $2::text, ${placeholders.join(", ")})`;
    });
    parts.push(
      `INSERT INTO sp_${table} (rid, type, ${INDEX_COLUMNS[table].join(", ")}) VALUES ${
        tuples.join(", ")
      }`,
    );
  }
  if (parts.length === 0) return;
  const text = parts.length === 1
    ? parts[0]
    : `WITH ${parts.slice(0, -1).map((p, i) => `w${i} AS (${p})`).join(", ")} ${
      parts[parts.length - 1]
    }`;
  await sql.query(text, params);
}

/** Explicit parameter types where a column's type cannot be inferred inside a VALUES list. */
const CASTS: Record<string, string> = {
  grp: "::int",
  lo: "::timestamptz",
  hi: "::timestamptz",
};

export interface HistoryQuery {
  type?: string;
  id?: string;
  since?: string;
  at?: string;
  /** Keyset position: entries strictly older than this (last_updated, rid, version). */
  before?: [string, number, number];
  count: number;
}

export interface HistoryRow extends StoredResource {
  type: string;
  id: string;
  method: string;
}

/** Versions newest first: of one resource, one type, or the whole system. */
export async function readHistory(sql: Sql, q: HistoryQuery): Promise<HistoryRow[]> {
  const conds: string[] = [];
  const params: unknown[] = [];
  const add = (v: unknown) => {
    params.push(v);
    return `$${params.length}`;
  };
  if (q.type) conds.push(`v.type = ${add(q.type)}`);
  if (q.id) conds.push(`v.id = ${add(q.id)}`);
  if (q.since) conds.push(`v.last_updated >= ${add(q.since)}::timestamptz`);
  if (q.at) conds.push(`v.last_updated <= ${add(q.at)}::timestamptz`);
  if (q.before) {
    conds.push(
      `(v.last_updated, v.rid, v.version) < (${add(q.before[0])}::timestamptz, ${
        add(q.before[1])
      }::bigint, ${add(q.before[2])}::int)`,
    );
  }
  const rows = await sql.query(
    `SELECT v.rid, v.version, v.deleted, v.content, v.last_updated, v.type, v.id, v.method
       FROM resource_version v ${conds.length ? `WHERE ${conds.join(" AND ")}` : ""}
       ORDER BY v.last_updated DESC, v.rid DESC, v.version DESC LIMIT ${add(q.count + 1)}::int`,
    params,
  );
  return rows.map((row) => ({
    ...toStored(row),
    type: String(row.type),
    id: String(row.id),
    method: String(row.method),
  }));
}

/** How many versions `readHistory` would list without paging (since/at are instants). */
export async function countHistory(
  sql: Sql,
  t: { type?: string; id?: string },
  since?: string,
  at?: string,
): Promise<number> {
  const conds: string[] = [];
  const params: unknown[] = [];
  const add = (v: unknown) => (params.push(v), `$${params.length}`);
  if (t.type) conds.push(`type = ${add(t.type)}`);
  if (t.id) conds.push(`id = ${add(t.id)}`);
  if (since) conds.push(`last_updated >= ${add(since)}::timestamptz`);
  if (at) conds.push(`last_updated <= ${add(at)}::timestamptz`);
  const rows = await sql.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM resource_version ${
      conds.length ? `WHERE ${conds.join(" AND ")}` : ""
    }`,
    params,
  );
  return Number(rows[0].n);
}

/** Whether Patient/`id` exists and is not deleted. */
export async function patientExists(sql: Sql, id: string): Promise<boolean> {
  const [row] = await sql.query(
    `SELECT 1 FROM resource WHERE type = 'Patient' AND id = $1 AND NOT deleted`,
    [id],
  );
  return Boolean(row);
}

/**
 * Takes a transaction-scoped advisory lock on `key` (a conditional interaction's `Type?query`),
 * waiting for the transaction that holds it.
 */
export async function lockCriteria(sql: Sql, key: string): Promise<void> {
  await sql.query(`SELECT pg_advisory_xact_lock(hashtext($1))`, [key]);
}

/** Puts resourceType, id and meta first (jsonb stores keys in its own order). */
export function orderKeys<T>(content: T): T {
  if (!content || typeof content !== "object") return content;
  const { resourceType, id, meta, ...rest } = content as Record<string, unknown>;
  return { resourceType, id, meta, ...rest } as T;
}
