/**
 * @module The FHIR core's access layer. Before an interaction runs, `authorize` checks the
 * caller's scopes for its route and method; while it runs, `narrowSearch` keeps a search to the
 * caller's patient compartment and fine-grained queries; on what it returns, `visible` and
 * `hideIncluded` leave out what the caller may not read. The dispatch (`interaction.ts`) calls
 * these and holds no access rule of its own.
 */
import type { Bundle, Resource } from "@medplum/fhirtypes";
import { type Caller, requireAccess, requireAuditAccess } from "../auth/access.ts";
import type { Interaction } from "../auth/scopes.ts";
import type { Sql } from "../db/db.ts";
import {
  assertVisible,
  compartmentFilter,
  mayInclude,
  reachOf,
  restriction,
} from "./compartment.ts";
import { assertInScope, filterIncluded, scopeFilter } from "./scope_queries.ts";
import type { Route } from "./paths.ts";
import { isSupportedType } from "./resource_types.ts";
import type { SearchRequest } from "./search/model.ts";
import { type FhirContext, operationAccess, operationFor } from "./context.ts";

/** The interaction a method is on a type (`Type`): what its scopes must allow. */
function typeInteraction(method: string): Interaction {
  if (method === "GET" || method === "HEAD") return "search";
  if (method === "POST") return "create";
  return method === "PUT" ? "update" : "delete";
}

/**
 * Throws a 403 unless the caller's scopes allow this interaction: search (type-level GET and
 * `_search`), read (instance GET, vread, instance `_history`), create, update (PUT, PATCH,
 * conditional update), delete, what an operation declares. History across a type or the whole
 * server needs a `user/` or `system/` scope (on every type for the server's). A token bound to a
 * patient passes here with `patient/` scopes on the types of the Patient compartment; what it
 * reaches is then kept to that compartment where the interaction runs. A Bundle's entries are
 * checked one by one as they run; included resources the caller may not read are left out.
 */
export function authorize(ctx: FhirContext, caller: Caller, route: Route, method: string): void {
  const allow = (t: string, i: Interaction) => void restriction(ctx, t, i);
  switch (route.kind) {
    case "system":
    case "metadata":
      return;
    case "audit":
      return requireAuditAccess(caller);
    case "system-history":
      return requireAccess(caller, "*", "search");
    case "system-operation": {
      // What the operation declares, checked as `requireAccess` does (no type to narrow yet).
      const handler = operationFor(ctx, "system", undefined, route.op);
      for (const [t, i] of operationAccess(handler, undefined)) requireAccess(caller, t, i);
      return;
    }
  }
  // An unknown type is answered 404 by the dispatch.
  if (!isSupportedType(route.type)) return;
  switch (route.kind) {
    case "type":
      return allow(route.type, typeInteraction(method));
    case "type-search":
      return allow(route.type, "search");
    case "type-history":
      return requireAccess(caller, route.type, "search");
    case "type-operation":
    case "operation": {
      const level = route.kind === "operation" ? "instance" : "type";
      const handler = operationFor(ctx, level, route.type, route.op);
      for (const [t, i] of operationAccess(handler, route.type)) allow(t, i);
      return;
    }
    case "instance-history":
    case "version":
      return allow(route.type, "read");
    case "compartment":
      allow(route.type, "read");
      return allow(route.target, "search");
    case "instance":
    case "unknown":
      if (method === "GET" || method === "HEAD") return allow(route.type, "read");
      return allow(route.type, method === "DELETE" ? "delete" : "update");
  }
}

/** Whether the caller's reach may be narrower than whole types (a patient, scope queries). */
export function limited(caller: Caller): boolean {
  return caller.patient !== undefined || caller.scopes.grants.some((g) => g.query !== undefined);
}

/**
 * `resource`, unless it lies outside the caller's patient compartment (then a 404) or its
 * fine-grained read scopes (a 403).
 */
export async function visible(ctx: FhirContext, sql: Sql, resource: Resource): Promise<Resource> {
  assertVisible(ctx, resource, "read");
  if (ctx.caller && limited(ctx.caller)) await assertInScope(ctx, sql, resource, "read");
  return resource;
}

/**
 * Keeps a search of `type` to the caller's reach: its patient's compartment and its fine-grained
 * queries, as filters. They are not in the self link: they are the token's, not the client's
 * criteria.
 */
export function narrowSearch(ctx: FhirContext, type: string, req: SearchRequest): void {
  const { patient, queries } = reachOf(ctx, type, "search");
  if (patient !== undefined) req.filters.push(compartmentFilter(type, patient));
  if (queries) req.filters.push(scopeFilter(ctx, type, queries));
}

/**
 * Leaves out of a searchset the included resources the caller may not read (another type, outside
 * its patient's compartment or its fine-grained scopes): SMART says never shown, not an error.
 */
export async function hideIncluded(ctx: FhirContext, sql: Sql, bundle: Bundle): Promise<void> {
  const caller = ctx.caller;
  if (!caller || !bundle.entry) return;
  const included = bundle.entry.filter((e) => e.search?.mode === "include" && e.resource);
  const hidden = limited(caller)
    ? await filterIncluded(ctx, sql, included.map((e) => e.resource!))
    : new Set<Resource>();
  bundle.entry = bundle.entry.filter((e) =>
    e.search?.mode !== "include" || !e.resource ||
    (mayInclude(caller, e.resource, ctx.baseUrl) && !hidden.has(e.resource))
  );
}
