/**
 * @module Conditional interactions' criteria (`If-None-Exist`, conditional update and delete, a
 * transaction's conditional references): parsed as a search for up to two matches and kept to the
 * caller's reach (its patient's compartment, its fine-grained queries), then run.
 */
import type { Resource } from "@medplum/fhirtypes";
import type { Interaction } from "../auth/scopes.ts";
import type { Sql } from "../db/db.ts";
import { badRequest } from "../platform/outcome.ts";
import { boundPatient, compartmentFilter } from "./compartment.ts";
import type { FhirContext } from "./context.ts";
import { conditionQueries, scopeFilter } from "./scope_queries.ts";
import { executeSearch } from "./search/execute.ts";
import type { SearchRequest } from "./search/model.ts";
import { parseSearch } from "./search/parse.ts";

/**
 * The criteria of a conditional interaction as a search for up to two matches (400 if malformed),
 * kept inside the caller's patient compartment when the caller is bound to one for `interaction`.
 */
export function parseCondition(
  ctx: FhirContext,
  type: string,
  query: string,
  interaction: Interaction = "search",
): SearchRequest {
  const params = [...new URLSearchParams(query.replace(/^\?/, ""))];
  if (params.length === 0) throw badRequest("A conditional interaction needs search criteria");
  const req = parseSearch(type, params, {
    lenient: false,
    defaultCount: 2,
    maxCount: 2,
    baseUrl: ctx.baseUrl,
  });
  req.count = 2;
  req.total = "none";
  req.sort = [];
  req.include = [];
  req.revinclude = [];
  const patient = boundPatient(ctx, type, interaction);
  if (patient !== undefined) req.filters.push(compartmentFilter(type, patient));
  const queries = conditionQueries(ctx, type, interaction);
  if (queries) req.filters.push(scopeFilter(ctx, type, queries));
  return req;
}

/** The resources a conditional interaction's query matches (at most two: enough to tell 0, 1, many). */
export async function findMatches(
  ctx: FhirContext,
  sql: Sql,
  type: string,
  query: string | SearchRequest,
): Promise<Resource[]> {
  const req = typeof query === "string" ? parseCondition(ctx, type, query) : query;
  return (await executeSearch(sql, req)).matches;
}
