/**
 * @module SQL for study stability's table, `study_stability` (migrations 010 and 012): the touch
 * that starts a study's quiet period again, the claim of quiet periods that are over (`FOR UPDATE
 * SKIP LOCKED`, so replicas never claim the same one), the attempt given back after a transient
 * failure, the mark of a period fired, and the removal of rows fired long ago.
 */
import type { Sql } from "../db/db.ts";

/** Claimed rows are kept this long, then removed (a later touch makes a new one). */
const KEEP_FIRED = "1 day";

/** The study's quiet period starts again now (the database's clock), unfired and unclaimed. */
export async function touchStudy(sql: Sql, studyUid: string): Promise<void> {
  await sql.query(
    `INSERT INTO study_stability (study_uid, last_instance_at) VALUES ($1, now())
         ON CONFLICT (study_uid) DO UPDATE
           SET last_instance_at = now(), fired_at = NULL, claimed_at = NULL, attempts = 0`,
    [studyUid],
  );
}

/** A claimed quiet period: `claimed` is the claim's time as text, what marks it fired. */
export type ClaimedRow = {
  study_uid: string;
  last_instance_at: string | Date;
  claimed: string;
  attempts: number;
};

/**
 * Claims up to `limit` quiet periods that are over (no instance for `seconds`), unfired, and
 * unclaimed or with a claim older than `leaseSeconds`; each claim counts one attempt.
 */
export async function claimDueStudies(
  sql: Sql,
  seconds: number,
  leaseSeconds: number,
  limit: number,
): Promise<ClaimedRow[]> {
  return await sql.query<ClaimedRow>(
    `UPDATE study_stability s SET claimed_at = clock_timestamp(), attempts = s.attempts + 1
         FROM (SELECT study_uid FROM study_stability
                WHERE fired_at IS NULL AND last_instance_at <= now() - make_interval(secs => $1)
                  AND (claimed_at IS NULL OR claimed_at <= now() - make_interval(secs => $2))
                ORDER BY last_instance_at LIMIT ${limit} FOR UPDATE SKIP LOCKED) due
        WHERE s.study_uid = due.study_uid
        RETURNING s.study_uid, s.last_instance_at, s.claimed_at::text AS claimed, s.attempts`,
    [seconds, leaseSeconds],
  );
}

/** Removes the rows of quiet periods fired more than KEEP_FIRED ago. */
export async function deleteOldFired(sql: Sql): Promise<void> {
  await sql.query(
    `DELETE FROM study_stability WHERE fired_at < now() - interval '${KEEP_FIRED}'`,
  );
}

/** Gives back the attempt of the claim `claimed` (a transient failure), if it still holds. */
export async function giveBackAttempt(sql: Sql, studyUid: string, claimed: string): Promise<void> {
  await sql.query(
    `UPDATE study_stability SET attempts = greatest(attempts - 1, 0)
          WHERE study_uid = $1 AND claimed_at = $2::timestamptz`,
    [studyUid, claimed],
  );
}

/** Marks the quiet period of the claim `claimed` fired, unless a touch has started another. */
export async function markFired(sql: Sql, studyUid: string, claimed: string): Promise<void> {
  await sql.query(
    `UPDATE study_stability SET fired_at = now()
        WHERE study_uid = $1 AND claimed_at = $2::timestamptz`,
    [studyUid, claimed],
  );
}
