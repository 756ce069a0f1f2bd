/**
 * @module SQL for the DICOM index (`dicom_study`, `dicom_series`, `dicom_instance`): what STOW
 * writes, what QIDO and WADO read, the ImagingStudy sync's lock and counters, the object keys the
 * object sweep keeps, and the studies in a patient's compartment (from the FHIR token index).
 * Every function takes the connection or transaction it runs on.
 */
import type { Sql } from "./db.ts";

export interface InstanceRow {
  sop_uid: string;
  series_uid: string;
  study_uid: string;
  sop_class: string;
  transfer_syntax: string;
  instance_number: number | null;
  title: string | null;
  frames: number;
  object_key: string;
  size: number;
  sha256: string;
  metadata: string;
}

export interface SeriesRow {
  series_uid: string;
  study_uid: string;
  modality: string | null;
  series_number: number | null;
  description: string | null;
  body_part: string | null;
  series_date: string | null;
  series_time: string | null;
  num_instances: number;
  attrs: string;
}

export interface StudyRow {
  study_uid: string;
  patient_id: string | null;
  issuer: string | null;
  patient_name: string | null;
  birth_date: string | null;
  sex: string | null;
  study_date: string | null;
  study_time: string | null;
  accession: string | null;
  study_id: string | null;
  description: string | null;
  referring: string | null;
  modalities: string[];
  num_series: number;
  num_instances: number;
  attrs: string;
  patient_ref: string | null;
  imaging_study_id: string | null;
}

/** Serialises writers of one study until the transaction ends. Lock studies in sorted order. */
export async function lockStudy(sql: Sql, studyUid: string): Promise<void> {
  await sql.query(`SELECT pg_advisory_xact_lock(hashtext($1))`, [`dicom-study:${studyUid}`]);
}

const INSTANCE_COLUMNS = `sop_uid, series_uid, study_uid, sop_class, transfer_syntax,
  instance_number, title, frames, object_key, size, sha256`;

/** The stored instances among `sopUids` (without metadata), for dedupe decisions. */
export async function findInstances(sql: Sql, sopUids: string[]): Promise<InstanceRow[]> {
  if (!sopUids.length) return [];
  return await sql.query<InstanceRow & Record<string, unknown>>(
    `SELECT ${INSTANCE_COLUMNS}, '' AS metadata FROM dicom_instance WHERE sop_uid = ANY($1::text[])`,
    [sopUids],
  );
}

/** The studies each of `seriesUids` already belongs to. */
/**
 * What a batch needs to know once its studies are locked, in one round trip: which study owns each
 * of `seriesUids` (those stored), and, of `studyUids`, which exist and their ImagingStudy's id.
 */
export async function batchState(
  sql: Sql,
  seriesUids: string[],
  studyUids: string[],
): Promise<{ owners: Map<string, string>; studies: Map<string, string | null> }> {
  const rows = await sql.query<{ kind: string; uid: string; ref: string | null }>(
    `SELECT 'series' AS kind, series_uid AS uid, study_uid AS ref FROM dicom_series
      WHERE series_uid = ANY($1::text[])
     UNION ALL
     SELECT 'study', study_uid, imaging_study_id FROM dicom_study WHERE study_uid = ANY($2::text[])`,
    [seriesUids, studyUids],
  );
  const owners = new Map<string, string>();
  const studies = new Map<string, string | null>();
  for (const r of rows) {
    if (r.kind === "series") owners.set(r.uid, r.ref!);
    else studies.set(r.uid, r.ref);
  }
  return { owners, studies };
}

export async function readStudy(sql: Sql, studyUid: string): Promise<StudyRow | undefined> {
  const [row] = await sql.query<StudyRow & Record<string, unknown>>(
    `SELECT * FROM dicom_study WHERE study_uid = $1`,
    [studyUid],
  );
  return row;
}

/** Inserts the study row when it is new (attributes from its first instance). */
export async function ensureStudy(
  sql: Sql,
  s: Omit<
    StudyRow,
    "modalities" | "num_series" | "num_instances" | "patient_ref" | "imaging_study_id"
  >,
): Promise<void> {
  await sql.query(
    `INSERT INTO dicom_study (study_uid, patient_id, issuer, patient_name, birth_date, sex,
       study_date, study_time, accession, study_id, description, referring, attrs)
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13) ON CONFLICT (study_uid) DO NOTHING`,
    [
      s.study_uid,
      s.patient_id,
      s.issuer,
      s.patient_name,
      s.birth_date,
      s.sex,
      s.study_date,
      s.study_time,
      s.accession,
      s.study_id,
      s.description,
      s.referring,
      s.attrs,
    ],
  );
}

