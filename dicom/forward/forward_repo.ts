/**
 * @module SQL for sending stored instances to DICOM destinations (migration 016): queueing,
 * claiming the due deliveries across replicas, recording each attempt, and the delivery log.
 */
import type { Sql } from "../../db/db.ts";

export interface ForwardItem {
  destination: string;
  studyUid: string;
  seriesUid: string;
  sopUid: string;
  sopClass: string;
}

export interface ForwardDelivery extends ForwardItem {
  id: number;
  /** Attempts so far, this one included. */
  attempts: number;
}

export type ForwardState = "pending" | "delivered" | "dead" | "cancelled";

/** One row of the delivery log, as the admin API shows it. */
export interface ForwardLogEntry extends ForwardItem {
  id: number;
  state: ForwardState;
  attempts: number;
  nextAttemptAt: string | null;
  lastStatus: number | null;
  lastError: string | null;
  createdAt: string;
  deliveredAt: string | null;
}

/**
 * Queues deliveries; an instance already queued for a destination is left as it is (a STOW sent
 * again), unless `replaced`: new bytes under the same UID are sent again. Answers how many rows
 * were queued or re-queued.
 */
export async function enqueueForward(
  sql: Sql,
  items: ForwardItem[],
  replaced = false,
): Promise<number> {
  if (!items.length) return 0;
  const col = (f: (i: ForwardItem) => string) => items.map(f);
  const rows = await sql.query(
    `INSERT INTO dicom_forward (destination, study_uid, series_uid, sop_uid, sop_class)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
     ON CONFLICT (destination, sop_uid) DO ${
      replaced
        ? `UPDATE SET state = 'pending', attempts = 0, next_attempt_at = now(), last_status = NULL,
             last_error = NULL, delivered_at = NULL, study_uid = excluded.study_uid,
             series_uid = excluded.series_uid, sop_class = excluded.sop_class`
        : "NOTHING"
    } RETURNING id`,
    [
      col((i) => i.destination),
      col((i) => i.studyUid),
      col((i) => i.seriesUid),
      col((i) => i.sopUid),
      col((i) => i.sopClass),
    ],
  );
  return rows.length;
}

/** Claims up to `limit` due deliveries, counting the attempt and leasing each for `leaseMs`. */
export async function claimDueForwards(
  sql: Sql,
  limit: number,
  leaseMs: number,
): Promise<ForwardDelivery[]> {
  if (limit <= 0) return [];
  const rows = await sql.query<Record<string, string | number>>(
    `UPDATE dicom_forward SET attempts = attempts + 1,
       next_attempt_at = now() + make_interval(secs => $2::float8 / 1000)
     WHERE id IN (
       SELECT id FROM dicom_forward WHERE state = 'pending' AND next_attempt_at <= now()
       ORDER BY next_attempt_at, id LIMIT $1 FOR UPDATE SKIP LOCKED)
     RETURNING id::text, destination, study_uid, series_uid, sop_uid, sop_class, attempts`,
    [limit, leaseMs],
  );
  return rows.map((r) => ({
    id: Number(r.id),
    destination: String(r.destination),
    studyUid: String(r.study_uid),
    seriesUid: String(r.series_uid),
    sopUid: String(r.sop_uid),
    sopClass: String(r.sop_class),
    attempts: Number(r.attempts),
  }));
}

/** Milliseconds until the next pending delivery is due (≤ 0: now); undefined when none is. */
export async function nextForwardDueIn(sql: Sql): Promise<number | undefined> {
  const [row] = await sql.query<{ ms: number | null }>(
    `SELECT (extract(epoch FROM min(next_attempt_at) - now()) * 1000)::float8 AS ms
     FROM dicom_forward WHERE state = 'pending'`,
  );
  return row?.ms == null ? undefined : Number(row.ms);
}

export async function markForwarded(
  sql: Sql,
  id: number,
  status: number,
  note?: string,
): Promise<void> {
  await sql.query(
    `UPDATE dicom_forward SET state = 'delivered', last_status = $2, last_error = $3,
       delivered_at = now() WHERE id = $1`,
    [id, status, note ?? null],
  );
}

/** Records a failed attempt: retried after `retryInMs`, or dead (for an admin to see) without. */
export async function markForwardFailed(
  sql: Sql,
  id: number,
  outcome: { status?: number; error: string; retryInMs?: number },
): Promise<void> {
  await sql.query(
    `UPDATE dicom_forward SET last_status = $2, last_error = $3,
       state = CASE WHEN $4::float8 IS NULL THEN 'dead' ELSE 'pending' END,
       next_attempt_at = now() + make_interval(secs => coalesce($4::float8, 0) / 1000)
     WHERE id = $1`,
    [id, outcome.status ?? null, outcome.error.slice(0, 2000), outcome.retryInMs ?? null],
  );
}

export async function markForwardCancelled(sql: Sql, id: number, reason: string): Promise<void> {
  await sql.query(
    `UPDATE dicom_forward SET state = 'cancelled', last_error = $2 WHERE id = $1`,
    [id, reason],
  );
}

/** Queues dead deliveries again (all, one destination's, or one); answers how many. */
export async function requeueDead(
  sql: Sql,
  filter: { destination?: string; id?: number },
): Promise<number> {
  const rows = await sql.query(
    `UPDATE dicom_forward SET state = 'pending', attempts = 0, next_attempt_at = now()
     WHERE state = 'dead' AND ($1::text IS NULL OR destination = $1)
       AND ($2::bigint IS NULL OR id = $2) RETURNING id`,
    [filter.destination ?? null, filter.id ?? null],
  );
  return rows.length;
}

/** Deliveries per destination and state. */
export async function forwardCounts(
  sql: Sql,
): Promise<{ destination: string; state: ForwardState; count: number }[]> {
  const rows = await sql.query<{ destination: string; state: ForwardState; count: string }>(
    `SELECT destination, state, count(*)::text AS count FROM dicom_forward
     GROUP BY destination, state ORDER BY destination, state`,
  );
  return rows.map((r) => ({ ...r, count: Number(r.count) }));
}

/** The newest deliveries first, filtered by destination, state and study. */
export async function forwardLog(
  sql: Sql,
  filter: { destination?: string; state?: ForwardState; studyUid?: string; limit: number },
): Promise<ForwardLogEntry[]> {
  const rows = await sql.query<Record<string, string | number | null>>(
    `SELECT id::text, destination, study_uid, series_uid, sop_uid, sop_class, state, attempts,
       CASE WHEN state = 'pending' THEN next_attempt_at END AS next_attempt_at,
       last_status, last_error, created_at, delivered_at
     FROM dicom_forward
     WHERE ($1::text IS NULL OR destination = $1) AND ($2::text IS NULL OR state = $2)
       AND ($3::text IS NULL OR study_uid = $3)
     ORDER BY id DESC LIMIT $4`,
    [filter.destination ?? null, filter.state ?? null, filter.studyUid ?? null, filter.limit],
  );
  const time = (v: unknown) => v == null ? null : new Date(v as string).toISOString();
  return rows.map((r) => ({
    id: Number(r.id),
    destination: String(r.destination),
    studyUid: String(r.study_uid),
    seriesUid: String(r.series_uid),
    sopUid: String(r.sop_uid),
    sopClass: String(r.sop_class),
    state: r.state as ForwardState,
    attempts: Number(r.attempts),
    nextAttemptAt: time(r.next_attempt_at),
    lastStatus: r.last_status == null ? null : Number(r.last_status),
    lastError: r.last_error == null ? null : String(r.last_error),
    createdAt: time(r.created_at)!,
    deliveredAt: time(r.delivered_at),
  }));
}
