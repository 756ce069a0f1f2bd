-- Feed positions handed out in commit-safe order (db/change_feed_repo.ts). Ordering versions by
-- their insert-time seq was not enough: a transaction with a newer txid can take a lower seq and
-- still be running while an older transaction's higher seq is already safe to read, and a reader
-- that moved past the higher seq never saw the lower one. Now a reader first stamps every version
-- whose transaction is older than every running one, in (txid, seq) order, with the next
-- positions; versions that commit later have newer txids, so they always get higher positions.
CREATE TABLE change_feed (
  pos bigint PRIMARY KEY,
  seq bigint NOT NULL UNIQUE  -- resource_version.seq
);
-- How far stamping has come: every version at or before (txid, seq) has its position.
CREATE TABLE change_feed_mark (
  one  boolean PRIMARY KEY DEFAULT true CHECK (one),
  txid xid8    NOT NULL,
  seq  bigint  NOT NULL
);
CREATE INDEX resource_version_txid_seq ON resource_version (txid, seq);
-- Versions already safe keep their seq as their position (earlier event ids and cursors stay
-- valid); versions of transactions still running are stamped by the first reader.
INSERT INTO change_feed (pos, seq)
  SELECT seq, seq FROM resource_version
   WHERE txid < pg_snapshot_xmin(pg_current_snapshot());
INSERT INTO change_feed_mark (txid, seq)
  SELECT txid, seq FROM resource_version
   WHERE txid < pg_snapshot_xmin(pg_current_snapshot())
   ORDER BY txid DESC, seq DESC LIMIT 1;