/** Inserts the series row when it is new; true when it did. */
export async function ensureSeries(
  sql: Sql,
  s: Omit<SeriesRow, "num_instances">,
): Promise<boolean> {
  const rows = await sql.query(
    `INSERT INTO dicom_series (series_uid, study_uid, modality, series_number, description,
       body_part, series_date, series_time, attrs)
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT (series_uid) DO NOTHING
     RETURNING series_uid`,
    [
      s.series_uid,
      s.study_uid,
      s.modality,
      s.series_number,
      s.description,
      s.body_part,
      s.series_date,
      s.series_time,
      s.attrs,
    ],
  );
  return rows.length > 0;
}

/**
 * Inserts instances in one statement; returns the SOP Instance UIDs that went in (the others were
 * already stored: nothing changes for them).
 */
export async function insertInstances(sql: Sql, list: InstanceRow[]): Promise<Set<string>> {
  if (!list.length) return new Set();
  const col = <K extends keyof InstanceRow>(k: K) => list.map((i) => i[k]);
  const rows = await sql.query<{ sop_uid: string }>(
    `INSERT INTO dicom_instance (sop_uid, series_uid, study_uid, sop_class, transfer_syntax,
       instance_number, title, frames, object_key, size, sha256, metadata)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[],
       $7::text[], $8::int[], $9::text[], $10::bigint[], $11::text[], $12::text[])
     ON CONFLICT (sop_uid) DO NOTHING RETURNING sop_uid`,
    [
      col("sop_uid"),
      col("series_uid"),
      col("study_uid"),
      col("sop_class"),
      col("transfer_syntax"),
      col("instance_number"),
      col("title"),
      col("frames"),
      col("object_key"),
      col("size"),
      col("sha256"),
      col("metadata"),
    ],
  );
  return new Set(rows.map((r) => r.sop_uid));
}

/** A stored instance, as `indexBatch` answers for an instance it did not insert. */
export type StoredInstance = Pick<
  InstanceRow,
  "sop_uid" | "sha256" | "series_uid" | "study_uid" | "object_key"
>;

/**
 * Indexes a batch of studies that are all stored already, in one round trip (migration 015's
 * `dicom_index_batch`): the study locks, new series, instances, counts, the ImagingStudy's stale
 * mark and the quiet period, committed together. `studies` sorted; one series row per series.
 * Answers null, having written nothing, when the batch needs the general path (a study not stored
 * yet, or a series stored under another study); else the instances it inserted, and for the
 * others the stored row with their SOP Instance UID.
 */
export async function indexBatch(
  sql: Sql,
  studies: string[],
  series: Omit<SeriesRow, "num_instances">[],
  instances: InstanceRow[],
): Promise<{ inserted: Set<string>; stored: Map<string, StoredInstance> } | null> {
  const s = <K extends keyof Omit<SeriesRow, "num_instances">>(k: K) => series.map((r) => r[k]);
  const i = <K extends keyof InstanceRow>(k: K) => instances.map((r) => r[k]);
  const rows = await sql.query<
    { outcome: string; sop: string | null } & Record<string, string | null>
  >(
    `SELECT * FROM dicom_index_batch($1::text[],
       $2::text[], $3::text[], $4::text[], $5::int[], $6::text[], $7::text[], $8::text[],
       $9::text[], $10::text[],
       $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::int[], $17::text[],
       $18::int[], $19::text[], $20::bigint[], $21::text[], $22::text[])`,
    [
      studies,
      s("series_uid"),
      s("study_uid"),
      s("modality"),
      s("series_number"),
      s("description"),
      s("body_part"),
      s("series_date"),
      s("series_time"),
      s("attrs"),
      i("sop_uid"),
      i("series_uid"),
      i("study_uid"),
      i("sop_class"),
      i("transfer_syntax"),
      i("instance_number"),
      i("title"),
      i("frames"),
      i("object_key"),
      i("size"),
      i("sha256"),
      i("metadata"),
    ],
  );
  if (rows.some((r) => r.outcome === "general")) return null;
  const inserted = new Set<string>();
  const stored = new Map<string, StoredInstance>();
  for (const r of rows) {
    if (r.outcome === "inserted") inserted.add(r.sop!);
    else {
      stored.set(r.sop!, {
        sop_uid: r.sop!,
        sha256: r.sha256!,
        series_uid: r.series!,
        study_uid: r.study!,
        object_key: r.object_key!,
      });
    }
  }
  return { inserted, stored };
}

