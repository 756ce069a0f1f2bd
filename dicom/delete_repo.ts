/**
 * @module SQL for deleting DICOM data (`delete.ts`) and for the sweep of rows whose object is gone
 * (`sweep.ts`): the instance rows of a study, series or instance removed with their object keys,
 * the counts of what is left recounted, the study row, its quiet period and its deliveries to the
 * DICOM destinations removed, the study that owns an ImagingStudy, and the rows of a page of
 * studies for the sweep. Every function takes the connection or transaction it runs on.
 */
import type { Sql } from "../db/db.ts";

/** An instance row as a deletion removes it. */
export interface DeletedInstance {
  sop_uid: string;
  series_uid: string;
  study_uid: string;
  object_key: string;
}

/**
 * Waits for the study's ImagingStudy rebuild (`study_sync.ts`, which only tries it) and holds it
 * until the transaction ends, so no rebuild that read the index before a deletion writes after it.
 */
export async function lockStudySync(sql: Sql, studyUid: string): Promise<void> {
  await sql.query(`SELECT pg_advisory_xact_lock(hashtext($1))`, [`dicom-study-sync:${studyUid}`]);
}

/** Removes the instance rows of a study (or of one series, or of some instances); answers them. */
export async function deleteInstanceRows(
  sql: Sql,
  t: { studyUid: string; seriesUid?: string; sopUids?: string[] },
): Promise<DeletedInstance[]> {
  return await sql.query<DeletedInstance & Record<string, unknown>>(
    `DELETE FROM dicom_instance WHERE study_uid = $1
        AND ($2::text IS NULL OR series_uid = $2) AND ($3::text[] IS NULL OR sop_uid = ANY($3))
     RETURNING sop_uid, series_uid, study_uid, object_key`,
    [t.studyUid, t.seriesUid ?? null, t.sopUids ?? null],
  );
}

/** Removes a series row of the study (its instances removed first); true when there was one. */
export async function deleteSeriesRow(
  sql: Sql,
  studyUid: string,
  seriesUid: string,
): Promise<boolean> {
  const rows = await sql.query(
    `DELETE FROM dicom_series WHERE study_uid = $1 AND series_uid = $2 RETURNING 1`,
    [studyUid, seriesUid],
  );
  return rows.length > 0;
}

/**
 * After instances went: recounts the series' instances, removes the series left empty, recounts
 * the study's series, instances and modalities and marks its ImagingStudy behind the index. One
 * statement, O(study). Answers the instances and series left.
 */
export async function recountStudy(
  sql: Sql,
  studyUid: string,
): Promise<{ instances: number; series: number }> {
  const [row] = await sql.query<{ instances: number; series: number }>(
    `WITH counts AS (
       SELECT s.series_uid, count(i.sop_uid)::int AS n FROM dicom_series s
         LEFT JOIN dicom_instance i ON i.series_uid = s.series_uid
        WHERE s.study_uid = $1 GROUP BY s.series_uid),
     emptied AS (
       DELETE FROM dicom_series d USING counts c
        WHERE d.series_uid = c.series_uid AND c.n = 0 RETURNING d.series_uid),
     counted AS (
       UPDATE dicom_series d SET num_instances = c.n FROM counts c
        WHERE d.series_uid = c.series_uid AND c.n > 0 RETURNING 1)
     UPDATE dicom_study SET
       num_series = (SELECT count(*) FROM counts WHERE n > 0),
       num_instances = (SELECT coalesce(sum(n), 0) FROM counts),
       modalities = (SELECT coalesce(array_agg(DISTINCT s.modality ORDER BY s.modality), '{}')
                       FROM dicom_series s JOIN counts c ON c.series_uid = s.series_uid
                      WHERE c.n > 0 AND s.modality IS NOT NULL),
       fhir_stale_seq = fhir_stale_seq + 1,
       updated = now()
     WHERE study_uid = $1
     RETURNING num_instances AS instances, num_series AS series`,
    [studyUid],
  );
  return { instances: Number(row?.instances ?? 0), series: Number(row?.series ?? 0) };
}

/** Removes the study row (its series with it) and its quiet period, so no analysis starts. */
export async function deleteStudyRow(sql: Sql, studyUid: string): Promise<void> {
  await sql.query(`DELETE FROM study_stability WHERE study_uid = $1`, [studyUid]);
  await sql.query(`DELETE FROM dicom_study WHERE study_uid = $1`, [studyUid]);
}

/**
 * Removes the deliveries of the instances to the DICOM destinations (pending ones are never
 * sent; a later STOW of the same instances queues them afresh); answers the destinations that
 * had received one.
 */
export async function deleteForwards(
  sql: Sql,
  studyUid: string,
  sopUids: string[],
): Promise<string[]> {
  if (!sopUids.length) return [];
  const rows = await sql.query<{ destination: string }>(
    `WITH gone AS (DELETE FROM dicom_forward WHERE study_uid = $1 AND sop_uid = ANY($2::text[])
                   RETURNING destination, state)
     SELECT DISTINCT destination FROM gone WHERE state = 'delivered' ORDER BY destination`,
    [studyUid, sopUids],
  );
  return rows.map((r) => r.destination);
}

/** The Study Instance UID whose index made the ImagingStudy `id`, if any. */
export async function studyOfImagingStudy(sql: Sql, id: string): Promise<string | undefined> {
  const [row] = await sql.query<{ study_uid: string }>(
    `SELECT study_uid FROM dicom_study WHERE imaging_study_id = $1 LIMIT 1`,
    [id],
  );
  return row?.study_uid;
}

/** Up to `limit` Study Instance UIDs after `after`, in order (the sweep's pages). */
export async function studyPage(sql: Sql, after: string, limit: number): Promise<string[]> {
  const rows = await sql.query<{ study_uid: string }>(
    `SELECT study_uid FROM dicom_study WHERE study_uid > $1 ORDER BY study_uid
      LIMIT ${Math.trunc(limit)}`,
    [after],
  );
  return rows.map((r) => r.study_uid);
}

/** The instance rows of `studyUids` last written before `before` (the sweep's cutoff). */
export async function instancesOfStudies(
  sql: Sql,
  studyUids: string[],
  before: Date,
): Promise<DeletedInstance[]> {
  return await sql.query<DeletedInstance & Record<string, unknown>>(
    `SELECT sop_uid, series_uid, study_uid, object_key FROM dicom_instance
      WHERE study_uid = ANY($1::text[]) AND updated <= $2::timestamptz ORDER BY study_uid, sop_uid`,
    [studyUids, before.toISOString()],
  );
}
