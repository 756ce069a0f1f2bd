/**
 * @module Who is calling and what they may do: the `Caller` every request carries once
 * authenticated, the scopes a role grants, and the checks that turn a missing token into a 401 and
 * a missing scope into a 403, each an OperationOutcome with `WWW-Authenticate` (RFC 6750).
 */
import { FhirError, outcome } from "../platform/outcome.ts";
import type { Role } from "./repo.ts";
import {
  filteredGrants,
  type Interaction,
  type ParsedScopes,
  parseScopes,
  permits,
  type ScopeContext,
} from "./scopes.ts";

export interface Caller {
  /** A person (password login), a registered system (Backend Services), or the service itself. */
  kind: "user" | "client" | "internal";
  /** The user id, the client id, or `internal`. */
  sub: string;
  name?: string;
  role?: Role;
  clientId?: string;
  /** The patient a token is bound to (SMART `patient` launch context). */
  patient?: string;
  scope: string;
  scopes: ParsedScopes;
}

/** The scopes each role's accounts may be granted (a login asks for these or fewer). */
export const ROLE_SCOPES: Record<Role, string> = {
  admin: "user/*.cruds openid fhirUser offline_access",
  clinician: "user/*.crus openid fhirUser offline_access",
  viewer: "user/*.rs openid fhirUser offline_access",
};

/**
 * The scopes an account may be granted: its role's, or for an account bound to a patient the
 * same permissions as `patient/` scopes (reaching that compartment only) with `launch/patient`.
 */
export function accountScopes(role: Role, patient: string | null | undefined): string {
  if (!patient) return ROLE_SCOPES[role];
  return `${ROLE_SCOPES[role].replace(/\buser\//g, "patient/")} launch/patient`;
}

/** The service acting for itself (its in-process work) and every caller when AUTH=off. */
export function internalCaller(scope = "system/*.cruds"): Caller {
  return { kind: "internal", sub: "internal", scope, scopes: parseScopes(scope) };
}

/** An error answered as an OperationOutcome, with extra headers (WWW-Authenticate). */
export class AuthError extends FhirError {
  constructor(
    status: 401 | 403,
    readonly headers: Record<string, string>,
    diagnostics: string,
  ) {
    super(status, outcome("error", status === 401 ? "login" : "forbidden", diagnostics));
  }
}

const realm = 'Bearer realm="imaging-ai"';

/** 401: no token, or one that failed verification (`reason` says why). */
export function unauthorized(reason: string, error?: "invalid_token"): AuthError {
  const challenge = error
    ? `${realm}, error="${error}", error_description="${reason.replace(/["\\]/g, "'")}"`
    : realm;
  return new AuthError(401, { "WWW-Authenticate": challenge }, reason);
}

/** 403: authenticated, but the token's scopes do not allow this. */
export function forbidden(what: string, needed?: string): AuthError {
  const challenge = `${realm}, error="insufficient_scope"${needed ? `, scope="${needed}"` : ""}`;
  return new AuthError(403, { "WWW-Authenticate": challenge }, what);
}

const LETTER: Record<Interaction, string> = {
  create: "c",
  read: "r",
  update: "u",
  delete: "d",
  search: "s",
};

/**
 * The contexts in which `caller` may do `interaction` on `type`: `user` and `system` from their
 * scopes, and `patient` only for a token bound to a patient (its `patient` claim), where it reaches
 * that patient's compartment alone. A `patient/…` scope without a bound patient grants nothing.
 */
export function contextsFor(
  caller: Caller,
  type: string,
  interaction: Interaction,
): ScopeContext[] {
  return permits(caller.scopes, type, interaction).filter((c) =>
    c !== "patient" || caller.patient !== undefined
  );
}

/**
 * Throws a 403 unless `caller` may do `interaction` on every resource of `type` (a `user/` or
 * `system/` scope). The routes that do not limit themselves to one patient's compartment (uploads,
 * exports, the event stream, DICOMweb writes) use this; a patient-bound token is refused there.
 */
