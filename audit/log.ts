/**
 * @module The audit trail: every access (FHIR interactions, DICOMweb, exports, logins and failed
 * logins) becomes a FHIR R4 AuditEvent shaped after IHE Basic Audit Log Patterns (BALP): who
 * (agent, with the network address), what (entity: the resource, or the type and query of a
 * search), when (recorded), the RESTful interaction (type + subtype + action) and the outcome.
 * Events are buffered in memory and written in batches (one multi-row INSERT, `audit_repo.ts`)
 * off the request path; `close()` writes what is left, so a clean shutdown loses none.
 */
import type { AuditEvent } from "@medplum/fhirtypes";
import type { Db } from "../db/db.ts";
import type { Logger } from "../platform/log.ts";
import { insertAuditRows } from "./audit_repo.ts";

/** One audited access, as the app middleware and the login endpoint see it. */
export interface AuditRecord {
  /**
   * `rest` for API interactions, `login` for authentication, `export` for downloads, `dimse` for
   * a DIMSE association (subtype: transfer, query or association).
   */
  kind: "rest" | "login" | "export" | "dimse";
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
/** A DIMSE association's event type (PS3.15 A.5.3, DICOM audit message event IDs). */
const DIMSE_TYPES: Record<string, { system: string; code: string; display: string }> = {
  transfer: { system: DCM, code: "110104", display: "DICOM Instances Transferred" },
  query: { system: DCM, code: "110112", display: "Query" },
  association: { system: DCM, code: "110100", display: "Application Activity" },
};
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
          await insertAuditRows(db, batch.map((b) => b.row));
        } catch (e) {
          // One row the database refuses must not hold up the others: write them one by one.
          // If none goes in, the database is down: put them back for the next tick.
          let written = 0;
          const refused: unknown[][] = [];
          for (const b of batch) {
            try {
              await insertAuditRows(db, [b.row]);
              written++;
            } catch {
              refused.push(b.row);
            }
          }
          if (written === 0) {
            buffer.unshift(...batch);
            log("error", "audit events could not be written; kept for the next try", {
              pending: buffer.length,
              error: String(e),
            });
            return;
          }
          for (const row of refused) {
            log("error", "an audit event the database refuses was set aside", {
              id: row[0],
              row: JSON.stringify(row).slice(0, 2000),
            });
          }
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
      const e = cleanRecord(event);
      const at = (e.at ?? new Date()).toISOString();
      buffer.push({
        // The columns of `audit_repo.ts`, in its order.
        row: [
          crypto.randomUUID(),
          at,
          e.kind === "login" ? "110114" : e.kind,
          e.subtype,
          e.action,
          String(e.status),
          `${e.agent.kind}/${e.agent.id}`,
          e.agent.name ?? null,
          e.address ?? null,
          e.entity ?? null,
          e.patient ?? null,
          e.requestId ?? null,
          e.query ?? null,
          e.description ?? null,
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

/** The AuditEvent of a stored row (what `/fhir/AuditEvent` serves). */
export function rowToAuditEvent(r: Record<string, unknown>): AuditEvent & { id: string } {
  const agent = String(r.agent);
  const slash = agent.indexOf("/");
  const typeCode = String(r.type_code);
  return toAuditEvent({
    kind: typeCode === "110114"
      ? "login"
      : typeCode === "export" || typeCode === "dimse"
      ? typeCode
      : "rest",
    subtype: String(r.subtype),
    action: String(r.action) as AuditRecord["action"],
    status: Number(r.status),
    agent: {
      kind: agent.slice(0, slash) as AuditRecord["agent"]["kind"],
      id: agent.slice(slash + 1),
      name: (r.agent_name as string | null) ?? undefined,
    },
    address: (r.address as string | null) ?? undefined,
    entity: (r.entity as string | null) ?? undefined,
    patient: (r.patient as string | null) ?? undefined,
    requestId: (r.request_id as string | null) ?? undefined,
    query: (r.query as string | null) ?? undefined,
    description: (r.description as string | null) ?? undefined,
    at: new Date(r.recorded as string),
  }, String(r.id));
}

/** The FHIR R4 AuditEvent of a record (BALP-style codings). */
export function toAuditEvent(
  e: AuditRecord,
  id: string = crypto.randomUUID(),
): AuditEvent & { id: string; recorded: string } {
  const recorded = (e.at ?? new Date()).toISOString();
  const outcome = e.status < 400 ? "0" : e.status < 500 ? "4" : "8";
  const type = e.kind === "login"
    ? { system: DCM, code: "110114", display: "User Authentication" }
    : e.kind === "export"
    ? { system: DCM, code: "110106", display: "Export" }
    : e.kind === "dimse"
    ? DIMSE_TYPES[e.subtype] ?? DIMSE_TYPES.association
    : {
      system: "http://terminology.hl7.org/CodeSystem/audit-event-type",
      code: "rest",
      display: "Restful Operation",
    };
  const subtype = e.kind === "login"
    ? { system: DCM, code: e.subtype === "logout" ? "110123" : "110122", display: e.subtype }
    : e.kind === "export" || e.kind === "dimse"
    ? { system: "urn:imaging-ai:audit-subtype", code: e.subtype }
    : { system: "http://hl7.org/fhir/restful-interaction", code: e.subtype };
  const identifierSystem = e.agent.kind === "client"
    ? "urn:imaging-ai:client"
    : e.agent.kind === "user"
    ? "urn:imaging-ai:user"
    : "urn:imaging-ai:agent";
  const event: AuditEvent & { id: string; recorded: string } = {
    resourceType: "AuditEvent",
    id,
    meta: { lastUpdated: recorded },
    type,
    subtype: [subtype],
    action: e.action,
    recorded,
    outcome,
    // A failure's reason, or what a success did where the record says (a DICOM deletion).
    ...(e.status >= 400 || e.description
      ? { outcomeDesc: e.description ?? `HTTP ${e.status}` }
      : {}),
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

/** Text the database takes: no NUL, no lone surrogates (requests can carry both). */
function clean(v: string): string {
  return v.replaceAll("\u0000", "\uFFFD").toWellFormed();
}

function cleanRecord(e: AuditRecord): AuditRecord {
  const out = { ...e, agent: { ...e.agent } } as AuditRecord;
  for (
    const k of [
      "subtype",
      "address",
      "entity",
      "query",
      "patient",
      "requestId",
      "description",
    ] as const
  ) {
    if (typeof out[k] === "string") (out as unknown as Record<string, string>)[k] = clean(out[k]!);
  }
  out.agent.id = clean(out.agent.id);
  if (out.agent.name) out.agent.name = clean(out.agent.name);
  return out;
}
