/**
 * @module The audit trail: every access (FHIR interactions, DICOMweb, exports, logins and failed
 * logins) becomes a FHIR R4 AuditEvent shaped after IHE Basic Audit Log Patterns (BALP): who
 * (agent, with the network address), what (entity: the resource, or the type and query of a
 * search), when (recorded), the RESTful interaction (type + subtype + action) and the outcome.
 * Events are buffered in memory and written in batches (one multi-row INSERT) off the request
 * path; `close()` writes what is left, so a clean shutdown loses none.
 */
import type { AuditEvent } from "@medplum/fhirtypes";
import type { Db } from "../db/db.ts";
import type { Logger } from "../inference/log.ts";

/** One audited access, as the app middleware and the login endpoint see it. */
export interface AuditRecord {
  /** `rest` for API interactions, `login` for authentication, `export` for downloads. */
  kind: "rest" | "login" | "export";
  /** The interaction: read, vread, search-type, search-system, history-*, create, update, patch, delete, transaction, batch, operation, login, logout. */
  subtype: string;
  action: "C" | "R" | "U" | "D" | "E";
  /** HTTP status of the answer: < 400 success, 4xx minor failure, 5xx serious failure. */
  status: number;
  agent: { kind: "user" | "client" | "internal" | "anonymous"; id: string; name?: string };
  address?: string;
  /** `Type/id` of the resource, or the type searched. */
  entity?: string;
  /** The query of a search (kept in the event, base64 per AuditEvent.entity.query). */
  query?: string;
  patient?: string;
  requestId?: string;
  /** What the event is about in words (the failed login's reason, the DICOMweb path). */
  description?: string;
  at?: Date;
}

export interface AuditLog {
  record(event: AuditRecord): void;
  /** Writes what is buffered now. */
  flush(): Promise<void>;
  /** Stops the timer and writes everything still buffered. */
  close(): Promise<void>;
  /** Events buffered and not yet written. */
  readonly pending: number;
}

const DCM = "http://dicom.nema.org/resources/ontology/DCM";
const BATCH = 500;

export function createAuditLog(
  db: Db,
  log: Logger,
  options: { flushMs?: number; enabled?: boolean } = {},
): AuditLog {
  const enabled = options.enabled ?? true;
  const buffer: { row: unknown[] }[] = [];
  let writing: Promise<void> = Promise.resolve();
  let closed = false;
  const timer = setInterval(() => void flush(), options.flushMs ?? 1000);
  Deno.unrefTimer(timer);

  function flush(): Promise<void> {
    // One writer at a time, in order; each takes what is buffered when it starts.
    writing = writing.then(async () => {
      while (buffer.length) {
        const batch = buffer.splice(0, BATCH);
        try {
          await insert(db, batch.map((b) => b.row));
        } catch (e) {
          // Put them back (in front) and try again at the next tick; never drop an event.
          buffer.unshift(...batch);
          log("error", "audit events could not be written; kept for the next try", {
            pending: buffer.length,
            error: String(e),
          });
          return;
        }
      }
    });
    return writing;
  }

  return {
    get pending() {
      return buffer.length;
    },
    record(event) {
      if (!enabled) return;
      if (closed) {
        log("warn", "audit event after close: written at once");
      }
      const resource = toAuditEvent(event);
      buffer.push({
        row: [
          resource.id,
          resource.recorded,
          event.kind === "login" ? "110114" : event.kind,
          event.subtype,
          event.action,
          resource.outcome,
          `${event.agent.kind}/${event.agent.id}`,
          event.agent.name ?? null,
          event.address ?? null,
          event.entity ?? null,
          event.patient ?? null,
          event.requestId ?? null,
          JSON.stringify(resource),
        ],
      });
      if (closed || buffer.length >= BATCH) void flush();
    },
    flush,
    async close() {
      closed = true;
      clearInterval(timer);
      await flush();
      if (buffer.length) await flush();
    },
  };
}

