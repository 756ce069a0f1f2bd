/**
 * @module Reading the change feed: resource versions after a feed position, in commit-safe order
 * (migrations 005 and 011). Before reading, a reader stamps feed positions on the versions whose
 * transactions are older than every transaction still running (`pg_snapshot_xmin`), in
 * (txid, seq) order: those can never be joined by an older one, and any version committed later
 * has a newer txid, so it gets a higher position. A position, once read, is never preceded by one
 * handed out later.
 */
import type { Db } from "./db.ts";

export interface ChangeRow {
  /** The feed position (SSE event id, Subscription cursor). */
  seq: number;
  type: string;
  id: string;
  version: number;
  method: string;
  deleted: boolean;
  lastUpdated: string;
}

/** Versions stamped per round (a reader loops while rounds are full). */
const STAMP_BATCH = 1000;
/** The advisory lock that lets one reader at a time stamp (others read what is stamped). */
const STAMP_LOCK = 7_312_004_212;

/**
 * Gives the next feed positions to versions whose transactions have all ended, oldest transaction
 * first. When another reader (another replica) is stamping, returns at once: its positions show
 * up on the next read.
 */
export async function stampPositions(db: Db): Promise<void> {
  for (;;) {
    const stamped = await db.transaction(async (tx) => {
      const [lock] = await tx.query<{ got: boolean }>(
        `SELECT pg_try_advisory_xact_lock(${STAMP_LOCK}) AS got`,
      );
      if (!lock.got) return 0;
      const [mark] = await tx.query<{ txid: string; seq: string }>(
        `SELECT txid::text AS txid, seq::text AS seq FROM change_feed_mark`,
      );
      // Aliases other than the column names: ORDER BY an alias of the text would sort as text.
      const due = await tx.query<{ t: string; s: string }>(
        `SELECT txid::text AS t, seq::text AS s FROM resource_version
          WHERE txid < pg_snapshot_xmin(pg_current_snapshot())
            ${mark ? "AND (txid, seq) > ($2::text::xid8, $3::bigint)" : ""}
          ORDER BY txid, seq LIMIT $1`,
        mark ? [STAMP_BATCH, mark.txid, mark.seq] : [STAMP_BATCH],
      );
      if (!due.length) return 0;
      const values = due.map((_, i) => `($${i + 1}::bigint, ${i + 1})`).join(", ");
      await tx.query(
        `INSERT INTO change_feed (pos, seq)
         SELECT top.p + v.n, v.seq FROM (VALUES ${values}) AS v(seq, n),
           (SELECT coalesce(max(pos), 0) AS p FROM change_feed) AS top`,
        due.map((d) => d.s),
      );
      const last = due[due.length - 1];
      await tx.query(
        `INSERT INTO change_feed_mark (txid, seq) VALUES ($1::text::xid8, $2::bigint)
         ON CONFLICT (one) DO UPDATE SET txid = excluded.txid, seq = excluded.seq`,
        [last.t, last.s],
      );
      return due.length;
    });
    if (stamped < STAMP_BATCH) return;
  }
}

/** The feed position new readers start from (the newest stamped version). */
export async function headSeq(db: Db): Promise<number> {
  await stampPositions(db);
  const [row] = await db.query<{ pos: string | null }>(
    `SELECT max(pos)::text AS pos FROM change_feed`,
  );
  return Number(row?.pos ?? 0);
}

/** Up to `limit` changes after feed position `after`, in order. */
export async function changesAfter(db: Db, after: number, limit = 500): Promise<ChangeRow[]> {
  await stampPositions(db);
  const rows = await db.query<{
    pos: string;
    type: string;
    id: string;
    version: number;
    method: string;
    deleted: boolean;
    last_updated: Date | string;
  }>(
    `SELECT f.pos::text AS pos, v.type, v.id, v.version, v.method, v.deleted, v.last_updated
       FROM change_feed f JOIN resource_version v ON v.seq = f.seq
      WHERE f.pos > $1 ORDER BY f.pos LIMIT $2`,
    [after, limit],
  );
  return rows.map((r) => ({
    seq: Number(r.pos),
    type: r.type,
    id: r.id,
    version: r.version,
    method: r.method,
    deleted: r.deleted,
    lastUpdated: r.last_updated instanceof Date ? r.last_updated.toISOString() : r.last_updated,
  }));
}
