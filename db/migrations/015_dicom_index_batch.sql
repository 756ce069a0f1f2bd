-- One round trip for a stored batch of a study that is already indexed (dicom/store.ts): the
-- study locks, the new series, the instances, the counts, the ImagingStudy's stale mark and the
-- quiet period, in the one implicit transaction of a statement. Before, these were six statements
-- and BEGIN/COMMIT, each a round trip, which at one instance per request (as PACS forwarders and
-- C-STORE bridges send) cost more than the rest of the request.
--
-- It writes nothing and answers one row of outcome 'general' when the batch needs the general path
-- (a study not indexed yet, or without its ImagingStudy, gets its Patient and ImagingStudy made in
-- TypeScript; a series stored under another study fails its parts there). Otherwise it answers one row per instance: 'inserted', or
-- 'stored' with the stored row's sha256, series, study and object key (decided by the caller:
-- duplicate, replacement, or a conflict).
CREATE FUNCTION dicom_index_batch(
  studies text[],
  s_uid text[], s_study text[], s_modality text[], s_number integer[], s_description text[],
  s_body_part text[], s_date text[], s_time text[], s_attrs text[],
  i_sop text[], i_series text[], i_study text[], i_class text[], i_syntax text[],
  i_number integer[], i_title text[], i_frames integer[], i_key text[], i_size bigint[],
  i_sha text[], i_metadata text[]
) RETURNS TABLE (outcome text, sop text, sha256 text, series text, study text, object_key text)
LANGUAGE plpgsql AS $$
DECLARE
  s text;
  -- The series and instances this call inserted (the others were stored already).
  n_study text[];
  n_modality text[];
  p_sop text[];
  p_series text[];
  p_study text[];
BEGIN
  -- The same locks, in the same (sorted) order, as the general path's lockStudy.
  FOREACH s IN ARRAY studies LOOP
    PERFORM pg_advisory_xact_lock(hashtext('dicom-study:' || s));
  END LOOP;
  IF (SELECT count(*) FROM dicom_study d
       WHERE d.study_uid = ANY (studies) AND d.imaging_study_id IS NOT NULL)
       < cardinality(studies)
     OR EXISTS (SELECT 1 FROM dicom_series d JOIN unnest(s_uid, s_study) AS u (uid, st)
                  ON d.series_uid = u.uid WHERE d.study_uid <> u.st) THEN
    RETURN QUERY SELECT 'general'::text, NULL::text, NULL::text, NULL::text, NULL::text,
      NULL::text;
    RETURN;
  END IF;
  WITH made AS (
    INSERT INTO dicom_series (series_uid, study_uid, modality, series_number, description,
      body_part, series_date, series_time, attrs)
    SELECT * FROM unnest(s_uid, s_study, s_modality, s_number, s_description, s_body_part,
      s_date, s_time, s_attrs)
    ON CONFLICT (series_uid) DO NOTHING
    RETURNING dicom_series.study_uid, dicom_series.modality)
  SELECT coalesce(array_agg(made.study_uid), '{}'), coalesce(array_agg(made.modality), '{}')
    INTO n_study, n_modality FROM made;
  WITH put AS (
    INSERT INTO dicom_instance (sop_uid, series_uid, study_uid, sop_class, transfer_syntax,
      instance_number, title, frames, object_key, size, sha256, metadata)
    SELECT * FROM unnest(i_sop, i_series, i_study, i_class, i_syntax, i_number, i_title,
      i_frames, i_key, i_size, i_sha, i_metadata)
    ON CONFLICT (sop_uid) DO NOTHING
    RETURNING dicom_instance.sop_uid, dicom_instance.series_uid, dicom_instance.study_uid)
  SELECT coalesce(array_agg(put.sop_uid), '{}'), coalesce(array_agg(put.series_uid), '{}'),
         coalesce(array_agg(put.study_uid), '{}')
    INTO p_sop, p_series, p_study FROM put;
  UPDATE dicom_series d SET num_instances = d.num_instances + c.n
    FROM (SELECT u.series, count(*) AS n FROM unnest(p_series) AS u (series) GROUP BY u.series) c
   WHERE d.series_uid = c.series;
  UPDATE dicom_study d
     SET num_series = d.num_series + c.new_series,
         num_instances = d.num_instances + c.n,
         modalities = (SELECT coalesce(array_agg(DISTINCT m ORDER BY m), '{}')
                         FROM unnest(d.modalities || c.modalities) m),
         fhir_stale_seq = d.fhir_stale_seq + 1,
         updated = now()
    FROM (SELECT st.study,
                 (SELECT count(*) FROM unnest(p_study) AS i (study) WHERE i.study = st.study)
                   AS n,
                 (SELECT count(*) FROM unnest(n_study) AS m (study) WHERE m.study = st.study)
                   AS new_series,
                 (SELECT coalesce(array_agg(m.modality), '{}')
                    FROM unnest(n_study, n_modality) AS m (study, modality)
                   WHERE m.study = st.study AND m.modality IS NOT NULL) AS modalities
            FROM (SELECT DISTINCT i.study FROM unnest(p_study) AS i (study)) st) c
   WHERE d.study_uid = c.study;
  -- As dicom/stability.ts touch(): the study's quiet period starts again.
  INSERT INTO study_stability (study_uid, last_instance_at)
  SELECT DISTINCT i.study, now() FROM unnest(p_study) AS i (study)
  ON CONFLICT (study_uid) DO UPDATE
    SET last_instance_at = now(), fired_at = NULL, claimed_at = NULL, attempts = 0;
  RETURN QUERY
    SELECT CASE WHEN n.sop IS NULL THEN 'stored' ELSE 'inserted' END,
           u.sop,
           d.sha256,
           d.series_uid,
           d.study_uid,
           d.object_key
      FROM unnest(i_sop) AS u (sop)
      LEFT JOIN unnest(p_sop) AS n (sop) ON n.sop = u.sop
      LEFT JOIN dicom_instance d ON n.sop IS NULL AND d.sop_uid = u.sop;
END
$$;