export function requireAccess(caller: Caller, type: string, interaction: Interaction): void {
  const contexts = contextsFor(caller, type, interaction);
  if (contexts.some((c) => c !== "patient")) return;
  if (contexts.length) {
    throw forbidden(
      `${describe(caller)} is bound to Patient/${caller.patient}: this endpoint is not limited ` +
        `to one patient's compartment, so patient/ scopes do not reach it`,
    );
  }
  throw missingScope(caller, type, interaction);
}

/** How far a caller reaches a type for one interaction (see {@link accessOf}). */
export interface Reach {
  /** Only this patient's compartment (a token bound to a patient with `patient/` scopes). */
  patient?: string;
  /** Only resources matching one of these search queries (SMART v2 fine-grained scopes). */
  queries?: string[];
}

/**
 * Whether `caller` may do `interaction` on `type`, and how far: every resource (a `user/` or
 * `system/` scope without a query), the bound patient's compartment (a `patient/` scope), and/or
 * only what fine-grained scopes' queries match (`user/Observation.rs?category=laboratory`). A mix
 * of both kinds is read as the narrower one (never wider than granted). Throws a 403 when nothing
 * allows it.
 */
export function accessOf(caller: Caller, type: string, interaction: Interaction): Reach {
  const contexts = contextsFor(caller, type, interaction);
  if (contexts.some((c) => c !== "patient")) return {};
  if (contexts.length) return { patient: caller.patient };
  const filtered = filteredGrants(caller.scopes, type, interaction);
  const wide = filtered.filter((g) => g.context !== "patient");
  if (wide.length) return { queries: wide.map((g) => g.query!) };
  const bound = caller.patient === undefined ? [] : filtered;
  if (bound.length) return { patient: caller.patient, queries: bound.map((g) => g.query!) };
  throw missingScope(caller, type, interaction);
}

/**
 * The patient whose compartment limits `interaction` on `type` for `caller`, or undefined when
 * none does; a 403 when nothing allows it, or when only fine-grained scopes do: the routes that
 * ask this (DICOMweb reads, exports) cannot apply a search query, only the FHIR API can.
 */
export function compartmentFor(
  caller: Caller,
  type: string,
  interaction: Interaction,
): string | undefined {
  const reach = accessOf(caller, type, interaction);
  if (reach.queries) {
    throw forbidden(
      `${describe(caller)} holds only fine-grained scopes for ${type} ` +
        `(${reach.queries.join(", ")}): they reach the FHIR API, not this endpoint`,
    );
  }
  return reach.patient;
}

function missingScope(caller: Caller, type: string, interaction: Interaction): AuthError {
  const prefix = caller.kind === "client" || caller.kind === "internal"
    ? "system"
    : caller.patient !== undefined
    ? "patient"
    : "user";
  return forbidden(
    `${describe(caller)} may not ${interaction} ${type === "*" ? "all resource types" : type}: ` +
      `no granted scope allows it (granted: ${caller.scope || "none"})`,
    `${prefix}/${type}.${LETTER[interaction]}`,
  );
}

/**
 * The audit trail: admins (and clients granted AuditEvent by name, never through `*`) may read
 * and search it; nobody writes it through the API.
 */
export function requireAuditAccess(caller: Caller): void {
  if (caller.kind === "internal" || (caller.kind === "user" && caller.role === "admin")) return;
  const named = caller.kind === "client" &&
    caller.scopes.grants.some((g) =>
      g.context === "system" && g.resourceType === "AuditEvent" && g.interactions.has("read")
    );
  if (named) return;
  throw forbidden(
    `${describe(caller)} may not read the audit trail (admins, or clients granted AuditEvent)`,
    "system/AuditEvent.rs",
  );
}

/** Throws a 403 unless `caller` is an administrator (an admin account, or the service). */
export function requireAdmin(caller: Caller): void {
  if (caller.kind === "internal" || (caller.kind === "user" && caller.role === "admin")) return;
  throw forbidden(`${describe(caller)} is not an administrator`);
}

function describe(caller: Caller): string {
  if (caller.kind === "user") return `User ${caller.name ?? caller.sub} (${caller.role})`;
  if (caller.kind === "client") return `Client ${caller.clientId ?? caller.sub}`;
  return "The service";
}
