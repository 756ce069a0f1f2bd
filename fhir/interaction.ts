/**
 * @module One FHIR interaction, independent of HTTP: the route layer and the entries of batch and
 * transaction Bundles both go through `interact()`, so a Bundle entry behaves exactly like the
 * same request sent on its own.
 */
import type { Bundle, Resource } from "@medplum/fhirtypes";
import type { Sql } from "../db/db.ts";
import { type Caller, requireAccess, requireAuditAccess } from "../auth/access.ts";
import { assertInScope, filterIncluded, scopeFilter } from "./granular.ts";
import {
  assertVisible,
  compartmentFilter,
  inCompartment,
  mayInclude,
  reachOf,
  restriction,
} from "./compartment.ts";
import { readAuditEvent, searchAuditEvents } from "../audit/search.ts";
import type { Interaction } from "../auth/scopes.ts";
import { isSupportedType } from "./resource_types.ts";
import { processBundle } from "./bundle.ts";
import { capabilityStatement } from "./capability.ts";
import type { FhirContext } from "./context.ts";
import { history } from "./history.ts";
import { badRequest, fhirError, informational, notFound } from "./outcome.ts";
import * as ops from "./resource_ops.ts";
import { executeSearch, searchBundle } from "./search/execute.ts";
import { parseSearch } from "./search/parse.ts";

export interface FhirRequest {
  method: string;
  /** Path segments after the FHIR base: `["Patient", "1", "_history", "2"]`. */
  path: string[];
  query: [string, string][];
  body?: unknown;
  ifMatch?: string;
  ifNoneExist?: string;
  /** The id a transaction gave a created resource before writing it (so references resolve). */
  assignedId?: string;
  /** `Prefer: handling=lenient`. */
  lenient?: boolean;
}

export interface FhirResult {
  status: number;
  body?: Resource;
  location?: string;
  /** Where the result of an asynchronous request can be followed (a Task). */
  contentLocation?: string;
  etag?: string;
  lastModified?: string;
}

/**
 * Runs one interaction. With `tx` it runs on that transaction (a transaction Bundle); without,
 * reads use the pool and each write gets its own transaction.
 */
