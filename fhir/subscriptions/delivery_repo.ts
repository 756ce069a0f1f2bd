/**
 * @module SQL for Subscription notifications (migration 006): queued deliveries, claiming the due
 * ones across replicas, recording each attempt, and the matcher's change-feed cursor.
 */
import type { Subscription } from "@medplum/fhirtypes";
import type { Sql } from "../../db/db.ts";

export interface Delivery {
  id: number;
  subscriptionId: string;
  type: string;
  resourceId: string;
  version: number;
  /** Attempts so far, this one included. */
  attempts: number;
}

/** Queues a notification; false when this version was already queued for this Subscription. */
export async function enqueueDelivery(
  sql: Sql,
  d: { subscriptionId: string; type: string; id: string; version: number; seq: number },
): Promise<boolean> {
  const rows = await sql.query(
    `INSERT INTO subscription_delivery
       (subscription_id, resource_type, resource_id, resource_version, seq)
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING id`,
    [d.subscriptionId, d.type, d.id, d.version, d.seq],
  );
  return rows.length > 0;
}

/**
 * Claims up to `limit` due deliveries: the oldest pending one of each Subscription (so an endpoint
 * sees its notifications in order), counting the attempt and leasing it for `leaseMs`.
 */
export async function claimDue(sql: Sql, limit: number, leaseMs: number): Promise<Delivery[]> {
  if (limit <= 0) return [];
  const rows = await sql.query<{
    id: string;
    subscription_id: string;
    resource_type: string;
    resource_id: string;
    resource_version: number;
    attempts: number;
  }>(
    `UPDATE subscription_delivery SET attempts = attempts + 1,
       next_attempt_at = now() + make_interval(secs => $2::float8 / 1000)
     WHERE id IN (
       SELECT d.id FROM subscription_delivery d
       WHERE d.state = 'pending' AND d.next_attempt_at <= now()
         AND NOT EXISTS (SELECT 1 FROM subscription_delivery e
           WHERE e.state = 'pending' AND e.subscription_id = d.subscription_id AND e.id < d.id)
       ORDER BY d.next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
     RETURNING id::text, subscription_id, resource_type, resource_id, resource_version, attempts`,
    [limit, leaseMs],
  );
  return rows.map((r) => ({
    id: Number(r.id),
    subscriptionId: r.subscription_id,
    type: r.resource_type,
    resourceId: r.resource_id,
    version: Number(r.resource_version),
    attempts: Number(r.attempts),
  }));
}

/**
 * Milliseconds until the next claimable delivery (the oldest pending one of its Subscription) is
 * due (≤ 0: now); undefined when none is pending.
 */
export async function nextDueIn(sql: Sql): Promise<number | undefined> {
  const [row] = await sql.query<{ ms: number | null }>(
    `SELECT (extract(epoch FROM min(d.next_attempt_at) - now()) * 1000)::float8 AS ms
     FROM subscription_delivery d WHERE d.state = 'pending'
       AND NOT EXISTS (SELECT 1 FROM subscription_delivery e
         WHERE e.state = 'pending' AND e.subscription_id = d.subscription_id AND e.id < d.id)`,
  );
  return row?.ms == null ? undefined : Number(row.ms);
}

export async function markDelivered(sql: Sql, id: number, status: number): Promise<void> {
  await sql.query(
    `UPDATE subscription_delivery SET state = 'delivered', last_status = $2, last_error = NULL,
       delivered_at = now() WHERE id = $1`,
    [id, status],
  );
}

/** Records a failed attempt: retried after `retryInMs`, or `failed` for good when undefined. */
export async function markFailed(
  sql: Sql,
  id: number,
  outcome: { status?: number; error: string; retryInMs?: number },
): Promise<void> {
  await sql.query(
    `UPDATE subscription_delivery SET last_status = $2, last_error = $3,
       state = CASE WHEN $4::float8 IS NULL THEN 'failed' ELSE 'pending' END,
       next_attempt_at = now() + make_interval(secs => coalesce($4::float8, 0) / 1000)
     WHERE id = $1`,
    [id, outcome.status ?? null, outcome.error.slice(0, 2000), outcome.retryInMs ?? null],
  );
}

/** Drops a delivery that must not be sent (its Subscription is off or gone, or so is the version). */
export async function markCancelled(sql: Sql, id: number, reason: string): Promise<void> {
  await sql.query(
    `UPDATE subscription_delivery SET state = 'cancelled', last_error = $2 WHERE id = $1`,
    [id, reason],
  );
}

/** The Subscriptions that are notified: status active, or error (still retried, R4). */
export async function notifiedSubscriptions(sql: Sql): Promise<Subscription[]> {
  const rows = await sql.query<{ content: Subscription }>(
    `SELECT content FROM resource WHERE type = 'Subscription' AND NOT deleted
       AND content->>'status' IN ('active', 'error')`,
  );
  return rows.map((r) => typeof r.content === "string" ? JSON.parse(r.content) : r.content);
}

/** The matcher's feed position; undefined before its first start. */
export async function readCursor(sql: Sql, name: string): Promise<number | undefined> {
  const [row] = await sql.query<{ seq: string }>(
    `SELECT seq::text FROM subscription_cursor WHERE name = $1`,
    [name],
  );
  return row ? Number(row.seq) : undefined;
}

/** Moves the cursor forward (never back: replicas each write theirs). */
export async function saveCursor(sql: Sql, name: string, seq: number): Promise<void> {
  await sql.query(
    `INSERT INTO subscription_cursor (name, seq) VALUES ($1, $2)
     ON CONFLICT (name) DO UPDATE SET seq = greatest(subscription_cursor.seq, excluded.seq)`,
    [name, seq],
  );
}
