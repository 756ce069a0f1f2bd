-- Covering indexes: a filter's index rows carry the rid, and the resource row's type and deleted
-- flag are in an index too, so matching and counting run as index-only scans; resource content is
-- read only for the rows of the page.
CREATE INDEX resource_rid_live ON resource (rid) INCLUDE (type, deleted);
CREATE INDEX sp_string_norm_rid ON sp_string (type, code, norm text_pattern_ops) INCLUDE (rid);
DROP INDEX sp_string_norm;
CREATE INDEX sp_token_value_rid ON sp_token (type, code, value, system) INCLUDE (rid);
DROP INDEX sp_token_value;
CREATE INDEX sp_reference_target_rid ON sp_reference (type, code, target_id, target_type) INCLUDE (rid);
DROP INDEX sp_reference_target;
CREATE INDEX sp_date_lo_rid ON sp_date (type, code, lo) INCLUDE (hi, rid);
DROP INDEX sp_date_lo;
CREATE INDEX sp_date_hi_rid ON sp_date (type, code, hi) INCLUDE (lo, rid);
DROP INDEX sp_date_hi;