/** Replaces a stored instance's bytes and metadata (the `replace` duplicate policy). */
export async function replaceInstance(sql: Sql, i: InstanceRow): Promise<void> {
  await sql.query(
    `UPDATE dicom_instance SET sop_class = $2, transfer_syntax = $3, instance_number = $4,
       title = $5, frames = $6, object_key = $7, size = $8, sha256 = $9, metadata = $10,
       updated = now()
     WHERE sop_uid = $1`,
    [
      i.sop_uid,
      i.sop_class,
      i.transfer_syntax,
      i.instance_number,
      i.title,
      i.frames,
      i.object_key,
      i.size,
      i.sha256,
      i.metadata,
    ],
  );
}

/** Recounts a study's series and instances and its modalities from the rows below it. */
/**
 * Adds a batch's new instances to the counts (per series, and the study's series, instances and
 * modalities: O(1) in the size of the study, not a recount) and, with `stale`, marks the study's
 * ImagingStudy behind the index: one statement. Run under the study's lock.
 */
export async function recordBatch(
  sql: Sql,
  studyUid: string,
  batch: {
    perSeries: Map<string, number>;
    newSeries: number;
    modalities: string[];
    stale: boolean;
  },
): Promise<void> {
  const series = [...batch.perSeries].filter(([, n]) => n > 0);
  const total = series.reduce((sum, [, n]) => sum + n, 0);
  await sql.query(
    // A data-modifying WITH runs to completion whether or not the main statement reads it.
    `WITH counted AS (
       UPDATE dicom_series d SET num_instances = d.num_instances + u.n
         FROM unnest($5::text[], $6::int[]) AS u(series_uid, n)
        WHERE d.series_uid = u.series_uid
       RETURNING 1)
     UPDATE dicom_study SET num_series = num_series + $2, num_instances = num_instances + $3,
       modalities = (SELECT coalesce(array_agg(DISTINCT m ORDER BY m), '{}')
                       FROM unnest(modalities || $4::text[]) m),
       fhir_stale_seq = fhir_stale_seq + $7,
       updated = now()
     WHERE study_uid = $1`,
    [
      studyUid,
      batch.newSeries,
      total,
      batch.modalities,
      series.map(([uid]) => uid),
      series.map(([, n]) => n),
      batch.stale ? 1 : 0,
    ],
  );
}

/** Marks the study's ImagingStudy behind the index (a rebuild is due). */
export async function markFhirStale(sql: Sql, studyUid: string): Promise<void> {
  await sql.query(
    `UPDATE dicom_study SET fhir_stale_seq = fhir_stale_seq + 1 WHERE study_uid = $1`,
    [studyUid],
  );
}

/** Records that the ImagingStudy reflects the index as of stale counter `seq`. */
export async function markFhirSynced(sql: Sql, studyUid: string, seq: number): Promise<void> {
  await sql.query(
    `UPDATE dicom_study SET fhir_synced_seq = greatest(fhir_synced_seq, $2) WHERE study_uid = $1`,
    [studyUid, seq],
  );
}

/** Whether the study's ImagingStudy is behind the index. */
export async function fhirStale(sql: Sql, studyUid: string): Promise<boolean> {
  const [row] = await sql.query<{ stale: boolean }>(
    `SELECT fhir_stale_seq > fhir_synced_seq AS stale FROM dicom_study WHERE study_uid = $1`,
    [studyUid],
  );
  return row?.stale ?? false;
}

/**
 * Takes the study's ImagingStudy rebuild for this transaction if no other transaction holds it
 * (an advisory lock); false when another does.
 */
export async function tryLockStudySync(sql: Sql, studyUid: string): Promise<boolean> {
  const [{ locked }] = await sql.query<{ locked: boolean }>(
    `SELECT pg_try_advisory_xact_lock(hashtext($1)) AS locked`,
    [`dicom-study-sync:${studyUid}`],
  );
  return locked;
}

