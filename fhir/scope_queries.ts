/**
 * @module SMART v2 fine-grained scopes (`user/Observation.rs?category=laboratory`): a caller whose
 * only grant for an interaction carries a query reaches the resources that query matches. Searches
 * get the queries as one more filter (any one of them); a read, a write's result, a delete's
 * target and an included resource are checked by running the same search for their id, so the
 * rules are exactly the search's (every parameter, modifier and chain works in a scope's query).
 */
import type { Resource } from "@medplum/fhirtypes";
import { accessOf, forbidden } from "../auth/access.ts";
import type { Interaction } from "../auth/scopes.ts";
import type { Sql } from "../db/db.ts";
import type { FhirContext } from "./context.ts";
import { compartmentFilter } from "./compartment.ts";
import { executeSearch } from "./search/execute.ts";
import type { Filter, SearchRequest } from "./search/model.ts";
import { parseSearch } from "./search/parse.ts";

/**
 * The fine-grained queries that limit `interaction` on `type` for this request's caller, or
 * undefined when none does (no caller, or a scope without query allows it). Throws a 403 when
 * nothing allows it.
 */
export function scopeQueries(
  ctx: FhirContext,
  type: string,
  interaction: Interaction,
): string[] | undefined {
  return ctx.caller ? accessOf(ctx.caller, type, interaction).queries : undefined;
}

/**
 * The queries a search made on the caller's behalf (conditional criteria, a transaction's
 * conditional references) is limited to; never throws (where nothing allows the interaction, the
 * interaction itself is refused elsewhere).
 */
export function conditionQueries(
  ctx: FhirContext,
  type: string,
  interaction: Interaction,
): string[] | undefined {
  try {
    return scopeQueries(ctx, type, interaction);
  } catch {
    return undefined;
  }
}

/**
 * The filter "matches one of `queries`". A query this server cannot read (an unknown parameter)
 * grants nothing: it is left out, never widened into "everything".
 */
export function scopeFilter(ctx: FhirContext, type: string, queries: string[]): Filter {
  const groups: Filter[][] = [];
  for (const query of queries) {
    try {
      groups.push(
        parseSearch(type, [...new URLSearchParams(query)], {
          lenient: false,
          defaultCount: 1,
          maxCount: 1,
          baseUrl: ctx.baseUrl,
        }).filters,
      );
    } catch {
      // Not a query of this server's: that grant reaches nothing.
    }
  }
  return { kind: "anyOf", groups };
}

/** The ids among `ids` (of `type`) that one of `queries` matches (and the compartment, if any). */
export async function matchingIds(
  ctx: FhirContext,
  sql: Sql,
  type: string,
  ids: string[],
  queries: string[],
  patient?: string,
): Promise<Set<string>> {
  if (!ids.length) return new Set();
  const req: SearchRequest = {
    type,
    filters: [{ kind: "id", values: ids }, scopeFilter(ctx, type, queries)],
    sort: [],
    count: ids.length,
    total: "none",
    include: [],
    revinclude: [],
    used: [],
  };
  if (patient !== undefined) req.filters.push(compartmentFilter(type, patient));
  return new Set((await executeSearch(sql, req)).matches.map((r) => r.id as string));
}

/**
 * Throws a 403 unless `resource` (as stored, in `sql`'s view: a write checks inside its own
 * transaction, before it commits) matches the caller's fine-grained queries for `interaction`.
 */
export async function assertInScope(
  ctx: FhirContext,
  sql: Sql,
  resource: Resource,
  interaction: Interaction,
): Promise<void> {
  const type = resource.resourceType;
  const queries = scopeQueries(ctx, type, interaction);
  if (!queries) return;
  const found = await matchingIds(ctx, sql, type, [resource.id as string], queries);
  if (found.has(resource.id as string)) return;
  throw forbidden(
    `${type}/${resource.id} is outside the granted scopes (${
      queries.map((q) => `${type}?${q}`).join(" or ")
    })`,
  );
}

/** Included resources the caller's fine-grained read scopes do not reach, left out. */
export async function filterIncluded(
  ctx: FhirContext,
  sql: Sql,
  resources: Resource[],
): Promise<Set<Resource>> {
  const hidden = new Set<Resource>();
  if (!ctx.caller) return hidden;
  const byType = new Map<string, Resource[]>();
  for (const r of resources) byType.set(r.resourceType, [...(byType.get(r.resourceType) ?? []), r]);
  for (const [type, list] of byType) {
    let queries: string[] | undefined;
    let patient: string | undefined;
    try {
      ({ queries, patient } = accessOf(ctx.caller, type, "read"));
    } catch {
      continue; // not readable at all: the compartment check leaves these out already
    }
    if (!queries) continue;
    const ok = await matchingIds(ctx, sql, type, list.map((r) => r.id as string), queries, patient);
    for (const r of list) if (!ok.has(r.id as string)) hidden.add(r);
  }
  return hidden;
}
