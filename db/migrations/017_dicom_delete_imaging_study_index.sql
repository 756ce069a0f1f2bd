-- DICOM deletion (dicom/delete.ts): a FHIR delete of an ImagingStudy asks whether the DICOM index
-- made it (dicom_study.imaging_study_id), to refuse it while the study's images are stored; this
-- index answers that without reading every study row.
CREATE INDEX dicom_study_imaging_study ON dicom_study (imaging_study_id);
