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

/** An instance-level `$operation` (`POST [base]/Type/{id}/$name`), registered in `operations`. */
export type OperationHandler =
  & ((
    ctx: FhirContext,
    req: { type: string; id: string; method: string; body: unknown; query: [string, string][] },
  ) => Promise<FhirResult>)
  & {
    /** What a caller must be allowed to do for the operation (checked before it runs). */
    access?: [type: string, interaction: Interaction][];
  };

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
  /** Operations by `Type/$name` (e.g. `ImagingStudy/$analyze`). */
  operations?: Map<string, OperationHandler>;
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
  security?: { token: string; revoke: string };
}

/** `W/"3"` or `"3"` or `3` → `3`; undefined when absent. */
export function parseETag(value: string | null | undefined): string | undefined {
  if (!value) return undefined;
  const m = /^(?:W\/)?"?([^"]*)"?$/.exec(value.trim());
  return m ? m[1] : value;
}

/** Runs one interaction (`interaction.ts`'s `interact`), on `tx` when given; Bundles take it. */
export type Interact = (ctx: FhirContext, req: FhirRequest, tx?: Sql) => Promise<FhirResult>;
