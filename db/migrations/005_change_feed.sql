-- Every version row gets a feed position and the transaction that wrote it, so readers (SSE,
-- Subscriptions, the AI pipeline) can follow changes in commit-safe order: a reader takes rows by
-- seq only while their transaction is older than every transaction still running
-- (pg_snapshot_xmin), so a version committed late under a lower seq is never skipped.
ALTER TABLE resource_version ADD COLUMN seq bigserial;
ALTER TABLE resource_version ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE UNIQUE INDEX resource_version_seq ON resource_version (seq);
