-- Deliveries of stored DICOM instances to the destinations of DICOM_DESTINATIONS (a PACS, an
-- archive): one row per (destination, instance), queued when a STOW-RS stores (or is sent again)
-- an instance of a kind the destination wants, so pending retries survive a restart and every
-- replica shares them. A sender claims due rows with FOR UPDATE SKIP LOCKED and pushes
-- next_attempt_at out by a lease while it sends. state: pending → delivered | dead (given up after
-- the last attempt, or refused for good: an admin may queue it again) | cancelled (the instance is
-- gone, or the destination was removed from the configuration).
CREATE TABLE dicom_forward (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  destination     text        NOT NULL,
  study_uid       text        NOT NULL,
  series_uid      text        NOT NULL,
  sop_uid         text        NOT NULL,
  sop_class       text        NOT NULL,
  state           text        NOT NULL DEFAULT 'pending',
  attempts        integer     NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  last_status     integer,    -- the destination's HTTP status of the last attempt
  last_error      text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  delivered_at    timestamptz,
  UNIQUE (destination, sop_uid)
);
CREATE INDEX dicom_forward_due ON dicom_forward (next_attempt_at) WHERE state = 'pending';
CREATE INDEX dicom_forward_log ON dicom_forward (destination, state, id DESC);
CREATE INDEX dicom_forward_study ON dicom_forward (study_uid);
