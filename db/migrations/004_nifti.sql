-- NIfTI volumes uploaded for a Patient: the bytes in the object store, the header, and the FHIR
-- resources that describe them (an ImagingStudy and a DocumentReference).
CREATE TABLE nifti_volume (
  id                    text PRIMARY KEY,
  object_key            text        NOT NULL,
  filename              text        NOT NULL,
  content_type          text        NOT NULL,
  size                  bigint      NOT NULL,
  sha256                text        NOT NULL,
  header                text        NOT NULL,
  patient_ref           text        NOT NULL,
  imaging_study_id      text        NOT NULL,
  document_reference_id text        NOT NULL,
  created               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX nifti_volume_patient ON nifti_volume (patient_ref);
