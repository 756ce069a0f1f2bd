/**
 * @module Reading the change feed: resource versions after a feed position, in commit-safe order
 * (see migration 005). Stops before the first version whose transaction may still be running.
 */
import type { Sql } from "./db.ts";

export interface ChangeRow {
  seq: number;
  type: string;
  id: string;
  version: number;
  method: string;
  deleted: boolean;
  lastUpdated: string;
}

/** The feed position new readers start from (the newest version). */
export async function headSeq(sql: Sql): Promise<number> {
  const [row] = await sql.query<{ seq: string | null }>(
    `SELECT max(seq)::text AS seq FROM resource_version`,
  );
  return Number(row?.seq ?? 0);
}

/** Up to `limit` changes after `after` whose transactions have all ended. */
export async function changesAfter(sql: Sql, after: number, limit = 500): Promise<ChangeRow[]> {
  const rows = await sql.query<{
    seq: string;
    type: string;
    id: string;
    version: number;
    method: string;
    deleted: boolean;
    last_updated: Date | string;
    safe: boolean;
  }>(
    `SELECT seq::text, type, id, version, method, deleted, last_updated,
       txid < pg_snapshot_xmin(pg_current_snapshot()) AS safe
     FROM resource_version WHERE seq > $1 ORDER BY seq LIMIT $2`,
    [after, limit],
  );
  const out: ChangeRow[] = [];
  for (const r of rows) {
    if (!r.safe) break;
    out.push({
      seq: Number(r.seq),
      type: r.type,
      id: r.id,
      version: r.version,
      method: r.method,
      deleted: r.deleted,
      lastUpdated: r.last_updated instanceof Date ? r.last_updated.toISOString() : r.last_updated,
    });
  }
  return out;
}
