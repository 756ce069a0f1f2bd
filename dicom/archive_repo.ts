/**
 * @module SQL of the study downloads (`archive.ts`): what the index knows of each instance's risk
 * of burned-in text (Burned In Annotation, Modality, pixel data present), read out of the stored
 * DICOM JSON by the database, so that a large study's metadata never comes into this process.
 */
import type { Sql } from "../db/db.ts";

export interface BurnedInRow {
  sop_uid: string;
  burned_in: string | null;
  modality: string | null;
  has_pixels: boolean;
}

/** One row per instance of the study (or of one of its series). */
export async function burnedInFacts(
  sql: Sql,
  studyUid: string,
  seriesUid?: string,
): Promise<Map<string, BurnedInRow>> {
  const params: unknown[] = [studyUid];
  let filter = "i.study_uid = $1";
  if (seriesUid) {
    params.push(seriesUid);
    filter += " AND i.series_uid = $2";
  }
  const rows = await sql.query<BurnedInRow & Record<string, unknown>>(
    `SELECT i.sop_uid,
       i.metadata::json -> '00280301' -> 'Value' ->> 0 AS burned_in,
       COALESCE(i.metadata::json -> '00080060' -> 'Value' ->> 0, s.modality) AS modality,
       (i.metadata::json -> '7FE00010' IS NOT NULL OR i.metadata::json -> '7FE00008' IS NOT NULL
         OR i.metadata::json -> '7FE00009' IS NOT NULL) AS has_pixels
     FROM dicom_instance i JOIN dicom_series s ON s.series_uid = i.series_uid
     WHERE ${filter}`,
    params,
  );
  return new Map(rows.map((r) => [r.sop_uid, { ...r, has_pixels: !!r.has_pixels }]));
}
