/**
 * @module What FHIR interactions need from their caller: the database, the server's settings and
 * who is calling (`FhirContext`); the shape of an operation's handler and of `interact` itself.
 */
import type { Resource } from "@medplum/fhirtypes";
import type { Db, Sql } from "../db/db.ts";
import type { EndpointPattern } from "../platform/endpoint_patterns.ts";
import type { Caller } from "../auth/access.ts";
import type { Interaction } from "../auth/scopes.ts";
import type { FhirRequest, FhirResult } from "./request.ts";

/** Where an operation is invoked: `[base]/$op`, `[base]/Type/$op` or `[base]/Type/id/$op`. */
export type OperationLevel = "system" | "type" | "instance";

/** What an operation's handler is given. */
export interface OperationRequest {
  level: OperationLevel;
  /** The type of a type- or instance-level invocation. */
  type?: string;
  /** The id of an instance-level invocation. */
  id?: string;
  method: string;
  body: unknown;
  query: [string, string][];
  /** `Prefer: handling=lenient`. */
  lenient?: boolean;
}

/**
 * A `$operation`, registered in `operations` under `$name` (system level), `Type/$name` or
 * `Resource/$name` (every type) for the type and instance levels.
 */
export type OperationHandler =
  & ((ctx: FhirContext, req: OperationRequest) => Promise<FhirResult>)
  & {
    /** Where it may be invoked (default: the instance level only). */
    levels?: OperationLevel[];
    /**
     * What a caller must be allowed to do for the operation (checked before it runs); a function
     * of the invoked type for operations of every type. Default: update of the type.
     */
    access?:
      | [type: string, interaction: Interaction][]
      | ((type: string | undefined) => [type: string, interaction: Interaction][]);
    /** Operations that only read may be run by a GET (FHIR operations: `affectsState` false). */
    idempotent?: boolean;
    /** The canonical URL of its OperationDefinition, for the CapabilityStatement. */
    definition?: string;
  };

/** An operation served outside the FHIR dispatch (Bulk Data `$export`), for the CapabilityStatement. */
export interface DeclaredOperation {
  name: string;
  definition: string;
  /** The types it is invoked on; absent: the system level. */
  types?: string[];
}

/**
 * The operation `op` at `level` (on `type`), or undefined. An instance-level registration under
 * `Type/$name` keeps the key it has always had; `Resource/$name` answers for every type.
 */
export function operationFor(
  ctx: FhirContext,
  level: OperationLevel,
  type: string | undefined,
  op: string,
): OperationHandler | undefined {
  const candidates = level === "system" ? [op] : [`${type}/${op}`, `Resource/${op}`];
  for (const key of candidates) {
    const handler = ctx.operations?.get(key);
    if (handler && (handler.levels ?? ["instance"]).includes(level)) return handler;
  }
  return undefined;
}

/** The interactions an operation's caller needs (`access`, or update of the type). */
export function operationAccess(
  handler: OperationHandler | undefined,
  type: string | undefined,
): [string, Interaction][] {
  const access = handler?.access;
  if (typeof access === "function") return access(type);
  return access ?? [[type ?? "*", "update"]];
}

export interface FhirContext {
  db: Db;
  /**
   * A read replica (DATABASE_READ_URL): type-level searches run here. Reads by id, histories,
   * conditional criteria and everything in a transaction stay on `db` (no replication lag there).
   */
  readDb?: Db;
  /** The FHIR base URL as clients see it, e.g. https://imaging.example.org/fhir */
  baseUrl: string;
  defaultCount: number;
  maxCount: number;
  /** Operations by `$name`, `Type/$name` or `Resource/$name` (see `operationFor`). */
  operations?: Map<string, OperationHandler>;
  /** Operations other routes serve, declared in the CapabilityStatement with those above. */
  declaredOperations?: DeclaredOperation[];
  /** Canonical URLs of the implementation guides' CapabilityStatements this server instantiates. */
  instantiates?: string[];
  /**
   * Checks by type, run in the deletion's transaction before a resource of that type is deleted
   * (on its own, conditionally or in a Bundle); one refuses by throwing a FhirError. The DICOM
   * layer refuses an ImagingStudy whose study's images it stores (`dicom/delete.ts`).
   */
  deleteChecks?: Map<string, (sql: Sql, resource: Resource) => Promise<void>>;
  /**
   * SUBSCRIPTION_ENDPOINTS: where Subscriptions may notify (empty or absent: any http(s) URL).
   * Read on every write and delivery, so a change at run time applies at once (tests tighten it).
   */
  subscriptionEndpoints?: EndpointPattern[];
  /**
   * OUTBOUND_PRIVATE_ADDRESSES: `allow` lets Subscriptions notify loopback, private, link-local and
   * metadata addresses; absent or `refuse`: only SUBSCRIPTION_ENDPOINTS may name one.
   */
  outboundPrivateAddresses?: "refuse" | "allow";
  /** How the sender resolves an endpoint's host before it sends (default: hosts file, then DNS). */
  resolveHost?: (host: string) => Promise<string[]>;
  /**
   * Who is calling, for this request (and the entries of its Bundle): every interaction checks
   * the caller's scopes. Absent: the service itself (internal calls), allowed everything.
   */
  caller?: Caller;
  /** AuditEvents are the audit trail's (read-only, from audit/); absent: stored like others. */
  audit?: boolean;
  /** OAuth endpoints for the CapabilityStatement's `rest.security` (absent: AUTH=off). */
  security?: { token: string; revoke: string; authorize?: string; introspect?: string };
}

/** `W/"3"` or `"3"` or `3` → `3`; undefined when absent. */
export function parseETag(value: string | null | undefined): string | undefined {
  if (!value) return undefined;
  const m = /^(?:W\/)?"?([^"]*)"?$/.exec(value.trim());
  return m ? m[1] : value;
}

/** Runs one interaction (`interaction.ts`'s `interact`), on `tx` when given; Bundles take it. */
export type Interact = (ctx: FhirContext, req: FhirRequest, tx?: Sql) => Promise<FhirResult>;
