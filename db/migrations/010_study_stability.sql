-- When each study last received an instance (by the database's clock, shared by every replica),
-- and when a replica claimed its quiet period's end (dicom/stability.ts). A new instance clears
-- fired_at, so the next quiet period fires again.
CREATE TABLE study_stability (
  study_uid        text        PRIMARY KEY,
  last_instance_at timestamptz NOT NULL,
  fired_at         timestamptz
);
CREATE INDEX study_stability_due ON study_stability (last_instance_at) WHERE fired_at IS NULL;
