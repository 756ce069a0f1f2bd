-- The ImagingStudy of a study is brought up to date from the index coalesced, not rebuilt by every
-- stored batch: a batch bumps fhir_stale_seq; a rebuild reads fhir_stale_seq before the index and
-- records it as fhir_synced_seq after the write. Stale while fhir_stale_seq > fhir_synced_seq (a
-- replica that died mid-rebuild leaves it stale; a poll finds it by the partial index).
ALTER TABLE dicom_study ADD COLUMN fhir_stale_seq bigint NOT NULL DEFAULT 0;
ALTER TABLE dicom_study ADD COLUMN fhir_synced_seq bigint NOT NULL DEFAULT 0;
CREATE INDEX dicom_study_fhir_stale ON dicom_study (updated)
  WHERE fhir_stale_seq > fhir_synced_seq;
