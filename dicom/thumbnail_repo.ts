/** @module SQL of the thumbnails: which series of a study hold images. */
import type { Sql } from "../db/db.ts";

/** A study's series that hold images (instances with frames), with how many. */
export async function seriesWithImages(
  sql: Sql,
  studyUid: string,
): Promise<
  { series_uid: string; modality: string | null; series_number: number | null; images: number }[]
> {
  const rows = await sql.query<{
    series_uid: string;
    modality: string | null;
    series_number: number | null;
    images: number | string;
  }>(
    `SELECT s.series_uid, s.modality, s.series_number, count(*) AS images
       FROM dicom_instance i JOIN dicom_series s ON s.series_uid = i.series_uid
      WHERE i.study_uid = $1 AND i.frames > 0
      GROUP BY s.series_uid, s.modality, s.series_number`,
    [studyUid],
  );
  return rows.map((r) => ({ ...r, images: Number(r.images) }));
}
