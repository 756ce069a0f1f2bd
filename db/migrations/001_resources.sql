-- Current version of every resource, its full history, and one table per search-parameter kind.
-- Index rows point at resource.rid (an internal surrogate key that never leaves the database).

CREATE TABLE resource (
  rid          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  type         text        NOT NULL,
  id           text        NOT NULL,
  version      integer     NOT NULL,
  last_updated timestamptz NOT NULL,
  deleted      boolean     NOT NULL DEFAULT false,
  content      jsonb,
  UNIQUE (type, id)
);
CREATE INDEX resource_type_updated ON resource (type, last_updated, rid);

CREATE TABLE resource_version (
  rid          bigint      NOT NULL REFERENCES resource (rid),
  version      integer     NOT NULL,
  type         text        NOT NULL,
  id           text        NOT NULL,
  last_updated timestamptz NOT NULL,
  deleted      boolean     NOT NULL,
  method       text        NOT NULL,
  content      jsonb,
  PRIMARY KEY (rid, version)
);
CREATE INDEX resource_version_updated ON resource_version (last_updated);
CREATE INDEX resource_version_type_updated ON resource_version (type, last_updated);

-- grp: which repetition of a composite parameter's root element a row came from (0 otherwise).
CREATE TABLE sp_string (
  rid   bigint NOT NULL REFERENCES resource (rid),
  type  text   NOT NULL,
  code  text   NOT NULL,
  grp   integer NOT NULL DEFAULT 0,
  norm  text   NOT NULL,   -- lower-cased, accents removed: default and :contains matching
  value text   NOT NULL    -- as written: :exact matching
);
CREATE INDEX sp_string_norm ON sp_string (type, code, norm text_pattern_ops);
CREATE INDEX sp_string_rid ON sp_string (rid);

CREATE TABLE sp_token (
  rid    bigint NOT NULL REFERENCES resource (rid),
  type   text   NOT NULL,
  code   text   NOT NULL,
  grp    integer NOT NULL DEFAULT 0,
  system text,
  value  text,
  text   text              -- normalized display / text: :text matching
);
CREATE INDEX sp_token_value ON sp_token (type, code, value, system);
CREATE INDEX sp_token_rid ON sp_token (rid);

CREATE TABLE sp_reference (
  rid         bigint NOT NULL REFERENCES resource (rid),
  type        text   NOT NULL,
  code        text   NOT NULL,
  grp         integer NOT NULL DEFAULT 0,
  target_type text,
  target_id   text,
  ref         text   NOT NULL  -- the reference as written (relative, absolute or canonical)
);
CREATE INDEX sp_reference_target ON sp_reference (type, code, target_id, target_type);
CREATE INDEX sp_reference_reverse ON sp_reference (target_type, target_id, code);
CREATE INDEX sp_reference_ref ON sp_reference (type, code, ref);
CREATE INDEX sp_reference_rid ON sp_reference (rid);

-- A date is the half-open range [lo, hi): '1974' is [1974-01-01, 1975-01-01); open ends are infinity.
CREATE TABLE sp_date (
  rid  bigint      NOT NULL REFERENCES resource (rid),
  type text        NOT NULL,
  code text        NOT NULL,
  grp  integer     NOT NULL DEFAULT 0,
  lo   timestamptz NOT NULL,
  hi   timestamptz NOT NULL
);
CREATE INDEX sp_date_lo ON sp_date (type, code, lo);
CREATE INDEX sp_date_hi ON sp_date (type, code, hi);
CREATE INDEX sp_date_rid ON sp_date (rid);

CREATE TABLE sp_number (
  rid   bigint  NOT NULL REFERENCES resource (rid),
  type  text    NOT NULL,
  code  text    NOT NULL,
  grp   integer NOT NULL DEFAULT 0,
  value numeric NOT NULL
);
CREATE INDEX sp_number_value ON sp_number (type, code, value);
CREATE INDEX sp_number_rid ON sp_number (rid);

CREATE TABLE sp_quantity (
  rid    bigint  NOT NULL REFERENCES resource (rid),
  type   text    NOT NULL,
  code   text    NOT NULL,
  grp    integer NOT NULL DEFAULT 0,
  value  numeric NOT NULL,
  system text,
  unit_code text,
  unit   text
);
CREATE INDEX sp_quantity_value ON sp_quantity (type, code, value);
CREATE INDEX sp_quantity_rid ON sp_quantity (rid);

CREATE TABLE sp_uri (
  rid   bigint NOT NULL REFERENCES resource (rid),
  type  text   NOT NULL,
  code  text   NOT NULL,
  grp   integer NOT NULL DEFAULT 0,
  value text   NOT NULL
);
CREATE INDEX sp_uri_value ON sp_uri (type, code, value);
CREATE INDEX sp_uri_rid ON sp_uri (rid);