export async function interact(ctx: FhirContext, req: FhirRequest, tx?: Sql): Promise<FhirResult> {
  const write = <T>(fn: (sql: Sql) => Promise<T>) => tx ? fn(tx) : ctx.db.transaction(fn);
  const readSql = tx ?? ctx.db;
  const searchSql = tx ?? ctx.readDb ?? ctx.db;
  const [type, id, op, vid, ...extra] = req.path;
  const method = req.method.toUpperCase();
  const query = req.query;
  const queryString = new URLSearchParams(query).toString();

  if (extra.length) throw notFound(`No such endpoint: /${req.path.join("/")}`);
  if (ctx.caller) authorize(ctx, ctx.caller, req);
  if (type === "AuditEvent" && ctx.audit) return await auditEvents(ctx, req, readSql, tx);
  if (type === undefined) {
    if (method === "POST") {
      if (tx) throw badRequest("A Bundle cannot be nested in a transaction entry");
      return { status: 200, body: await processBundle(ctx, req.body) };
    }
    throw methodNotAllowed(method, "the base");
  }
  if (type === "metadata") {
    if (method !== "GET" || id) throw methodNotAllowed(method, "metadata");
    return { status: 200, body: capabilityStatement(ctx) };
  }
  if (type === "_history") {
    if (method !== "GET" || id) throw methodNotAllowed(method, "_history");
    return { status: 200, body: await history(ctx, readSql, {}, new URLSearchParams(query)) };
  }
  ops.checkType(type);

  if (id === undefined) {
    switch (method) {
      case "GET":
        return { status: 200, body: await search(ctx, searchSql, type, query, req.lenient, type) };
      case "POST": {
        const resource = bodyResource(req.body, type);
        const result = await write((sql) =>
          ops.create(ctx, sql, resource, {
            // A transaction resolved If-None-Exist (under its lock) when it assigned the id.
            ifNoneExist: req.assignedId ? undefined : req.ifNoneExist,
            id: req.assignedId,
          })
        );
        return resultOf(ctx, result);
      }
      case "PUT": {
        if (!queryString) throw methodNotAllowed(method, type);
        const resource = bodyResource(req.body, type);
        return resultOf(
          ctx,
          await write((sql) => ops.conditionalUpdate(ctx, sql, type, queryString, resource)),
        );
      }
      case "DELETE": {
        if (!queryString) throw methodNotAllowed(method, type);
        const n = await write((sql) => ops.conditionalDelete(ctx, sql, type, queryString));
        return {
          status: 200,
          body: informational(n ? `Deleted 1 ${type}` : `No ${type} matched; nothing deleted`),
        };
      }
    }
    throw methodNotAllowed(method, type);
  }

  if (id === "_search" && op === undefined) {
    if (method !== "POST") throw methodNotAllowed(method, `${type}/_search`);
    return { status: 200, body: await search(ctx, searchSql, type, query, req.lenient, type) };
  }
  if (id === "_history" && op === undefined) {
    if (method !== "GET") throw methodNotAllowed(method, `${type}/_history`);
    return { status: 200, body: await history(ctx, readSql, { type }, new URLSearchParams(query)) };
  }
  if (op === "_history") {
    if (method !== "GET") throw methodNotAllowed(method, `${type}/${id}/_history`);
    if (vid === undefined) {
      return { status: 200, body: await instanceHistory(ctx, readSql, type, id, query) };
    }
    return resultOf(ctx, {
      status: 200,
      resource: await visible(ctx, readSql, await ops.vread(readSql, type, id, vid)),
    });
  }
  if (op?.startsWith("$") && vid === undefined) {
    const handler = ctx.operations?.get(`${type}/${op}`);
    if (!handler) throw notFound(`Operation ${op} is not supported on ${type}`);
    if (tx) throw badRequest(`${op} cannot be an entry of a Bundle`);
    // A limited caller (bound to a patient, or holding fine-grained scopes) runs operations only
    // on resources it may read.
    if (ctx.caller && limited(ctx.caller)) {
      await visible(ctx, readSql, await ops.read(readSql, type, id));
    }
    return await handler(ctx, { type, id, method, body: req.body, query });
  }
  if (op !== undefined) throw notFound(`No such endpoint: /${req.path.join("/")}`);

  switch (method) {
    case "GET":
    case "HEAD":
      return resultOf(ctx, {
        status: 200,
        resource: await visible(ctx, readSql, await ops.read(readSql, type, id)),
      });
    case "PUT": {
      const resource = bodyResource(req.body, type);
      return resultOf(
        ctx,
        await write((sql) => ops.update(ctx, sql, type, id, resource, { ifMatch: req.ifMatch })),
      );
    }
    case "PATCH":
      return resultOf(
        ctx,
        await write((sql) => ops.patch(ctx, sql, type, id, req.body, { ifMatch: req.ifMatch })),
      );
    case "DELETE": {
      const result = await write((sql) => ops.remove(ctx, sql, type, id, { ifMatch: req.ifMatch }));
      return {
        status: 200,
        body: informational(
          result.status === 204 ? `${type}/${id} was already deleted` : `Deleted ${type}/${id}`,
        ),
        etag: result.version ? `W/"${result.version}"` : undefined,
      };
    }
  }
  throw methodNotAllowed(method, `${type}/${id}`);
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
function authorize(ctx: FhirContext, caller: Caller, req: FhirRequest): void {
  const [type, id, op, vid] = req.path;
  const method = req.method.toUpperCase();
  const allow = (t: string, i: Interaction) => void restriction(ctx, t, i);
  if (type === undefined || type === "metadata") return;
  if (type === "AuditEvent" && ctx.audit) return requireAuditAccess(caller);
  if (type === "_history") return requireAccess(caller, "*", "search");
  if (!isSupportedType(type)) return; // interact() answers 404 for it
  if (id === undefined) {
    const interaction: Interaction = method === "GET" || method === "HEAD"
      ? "search"
      : method === "POST"
      ? "create"
      : method === "PUT"
      ? "update"
      : "delete";
    return allow(type, interaction);
  }
  if (id === "_search") return allow(type, "search");
  if (id === "_history") return requireAccess(caller, type, "search");
  if (op?.startsWith("$") && vid === undefined) {
    const handler = ctx.operations?.get(`${type}/${op}`);
    for (const [t, i] of handler?.access ?? [[type, "update"] as const]) allow(t, i);
    return;
  }
  if (op === "_history" || method === "GET" || method === "HEAD") return allow(type, "read");
  allow(type, method === "DELETE" ? "delete" : "update");
}

/** AuditEvents: read and search from the audit trail; never written through the API. */
async function auditEvents(
  ctx: FhirContext,
  req: FhirRequest,
  sql: Sql,
  tx?: Sql,
): Promise<FhirResult> {
  const [, id, op] = req.path;
  const method = req.method.toUpperCase();
  if (tx) throw badRequest("AuditEvents cannot be entries of a transaction");
  if (method !== "GET" && method !== "HEAD" && !(method === "POST" && id === "_search")) {
    throw methodNotAllowed(method, "AuditEvent (the audit trail is written by the server only)");
  }
  if (id === undefined || id === "_search") {
    return {
      status: 200,
      body: await searchAuditEvents(sql, req.query, {
        baseUrl: ctx.baseUrl,
        defaultCount: ctx.defaultCount,
        maxCount: ctx.maxCount,
      }),
    };
  }
  if (op !== undefined) throw notFound(`No such endpoint: /${req.path.join("/")}`);
  const resource = await readAuditEvent(sql, id);
  return { status: 200, body: resource, lastModified: resource.meta?.lastUpdated };
}

async function search(
  ctx: FhirContext,
  sql: Sql,
  type: string,
  query: [string, string][],
  lenient: boolean | undefined,
  path: string,
): Promise<Bundle> {
  const req = parseSearch(type, query, {
    lenient: Boolean(lenient),
    defaultCount: ctx.defaultCount,
    maxCount: ctx.maxCount,
    baseUrl: ctx.baseUrl,
  });
  const { patient, queries } = reachOf(ctx, type, "search");
  // Not in the self link: the compartment and the scopes' queries are the token's, not the
  // client's criteria.
  if (patient !== undefined) req.filters.push(compartmentFilter(type, patient));
  if (queries) req.filters.push(scopeFilter(ctx, type, queries));
  const page = await executeSearch(sql, req);
  const bundle = searchBundle(ctx, req, page, path);
  const caller = ctx.caller;
  if (caller && bundle.entry) {
    // Included resources the caller may not read (another type, outside its patient's
    // compartment or its fine-grained scopes) are left out (SMART: never shown, not an error).
    const included = bundle.entry.filter((e) => e.search?.mode === "include" && e.resource);
    const hidden = limited(caller)
      ? await filterIncluded(ctx, sql, included.map((e) => e.resource!))
      : new Set<Resource>();
    bundle.entry = bundle.entry.filter((e) =>
      e.search?.mode !== "include" || !e.resource ||
      (mayInclude(caller, e.resource, ctx.baseUrl) && !hidden.has(e.resource))
    );
  }
  return bundle;
}

/** Whether the caller's reach may be narrower than whole types (a patient, scope queries). */
function limited(caller: Caller): boolean {
  return caller.patient !== undefined || caller.scopes.grants.some((g) => g.query !== undefined);
}

/**
 * `resource`, unless it lies outside the caller's patient compartment (then a 404) or its
 * fine-grained read scopes (a 403).
 */
async function visible(ctx: FhirContext, sql: Sql, resource: Resource): Promise<Resource> {
  assertVisible(ctx, resource, "read");
  if (ctx.caller && limited(ctx.caller)) await assertInScope(ctx, sql, resource, "read");
  return resource;
}

/**
 * An instance's history; a patient-bound caller sees only the versions inside its patient's
 * compartment (and the deletions between them), and none at all when no version is: a 404.
 */
async function instanceHistory(
  ctx: FhirContext,
  sql: Sql,
  type: string,
  id: string,
  query: [string, string][],
): Promise<Bundle> {
  const bundle = await history(ctx, sql, { type, id }, new URLSearchParams(query));
  const { patient, queries } = reachOf(ctx, type, "read");
  // Fine-grained read scopes: the resource as it is now must be in scope.
  if (queries) await assertInScope(ctx, sql, { resourceType: type, id } as Resource, "read");
  if (patient === undefined) return bundle;
  const entries = (bundle.entry ?? []).filter((e) =>
    !e.resource || inCompartment(e.resource, patient, ctx.baseUrl)
  );
  if (!entries.some((e) => e.resource)) throw notFound(`${type}/${id} not found`);
  if (entries.length === bundle.entry?.length) return bundle;
  // Versions were left out: the total would count them, so it is not given (it is optional).
  const { total: _total, ...rest } = bundle;
  return { ...rest, entry: entries };
}

function bodyResource(body: unknown, type: string): Resource {
  if (!body || typeof body !== "object" || Array.isArray(body)) {
    throw badRequest(`Expected a ${type} resource as a JSON object`);
  }
  const resource = body as Resource;
  if (resource.resourceType !== type) {
    throw badRequest(
      `Expected resourceType "${type}", got "${resource.resourceType}"`,
      "resourceType",
    );
  }
  return resource;
}

function methodNotAllowed(method: string, what: string) {
  return fhirError(405, "not-supported", `${method} is not supported on ${what}`);
}

/** Location, ETag and Last-Modified for a resource result. */
export function resultOf(
  ctx: FhirContext,
  result: { status: number; resource: Resource },
): FhirResult {
  const r = result.resource;
  const version = r.meta?.versionId;
  return {
    status: result.status,
    body: r,
    etag: version ? `W/"${version}"` : undefined,
    lastModified: r.meta?.lastUpdated,
    location: result.status === 201 && version
      ? `${ctx.baseUrl}/${r.resourceType}/${r.id}/_history/${version}`
      : undefined,
  };
}