/** The study's stale and synced counters (as the driver returns them), or undefined. */
export async function fhirSyncSeqs(
  sql: Sql,
  studyUid: string,
): Promise<{ stale: string; synced: string } | undefined> {
  const [row] = await sql.query<{ stale: string; synced: string }>(
    `SELECT fhir_stale_seq AS stale, fhir_synced_seq AS synced FROM dicom_study
          WHERE study_uid = $1`,
    [studyUid],
  );
  return row;
}

/** Studies whose ImagingStudy is behind and whose last batch is older than `quietMs`. */
export async function staleStudies(sql: Sql, quietMs: number, limit: number): Promise<string[]> {
  const rows = await sql.query<{ study_uid: string }>(
    `SELECT study_uid FROM dicom_study
      WHERE fhir_stale_seq > fhir_synced_seq AND updated <= now() - make_interval(secs => $1)
      ORDER BY updated LIMIT ${Math.trunc(limit)}`,
    [quietMs / 1000],
  );
  return rows.map((r) => r.study_uid);
}

export async function setStudyResources(
  sql: Sql,
  studyUid: string,
  patientRef: string | null,
  imagingStudyId: string,
): Promise<void> {
  await sql.query(
    `UPDATE dicom_study SET patient_ref = $2, imaging_study_id = $3 WHERE study_uid = $1`,
    [studyUid, patientRef, imagingStudyId],
  );
}

/** Series of a study, by series number. */
export async function listSeries(sql: Sql, studyUid: string): Promise<SeriesRow[]> {
  return await sql.query<SeriesRow & Record<string, unknown>>(
    `SELECT * FROM dicom_series WHERE study_uid = $1 ORDER BY series_number NULLS LAST, series_uid`,
    [studyUid],
  );
}

/**
 * Instances of a study (optionally one series, optionally one instance), in series then instance
 * number order; with `metadata` false the metadata column comes back empty.
 */
export async function listInstances(
  sql: Sql,
  where: { studyUid: string; seriesUid?: string; sopUid?: string },
  metadata = false,
): Promise<InstanceRow[]> {
  const params: unknown[] = [where.studyUid];
  let filter = "i.study_uid = $1";
  if (where.seriesUid) {
    params.push(where.seriesUid);
    filter += ` AND i.series_uid = $${params.length}`;
  }
  if (where.sopUid) {
    params.push(where.sopUid);
    filter += ` AND i.sop_uid = $${params.length}`;
  }
  return await sql.query<InstanceRow & Record<string, unknown>>(
    `SELECT ${INSTANCE_COLUMNS.replace(/(\w+)/g, "i.$1")}, ${metadata ? "i.metadata" : "''"}
       AS metadata
     FROM dicom_instance i JOIN dicom_series s ON s.series_uid = i.series_uid
     WHERE ${filter}
     ORDER BY s.series_number NULLS LAST, i.series_uid, i.instance_number NULLS LAST, i.sop_uid`,
    params,
  );
}

/** The object keys the instance rows of `sopUids` hold. */
export async function instanceObjectKeys(sql: Sql, sopUids: string[]): Promise<string[]> {
  const rows = await sql.query<{ object_key: string }>(
    `SELECT object_key FROM dicom_instance WHERE sop_uid = ANY($1::text[])`,
    [sopUids],
  );
  return rows.map((r) => r.object_key);
}

/**
 * A patient-bound token's studies: those whose FHIR ImagingStudy (`identifier` urn:dicom:uid, kept
 * in step with the DICOM store) names the patient. QIDO-RS filters by this set, WADO-RS answers
 * 404 outside it. This is SQL for the Study Instance UIDs in `patient`'s compartment, with `bind`
 * adding the patient's id as a parameter: `st.study_uid IN (<this>)`.
 */
export function patientStudyUids(bind: (v: unknown) => string, patient: string): string {
  return `SELECT substr(t.value, 9) FROM sp_token t JOIN sp_reference p ON p.rid = t.rid
    WHERE t.type = 'ImagingStudy' AND t.code = 'identifier' AND t.system = 'urn:dicom:uid'
      AND t.value LIKE 'urn:oid:%' AND p.type = 'ImagingStudy' AND p.code = 'patient'
      AND p.target_type = 'Patient' AND p.target_id = ${bind(patient)}`;
}

/** Whether the study `studyUid` is in `patient`'s compartment (`patientStudyUids`). */
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