async function insert(db: Db, rows: unknown[][]): Promise<void> {
  const columns = 13;
  const values = rows.map((_, r) =>
    `(${
      Array.from(
        { length: columns },
        (_, c) => `$${r * columns + c + 1}${c === 12 ? "::jsonb" : ""}`,
      )
        .join(", ")
    })`
  );
  await db.query(
    `INSERT INTO audit_event (id, recorded, type_code, subtype, action, outcome, agent, agent_name,
       address, entity, patient, request_id, resource) VALUES ${values.join(", ")}
     ON CONFLICT (id) DO NOTHING`,
    rows.flat(),
  );
}

/** The FHIR R4 AuditEvent of a record (BALP-style codings). */
export function toAuditEvent(e: AuditRecord): AuditEvent & { id: string; recorded: string } {
  const recorded = (e.at ?? new Date()).toISOString();
  const outcome = e.status < 400 ? "0" : e.status < 500 ? "4" : "8";
  const type = e.kind === "login"
    ? { system: DCM, code: "110114", display: "User Authentication" }
    : e.kind === "export"
    ? { system: DCM, code: "110106", display: "Export" }
    : {
      system: "http://terminology.hl7.org/CodeSystem/audit-event-type",
      code: "rest",
      display: "Restful Operation",
    };
  const subtype = e.kind === "login"
    ? { system: DCM, code: e.subtype === "logout" ? "110123" : "110122", display: e.subtype }
    : e.kind === "export"
    ? { system: "urn:imaging-ai:audit-subtype", code: e.subtype }
    : { system: "http://hl7.org/fhir/restful-interaction", code: e.subtype };
  const identifierSystem = e.agent.kind === "client"
    ? "urn:imaging-ai:client"
    : e.agent.kind === "user"
    ? "urn:imaging-ai:user"
    : "urn:imaging-ai:agent";
  const event: AuditEvent & { id: string; recorded: string } = {
    resourceType: "AuditEvent",
    id: crypto.randomUUID(),
    meta: { lastUpdated: recorded },
    type,
    subtype: [subtype],
    action: e.action,
    recorded,
    outcome,
    ...(e.status >= 400 ? { outcomeDesc: e.description ?? `HTTP ${e.status}` } : {}),
    agent: [{
      type: {
        coding: [{
          system: "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
          code: "IRCP",
          display: "information recipient",
        }],
      },
      who: {
        identifier: { system: identifierSystem, value: e.agent.id },
        ...(e.agent.name ? { display: e.agent.name } : {}),
      },
      requestor: true,
      ...(e.address ? { network: { address: e.address, type: "2" as const } } : {}),
    }],
    source: {
      observer: { display: "imaging-ai" },
      type: [{
        system: "http://terminology.hl7.org/CodeSystem/security-source-type",
        code: "4",
        display: "Application Server",
      }],
    },
  };
  const entities: NonNullable<AuditEvent["entity"]> = [];
  if (e.entity || e.query) {
    entities.push({
      ...(e.entity?.includes("/") ? { what: { reference: e.entity } } : {}),
      type: {
        system: "http://terminology.hl7.org/CodeSystem/audit-entity-type",
        code: "2",
        display: "System Object",
      },
      // R4 sev-1: a name or a query, not both. A search keeps its query (BALP role 24, Query)
      // and says what it searched in the description.
      ...(e.query
        ? {
          query: base64(e.query),
          role: {
            system: "http://terminology.hl7.org/CodeSystem/object-role",
            code: "24",
            display: "Query",
          },
          description: `${e.entity ?? "all types"} ${e.subtype}`,
        }
        : e.entity && !e.entity.includes("/")
        ? { name: e.entity }
        : {}),
    });
  }
  if (e.patient && e.patient !== e.entity) {
    entities.push({
      what: { reference: e.patient },
      type: {
        system: "http://terminology.hl7.org/CodeSystem/audit-entity-type",
        code: "1",
        display: "Person",
      },
    });
  }
  if (e.requestId) {
    entities.push({
      what: { identifier: { system: "urn:imaging-ai:request-id", value: e.requestId } },
      type: {
        system: "http://terminology.hl7.org/CodeSystem/audit-entity-type",
        code: "4",
        display: "Other",
      },
    });
  }
  if (entities.length) event.entity = entities;
  return event;
}

function base64(text: string): string {
  let binary = "";
  for (const b of new TextEncoder().encode(text)) binary += String.fromCharCode(b);
  return btoa(binary);
}
