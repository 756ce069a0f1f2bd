-- The audit trail (audit/): one row per audited access, written in batches off the request path.
-- Served as FHIR AuditEvent resources (admins only; append-only: no update or delete route). The
-- columns are what searches filter on; `resource` is the AuditEvent as served.
CREATE TABLE audit_event (
  id          text        PRIMARY KEY,
  recorded    timestamptz NOT NULL,
  type_code   text        NOT NULL,   -- rest | 110114 (user authentication) | export
  subtype     text        NOT NULL,   -- read, search-type, create, login, …
  action      text        NOT NULL,   -- C R U D E
  outcome     text        NOT NULL,   -- 0 success, 4 minor failure, 8 serious, 12 major
  agent       text        NOT NULL,   -- user/<id> | client/<id> | anonymous
  agent_name  text,
  address     text,
  entity      text,                   -- Type/id, or Type for searches
  patient     text,                   -- Patient/<id> when the access is about one patient
  request_id  text,
  resource    jsonb       NOT NULL
);
CREATE INDEX audit_event_recorded ON audit_event (recorded DESC, id DESC);
CREATE INDEX audit_event_agent ON audit_event (agent, recorded DESC);
CREATE INDEX audit_event_entity ON audit_event (entity, recorded DESC);
CREATE INDEX audit_event_patient ON audit_event (patient, recorded DESC) WHERE patient IS NOT NULL;
