-- FHIR Bulk Data $export jobs (fhir/bulk/): one row per kick-off, run in the background by any
-- replica. A replica claims a due row with FOR UPDATE SKIP LOCKED and leases it (due_at pushed out,
-- a new lease_token); the worker renews the lease as it pages and checkpoints `progress` (the type,
-- the keyset position, the file being written) and `output` after each file, so a job whose
-- replica stopped resumes from its last file. state: queued → running → completed | failed;
-- cancelled (DELETE by its owner). A finished, failed or cancelled row falls due again at
-- `expires_at` (BULK_EXPORT_RETENTION_HOURS after it finished; at once when cancelled), when its
-- files and the row are removed. Files live in the object store under bulk/<id>/.
CREATE TABLE bulk_export (
  id               text        PRIMARY KEY,
  owner            text        NOT NULL,   -- the kick-off caller: `kind:sub`
  state            text        NOT NULL DEFAULT 'queued'
    CHECK (state IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
  request          text        NOT NULL,   -- the kick-off URL, for the manifest
  plan             jsonb       NOT NULL,   -- what to export, the caller's access resolved
  transaction_time timestamptz NOT NULL,
  progress         jsonb       NOT NULL DEFAULT '{}'::jsonb,
  output           jsonb       NOT NULL DEFAULT '[]'::jsonb,
  errors           jsonb       NOT NULL DEFAULT '[]'::jsonb,
  message          text,                   -- why it failed
  attempts         integer     NOT NULL DEFAULT 0,
  lease_token      text,
  due_at           timestamptz NOT NULL DEFAULT now(),
  created_at       timestamptz NOT NULL DEFAULT now(),
  finished_at      timestamptz,
  expires_at       timestamptz
);
CREATE INDEX bulk_export_due ON bulk_export (due_at);
