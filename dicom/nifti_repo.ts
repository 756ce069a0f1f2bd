/**
 * @module SQL for uploaded NIfTI volumes (`nifti_volume`, migration 004): the row written in the
 * upload's transaction, and the stored file's key, type, name and size read back for download.
 */
import type { Sql } from "../db/db.ts";

export interface NiftiVolumeRow {
  id: string;
  objectKey: string;
  filename: string;
  contentType: string;
  size: number;
  sha256: string;
  /** The parsed NIfTI header, stored as JSON. */
  header: unknown;
  /** `Patient/{id}` */
  patientRef: string;
  imagingStudyId: string | undefined;
  documentReferenceId: string | undefined;
}

export async function insertNiftiVolume(sql: Sql, v: NiftiVolumeRow): Promise<void> {
  await sql.query(
    `INSERT INTO nifti_volume (id, object_key, filename, content_type, size, sha256, header,
           patient_ref, imaging_study_id, document_reference_id)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)`,
    [
      v.id,
      v.objectKey,
      v.filename,
      v.contentType,
      v.size,
      v.sha256,
      JSON.stringify(v.header),
      v.patientRef,
      v.imagingStudyId,
      v.documentReferenceId,
    ],
  );
}

/** Where a volume's file is and how to serve it, or undefined. */
export async function readNiftiFile(
  sql: Sql,
  id: string,
): Promise<
  { object_key: string; content_type: string; filename: string; size: string } | undefined
> {
  const [row] = await sql.query<
    { object_key: string; content_type: string; filename: string; size: string }
  >(
    `SELECT object_key, content_type, filename, size FROM nifti_volume WHERE id = $1`,
    [id],
  );
  return row;
}
