/**
 * @module SMART App Launch scopes, v1 and v2. A resource scope is
 * `<context>/<type>.<permissions>[?<query>]`: context `patient`, `user` or `system`; type a FHIR
 * resource type or `*`; permissions in v1 `read` (read and search), `write` (create, update and
 * delete) or `*` (all five), in v2 a subset of `cruds` written in that order (`rs`, `cu`, `cruds`).
 * Any other well-formed scope token (`openid`, `fhirUser`, `profile`, `launch`, `launch/patient`,
 * `offline_access`, `online_access`, …) is kept in `other`; malformed tokens go to `invalid`. The
 * resource type is only checked for shape (`*`, or an uppercase letter then letters and digits);
 * checking it against the FHIR type list is the caller's job.
 *
 * Fine-grained v2 scopes (`patient/Observation.rs?category=laboratory`) keep their query:
 * {@link permits} ignores them (they never grant the whole type); {@link filteredGrants} lists them
 * for the FHIR API, which keeps such a caller to the resources the query matches.
 */

/** A FHIR REST interaction a scope can allow. */
export type Interaction = "create" | "read" | "update" | "delete" | "search";

/** The launch context of a resource scope. */
export type ScopeContext = "patient" | "user" | "system";

/** One resource scope. */
export interface ScopeGrant {
  /** The scope token as written. */
  raw: string;
  context: ScopeContext;
  /** A resource type, or `*` for all. */
  resourceType: string;
  interactions: ReadonlySet<Interaction>;
  /** A v2 fine-grained filter without its `?` (`category=laboratory`): see fhir/scope_queries.ts. */
  query?: string;
}

/** A scope string split into resource scopes, other scopes and malformed tokens. */
export interface ParsedScopes {
  grants: ScopeGrant[];
  /** Well-formed tokens that are not resource scopes (openid, fhirUser, launch/patient, …). */
  other: string[];
  invalid: string[];
}

/** The five interactions in `cruds` order. */
export const INTERACTIONS: readonly Interaction[] = [
  "create",
  "read",
  "update",
  "delete",
  "search",
];

const CONTEXTS: readonly ScopeContext[] = ["patient", "user", "system"];

const V1: Record<string, readonly Interaction[]> = {
  read: ["read", "search"],
  write: ["create", "update", "delete"],
  "*": INTERACTIONS,
};

const V2_LETTER: Record<string, Interaction> = {
  c: "create",
  r: "read",
  u: "update",
  d: "delete",
  s: "search",
};

/** RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ). */
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;
const RESOURCE_PREFIX = /^(patient|user|system)\//;
const RESOURCE_SCOPE = /^(patient|user|system)\/([^.?]*)\.([^?]*)(?:\?(.*))?$/;
const RESOURCE_TYPE = /^(\*|[A-Z][A-Za-z0-9]*)$/;
/** A v2 permission string: the letters of `cruds`, each at most once, in that order. */
const V2_PERMISSIONS = /^(?=.)c?r?u?d?s?$/;

type Classified =
  | { kind: "grant"; grant: ScopeGrant }
  | { kind: "other"; token: string }
  | { kind: "invalid"; token: string };

function classify(token: string): Classified {
  if (!SCOPE_TOKEN.test(token)) return { kind: "invalid", token };
  if (!RESOURCE_PREFIX.test(token)) return { kind: "other", token };
  const m = RESOURCE_SCOPE.exec(token);
  if (!m) return { kind: "invalid", token };
  const [, context, resourceType, permissions, query] = m;
  if (!RESOURCE_TYPE.test(resourceType)) return { kind: "invalid", token };
  let interactions: readonly Interaction[];
  if (Object.hasOwn(V1, permissions)) {
    // v1 has no fine-grained filters.
    if (query !== undefined) return { kind: "invalid", token };
    interactions = V1[permissions];
  } else if (V2_PERMISSIONS.test(permissions)) {
    if (query === "") return { kind: "invalid", token };
    interactions = [...permissions].map((letter) => V2_LETTER[letter]);
  } else {
    return { kind: "invalid", token };
  }
  const grant: ScopeGrant = {
    raw: token,
    context: context as ScopeContext,
    resourceType,
    interactions: new Set(interactions),
  };
  if (query !== undefined) grant.query = query;
  return { kind: "grant", grant };
}

/** The distinct tokens of a space-separated scope string (any run of whitespace separates). */
function tokens(scope: string): string[] {
  return [...new Set(scope.split(/\s+/).filter(Boolean))];
}

/** Parses a scope string; a token written twice counts once. */
export function parseScopes(scope: string): ParsedScopes {
  const parsed: ParsedScopes = { grants: [], other: [], invalid: [] };
  for (const token of tokens(scope)) {
    const c = classify(token);
    if (c.kind === "grant") parsed.grants.push(c.grant);
    else if (c.kind === "other") parsed.other.push(c.token);
    else parsed.invalid.push(c.token);
  }
  return parsed;
}

/**
 * The contexts (`patient`, `user`, `system`, in that order, each once) of the grants that allow
 * `interaction` on `resourceType` as a whole; empty when none does. Grants with a fine-grained
 * query never allow a whole type: they are listed by {@link filteredGrants}.
 */
export function permits(
  scopes: ParsedScopes,
  resourceType: string,
  interaction: Interaction,
): ScopeContext[] {
  const allowed = new Set<ScopeContext>();
  for (const g of scopes.grants) {
    if (g.query !== undefined) continue;
    if (g.resourceType !== "*" && g.resourceType !== resourceType) continue;
    if (g.interactions.has(interaction)) allowed.add(g.context);
  }
  return CONTEXTS.filter((c) => allowed.has(c));
}

/**
 * The fine-grained grants (with a `?query`) that allow `interaction` on `resourceType`, in the
 * order written.
 */
export function filteredGrants(
  scopes: ParsedScopes,
  resourceType: string,
  interaction: Interaction,
): ScopeGrant[] {
  return scopes.grants.filter((g) =>
    g.query !== undefined && (g.resourceType === "*" || g.resourceType === resourceType) &&
    g.interactions.has(interaction)
  );
}

/**
 * Whether `outer` allows everything `inner` does: the same context (patient, user and system never
 * cover one another), the same type or `*`, a superset of the interactions, and no query or the
 * same query (an unfiltered scope covers a filtered one, not the reverse).
 */
export function scopeCovers(outer: ScopeGrant, inner: ScopeGrant): boolean {
  if (outer.context !== inner.context) return false;
  if (outer.resourceType !== "*" && outer.resourceType !== inner.resourceType) return false;
  for (const i of inner.interactions) if (!outer.interactions.has(i)) return false;
  return outer.query === undefined || outer.query === inner.query;
}

/**
 * What a client may be granted of what it asked for: each requested resource scope is kept (as
 * written) when some registered scope covers it, each other scope only when it is registered too;
 * the rest (malformed tokens included) is refused. A scope that is only partly covered is refused
 * whole, never rewritten (`patient/*.rs` against `patient/Observation.rs` is refused). `granted`
 * keeps the request's order, without duplicates.
 */
export function narrowScopes(
  requested: string,
  registered: string,
): { granted: string; refused: string[] } {
  const allowed = parseScopes(registered);
  const otherAllowed = new Set(allowed.other);
  const granted: string[] = [];
  const refused: string[] = [];
  for (const token of tokens(requested)) {
    const c = classify(token);
    const ok = c.kind === "grant"
      ? allowed.grants.some((outer) => scopeCovers(outer, c.grant))
      : c.kind === "other" && otherAllowed.has(token);
    (ok ? granted : refused).push(token);
  }
  return { granted: granted.join(" "), refused };
}
