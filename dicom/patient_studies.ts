/**
 * @module DICOMweb for a token bound to one patient: the studies in that patient's compartment are
 * those whose FHIR ImagingStudy (`identifier` urn:dicom:uid, kept in step with the DICOM store)
 * names the patient. QIDO-RS filters by this set, WADO-RS answers 404 outside it.
 */
import type { Sql } from "../db/db.ts";

/**
 * SQL for the Study Instance UIDs in `patient`'s compartment, with `bind` adding the patient's id
 * as a parameter: `st.study_uid IN (<this>)`.
 */
export function patientStudyUids(bind: (v: unknown) => string, patient: string): string {
  return `SELECT substr(t.value, 9) FROM sp_token t JOIN sp_reference p ON p.rid = t.rid
    WHERE t.type = 'ImagingStudy' AND t.code = 'identifier' AND t.system = 'urn:dicom:uid'
      AND t.value LIKE 'urn:oid:%' AND p.type = 'ImagingStudy' AND p.code = 'patient'
      AND p.target_type = 'Patient' AND p.target_id = ${bind(patient)}`;
}

/** Whether the study `studyUid` is in `patient`'s compartment. */
export async function studyOfPatient(
  sql: Sql,
  studyUid: string,
  patient: string,
): Promise<boolean> {
  const params: unknown[] = [];
  const bind = (v: unknown) => {
    params.push(v);
    return `$${params.length}`;
  };
  const rows = await sql.query(
    `SELECT 1 WHERE ${bind(studyUid)} IN (${patientStudyUids(bind, patient)})`,
    params,
  );
  return rows.length > 0;
}
