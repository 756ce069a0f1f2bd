-- DICOM instances, series and studies as received: the index that STOW-RS writes, QIDO-RS
-- searches and WADO-RS metadata is served from (never by re-reading files). The bytes live in
-- the object store under object_key; a row exists only for an object that was stored.

CREATE TABLE dicom_study (
  study_uid        text PRIMARY KEY,
  patient_id       text,
  issuer           text,
  patient_name     text,
  birth_date       text,
  sex              text,
  study_date       text,
  study_time       text,
  accession        text,
  study_id         text,
  description      text,
  referring        text,
  modalities       text[]      NOT NULL DEFAULT '{}',
  num_series       integer     NOT NULL DEFAULT 0,
  num_instances    integer     NOT NULL DEFAULT 0,
  -- DICOM JSON of the patient and study attributes (from the first instance), for QIDO
  attrs            text        NOT NULL,
  patient_ref      text,
  imaging_study_id text,
  created          timestamptz NOT NULL DEFAULT now(),
  updated          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dicom_study_patient_id ON dicom_study (patient_id);
CREATE INDEX dicom_study_patient_name ON dicom_study (upper(patient_name) text_pattern_ops);
CREATE INDEX dicom_study_date ON dicom_study (study_date, study_time);
CREATE INDEX dicom_study_accession ON dicom_study (accession);
CREATE INDEX dicom_study_updated ON dicom_study (updated);

CREATE TABLE dicom_series (
  series_uid    text PRIMARY KEY,
  study_uid     text    NOT NULL REFERENCES dicom_study (study_uid) ON DELETE CASCADE,
  modality      text,
  series_number integer,
  description   text,
  body_part     text,
  series_date   text,
  series_time   text,
  num_instances integer NOT NULL DEFAULT 0,
  attrs         text    NOT NULL
);
CREATE INDEX dicom_series_study ON dicom_series (study_uid, series_number);
CREATE INDEX dicom_series_modality ON dicom_series (modality);

CREATE TABLE dicom_instance (
  sop_uid         text PRIMARY KEY,
  series_uid      text        NOT NULL REFERENCES dicom_series (series_uid) ON DELETE CASCADE,
  study_uid       text        NOT NULL,
  sop_class       text        NOT NULL,
  transfer_syntax text        NOT NULL,
  instance_number integer,
  title           text,
  frames          integer     NOT NULL DEFAULT 0,
  object_key      text        NOT NULL,
  size            bigint      NOT NULL,
  sha256          text        NOT NULL,
  -- the instance's DICOM JSON, BulkDataURIs relative (bulkdata:<tag path>)
  metadata        text        NOT NULL,
  created         timestamptz NOT NULL DEFAULT now(),
  updated         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dicom_instance_series ON dicom_instance (series_uid, instance_number);
CREATE INDEX dicom_instance_study ON dicom_instance (study_uid);
