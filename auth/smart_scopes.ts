/**
 * @module Scopes in the authorization-code flow: what a person may grant an app (their role's
 * permissions as `user/` scopes, the same as `patient/` scopes for a chosen patient, and the
 * launch and identity scopes), the intersection of what an app asks with what is allowed (a scope
 * partly covered is narrowed to the covered permissions, not refused), and each scope in plain
 * words for the consent page.
 */
import { accountScopes, ROLE_SCOPES } from "./access.ts";
import type { Role } from "./repo.ts";
import { INTERACTIONS, parseScopes, scopeCovers, type ScopeGrant } from "./scopes.ts";

/** The scopes of SMART App Launch that are not resource scopes, all supported here. */
export const LAUNCH_SCOPES = [
  "openid",
  "fhirUser",
  "profile",
  "launch",
  "launch/patient",
  "launch/encounter",
  "offline_access",
  "online_access",
] as const;

/** What an account may grant an app. */
export function grantableScopes(role: Role, patient: string | null | undefined): string {
  const own = accountScopes(role, patient).split(" ").filter((s) => s.includes("/"));
  // A person with user/ access may open one patient's record in an app (patient/ scopes).
  const asPatient = patient ? [] : ROLE_SCOPES[role].split(" ").filter((s) => s.startsWith("user/"))
    .map((s) => s.replace(/^user\//, "patient/"));
  return [...own, ...asPatient, ...LAUNCH_SCOPES].join(" ");
}

const LETTERS = "cruds";

function letters(g: ScopeGrant): string {
  return INTERACTIONS.map((i, n) => (g.interactions.has(i) ? LETTERS[n] : "")).join("");
}

/**
 * The part of `requested` that `allowed` covers: a resource scope covered whole is kept as
 * written; one covered in part becomes the covered permissions (`user/*.cruds` against
 * `user/*.rs` is `user/*.rs`; `patient/*.rs` against `patient/Observation.rs` is
 * `patient/Observation.rs`); other scopes are kept when allowed. Order kept, no duplicates.
 */
export function intersectScopes(requested: string, allowed: string): string {
  const want = parseScopes(requested);
  const have = parseScopes(allowed);
  const out: string[] = [];
  const add = (s: string) => {
    if (!out.includes(s)) out.push(s);
  };
  for (const token of requested.split(/\s+/).filter(Boolean)) {
    const grant = want.grants.find((g) => g.raw === token);
    if (!grant) {
      if (want.other.includes(token) && have.other.includes(token)) add(token);
      continue;
    }
    if (have.grants.some((outer) => scopeCovers(outer, grant))) {
      add(token);
      continue;
    }
    for (const outer of have.grants) {
      if (outer.context !== grant.context) continue;
      if (outer.query !== undefined && outer.query !== grant.query) continue;
      const type = grant.resourceType === "*"
        ? outer.resourceType
        : outer.resourceType === "*" || outer.resourceType === grant.resourceType
        ? grant.resourceType
        : undefined;
      if (!type) continue;
      const both = INTERACTIONS.filter((i) =>
        grant.interactions.has(i) && outer.interactions.has(i)
      );
      if (!both.length) continue;
      const l = letters({ ...grant, interactions: new Set(both) });
      add(`${grant.context}/${type}.${l}${grant.query !== undefined ? `?${grant.query}` : ""}`);
    }
  }
  return out.join(" ");
}

/** Whether `scope` holds the token (a non-resource scope). */
export function hasScope(scope: string, token: string): boolean {
  return scope.split(/\s+/).includes(token);
}

const VERB: Record<string, string> = {
  c: "create",
  r: "read",
  u: "update",
  d: "delete",
  s: "search",
};

/** One scope in plain words, for the consent page. */
export function describeScope(token: string): string {
  switch (token) {
    case "openid":
      return "Know who you are (sign you in to the app)";
    case "fhirUser":
      return "Know your user record (Practitioner or Patient)";
    case "profile":
      return "See your name and username";
    case "launch":
      return "Open with the context the EHR launched it in (patient, encounter, study)";
    case "launch/patient":
      return "Work on one patient's record, chosen when it opens";
    case "launch/encounter":
      return "Work on one encounter, chosen when it opens";
    case "offline_access":
      return "Stay connected after you sign out (a long-lived refresh token)";
    case "online_access":
      return "Stay connected while you are signed in here";
  }
  const [g] = parseScopes(token).grants;
  if (!g) return token;
  const perms = g.raw.split(".").pop()!.split("?")[0];
  const verbs = perms === "read"
    ? ["read", "search"]
    : perms === "write"
    ? ["create", "update", "delete"]
    : perms === "*"
    ? Object.values(VERB)
    : [...perms].map((l) => VERB[l]);
  const what = g.resourceType === "*" ? "all kinds of records" : `${g.resourceType} records`;
  const whose = g.context === "patient"
    ? "of the selected patient"
    : g.context === "user"
    ? "that you can access"
    : "of every patient (system)";
  const filter = g.query ? ` matching ${g.query}` : "";
  const list = verbs.length > 1 ? `${verbs.slice(0, -1).join(", ")} and ${verbs.at(-1)}` : verbs[0];
  return `${list[0].toUpperCase()}${list.slice(1)} ${what}${filter} ${whose}`;
}
