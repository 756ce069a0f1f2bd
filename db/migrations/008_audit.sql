-- The audit trail (audit/): one row per audited access, written in batches off the request path.
-- Served as FHIR AuditEvent resources (admins only; append-only: no update or delete route), made
-- from these columns when read (audit/log.ts#toAuditEvent), so writing one costs one narrow row.
CREATE TABLE audit_event (
  id          text        PRIMARY KEY,
  recorded    timestamptz NOT NULL,
  type_code   text        NOT NULL,   -- rest | 110114 (user authentication) | export
  subtype     text        NOT NULL,   -- read, search-type, create, login, …
  action      text        NOT NULL,   -- C R U D E
  status      smallint    NOT NULL,   -- the HTTP status; the AuditEvent's outcome is made from it
  agent       text        NOT NULL,   -- user/<id> | client/<id> | anonymous
  agent_name  text,
  address     text,
  entity      text,                   -- Type/id, or Type for searches
  patient     text,                   -- Patient/<id> when the access is about one patient
  request_id  text,
  query       text,                   -- the query string of a search
  description text
);
CREATE INDEX audit_event_recorded ON audit_event (recorded DESC, id DESC);
CREATE INDEX audit_event_agent ON audit_event (agent, recorded DESC);
CREATE INDEX audit_event_entity ON audit_event (entity, recorded DESC);
CREATE INDEX audit_event_patient ON audit_event (patient, recorded DESC) WHERE patient IS NOT NULL;
