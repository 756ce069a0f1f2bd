/**
 * @module One FHIR interaction, independent of HTTP. `interact()` reads the path into a route
 * (`paths.ts`), has the access layer check it (`guard.ts`), and runs the handler that the dispatch
 * table `HANDLERS` names for the route's kind and the method; a method the table lacks is a 405.
 * The route layer and the entries of batch and transaction Bundles both come here, so a Bundle
 * entry behaves exactly like the same request sent on its own.
 */
import type { Bundle, Resource } from "@medplum/fhirtypes";
import type { Sql } from "../db/db.ts";
import { readAuditEvent, searchAuditEvents } from "../audit/search.ts";
import { badRequest, fhirError, informational, notFound } from "../platform/outcome.ts";
import { processBundle } from "./bundle.ts";
import { capabilityStatement } from "./capability.ts";
import { compartmentFilter, compartmentParams, inCompartment, reachOf } from "./compartment.ts";
import { assertInScope } from "./scope_queries.ts";
import { authorize, hideIncluded, limited, narrowSearch, visible } from "./guard.ts";
import { history } from "./history.ts";
import { type Route, type RouteKind, routeName, routeOf } from "./paths.ts";
import * as ops from "./resource_ops.ts";
import { executeSearch, searchBundle } from "./search/execute.ts";
import { parseSearch } from "./search/parse.ts";
import {
  type FhirContext,
  operationFor,
  type OperationHandler,
  type OperationRequest,
} from "./context.ts";
import { type FhirRequest, type FhirResult, resultOf } from "./request.ts";

/** One interaction on its way to a handler: the request, its route, and where it reads and writes. */
interface Call<R extends Route = Route> {
  ctx: FhirContext;
  req: FhirRequest;
  route: R;
  method: string;
  /** The transaction of a transaction Bundle's entry. */
  tx?: Sql;
  /** Reads by id, histories, conditional criteria: the primary (or `tx`). */
  readSql: Sql;
  /** Type-level searches: the read replica when there is one (or `tx`). */
  searchSql: Sql;
  /** Runs `fn` in `tx`, or in a transaction of its own. */
  write<T>(fn: (sql: Sql) => Promise<T>): Promise<T>;
}

type Handler<R extends Route> = (call: Call<R>) => Promise<FhirResult>;

/** The dispatch table: route kind → method → handler (`*`: any method). */
type Table = { [K in RouteKind]: Record<string, Handler<Extract<Route, { kind: K }>>> };

const HANDLERS: Table = {
  system: {
    async POST({ ctx, req, tx }) {
      if (tx) throw badRequest("A Bundle cannot be nested in a transaction entry");
      return { status: 200, body: await processBundle(ctx, req.body, interact) };
    },
  },
  metadata: {
    GET: ({ ctx, route, method }) => {
      if (route.trailing !== undefined) throw methodNotAllowed(method, route);
      return Promise.resolve({ status: 200, body: capabilityStatement(ctx) });
    },
  },
  "system-history": {
    async GET({ ctx, route, method, readSql, req }) {
      if (route.trailing !== undefined) throw methodNotAllowed(method, route);
      return { status: 200, body: await history(ctx, readSql, {}, new URLSearchParams(req.query)) };
    },
  },
  audit: { "*": auditEvents },
  type: {
    GET: async (c) => ({ status: 200, body: await search(c, c.route.type) }),
    async POST({ ctx, req, route, write }) {
      const resource = bodyResource(req.body, route.type);
      const result = await write((sql) =>
        ops.create(ctx, sql, resource, {
          // A transaction resolved If-None-Exist (under its lock) when it assigned the id.
          ifNoneExist: req.assignedId ? undefined : req.ifNoneExist,
          id: req.assignedId,
        })
      );
      return resultOf(ctx, result);
    },
    async PUT({ ctx, req, route, method, write }) {
      const criteria = queryString(req);
      if (!criteria) throw methodNotAllowed(method, route);
      const resource = bodyResource(req.body, route.type);
      return resultOf(
        ctx,
        await write((sql) => ops.conditionalUpdate(ctx, sql, route.type, criteria, resource)),
      );
    },
    async DELETE({ ctx, req, route, method, write }) {
      const criteria = queryString(req);
      if (!criteria) throw methodNotAllowed(method, route);
      const n = await write((sql) => ops.conditionalDelete(ctx, sql, route.type, criteria));
      const type = route.type;
      return {
        status: 200,
        body: informational(n ? `Deleted 1 ${type}` : `No ${type} matched; nothing deleted`),
      };
    },
  },
  "type-search": {
    POST: async (c) => ({ status: 200, body: await search(c, c.route.type) }),
  },
  "type-history": {
    async GET({ ctx, readSql, route, req }) {
      const params = new URLSearchParams(req.query);
      return { status: 200, body: await history(ctx, readSql, { type: route.type }, params) };
    },
  },
  "instance-history": {
    async GET({ ctx, readSql, route, req }) {
      return {
        status: 200,
        body: await instanceHistory(ctx, readSql, route.type, route.id, req.query),
      };
    },
  },
  version: {
    async GET({ ctx, readSql, route }) {
      const resource = await ops.vread(readSql, route.type, route.id, route.vid);
      return resultOf(ctx, { status: 200, resource: await visible(ctx, readSql, resource) });
    },
  },
  "system-operation": {
    "*": ({ ctx, req, route, method, tx }) => {
      const handler = operationFor(ctx, "system", undefined, route.op);
      if (!handler) throw notFound(`Operation ${route.op} is not supported at the system level`);
      if (tx) throw badRequest(`${route.op} cannot be an entry of a Bundle`);
      return runOperation(ctx, handler, req, method, { level: "system" });
    },
  },
  "type-operation": {
    "*": ({ ctx, req, route, method, tx }) => {
      const { type, op } = route;
      const handler = operationFor(ctx, "type", type, op);
      if (!handler) throw notFound(`Operation ${op} is not supported on ${type}`);
      if (tx) throw badRequest(`${op} cannot be an entry of a Bundle`);
      return runOperation(ctx, handler, req, method, { level: "type", type });
    },
  },
  operation: {
    async "*"({ ctx, req, route, method, tx, readSql }) {
      const { type, id, op } = route;
      const handler = operationFor(ctx, "instance", type, op);
      if (!handler) throw notFound(`Operation ${op} is not supported on ${type}/[id]`);
      if (tx) throw badRequest(`${op} cannot be an entry of a Bundle`);
      // A limited caller (bound to a patient, or holding fine-grained scopes) runs operations
      // only on resources it may read.
      if (ctx.caller && limited(ctx.caller)) {
        await visible(ctx, readSql, await ops.read(readSql, type, id));
      }
      return await runOperation(ctx, handler, req, method, { level: "instance", type, id });
    },
  },
  compartment: {
    async GET(c) {
      const { ctx, readSql, route } = c;
      const { id, target } = route;
      ops.checkType(target);
      if (!compartmentParams(target)?.length && target !== "Patient") {
        throw notFound(`${target} has no place in a patient's compartment`);
      }
      // The patient must exist and be the caller's to read (a bound token: its own).
      await visible(ctx, readSql, await ops.read(readSql, "Patient", id));
      return { status: 200, body: await search(c, target, `Patient/${id}/${target}`, id) };
    },
  },
  unknown: {
    "*": ({ req }) => Promise.reject(notFound(`No such endpoint: /${req.path.join("/")}`)),
  },
  instance: {
    GET: read,
    HEAD: read,
    async PUT({ ctx, req, route, write }) {
      const resource = bodyResource(req.body, route.type);
      return resultOf(
        ctx,
        await write((sql) =>
          ops.update(ctx, sql, route.type, route.id, resource, { ifMatch: req.ifMatch })
        ),
      );
    },
    async PATCH({ ctx, req, route, write }) {
      return resultOf(
        ctx,
        await write((sql) =>
          ops.patch(ctx, sql, route.type, route.id, req.body, { ifMatch: req.ifMatch })
        ),
      );
    },
    async DELETE({ ctx, req, route, write }) {
      const { type, id } = route;
      const result = await write((sql) => ops.remove(ctx, sql, type, id, { ifMatch: req.ifMatch }));
      return {
        status: 200,
        body: informational(
          result.status === 204 ? `${type}/${id} was already deleted` : `Deleted ${type}/${id}`,
        ),
        etag: result.version ? `W/"${result.version}"` : undefined,
      };
    },
  },
};

/**
 * Runs one interaction. With `tx` it runs on that transaction (a transaction Bundle); without,
 * reads use the pool and each write gets its own transaction.
 */
export async function interact(ctx: FhirContext, req: FhirRequest, tx?: Sql): Promise<FhirResult> {
  const route = routeOf(req.path, Boolean(ctx.audit));
  const method = req.method.toUpperCase();
  if (ctx.caller) authorize(ctx, ctx.caller, route, method);
  if ("type" in route) ops.checkType(route.type);
  const handlers = HANDLERS[route.kind] as Record<string, Handler<Route>>;
  const handler = handlers[method] ?? handlers["*"];
  if (!handler) throw methodNotAllowed(method, route);
  return await handler({
    ctx,
    req,
    route,
    method,
    tx,
    readSql: tx ?? ctx.db,
    searchSql: tx ?? ctx.readDb ?? ctx.db,
    write: (fn) => tx ? fn(tx) : ctx.db.transaction(fn),
  });
}

async function read({ ctx, readSql, route }: Call<Extract<Route, { kind: "instance" }>>) {
  const resource = await ops.read(readSql, route.type, route.id);
  return resultOf(ctx, { status: 200, resource: await visible(ctx, readSql, resource) });
}

/** AuditEvents: read and search from the audit trail; never written through the API. */
async function auditEvents(
  { ctx, req, route, method, tx, readSql }: Call<Extract<Route, { kind: "audit" }>>,
): Promise<FhirResult> {
  const { id, op } = route;
  if (tx) throw badRequest("AuditEvents cannot be entries of a transaction");
  if (method !== "GET" && method !== "HEAD" && !(method === "POST" && id === "_search")) {
    throw methodNotAllowed(method, route);
  }
  if (id === undefined || id === "_search") {
    return {
      status: 200,
      body: await searchAuditEvents(readSql, req.query, {
        baseUrl: ctx.baseUrl,
        defaultCount: ctx.defaultCount,
        maxCount: ctx.maxCount,
      }),
    };
  }
  if (op !== undefined) throw notFound(`No such endpoint: /${req.path.join("/")}`);
  const resource = await readAuditEvent(readSql, id);
  return { status: 200, body: resource, lastModified: resource.meta?.lastUpdated };
}

/**
 * Runs an operation: POST always; GET (and HEAD) only for one that changes nothing (FHIR
 * operations: `affectsState` false), with its parameters in the query.
 */
function runOperation(
  ctx: FhirContext,
  handler: OperationHandler,
  req: FhirRequest,
  method: string,
  at: Pick<OperationRequest, "level" | "type" | "id">,
): Promise<FhirResult> {
  if (method !== "POST" && !((method === "GET" || method === "HEAD") && handler.idempotent)) {
    throw fhirError(
      405,
      "not-supported",
      `${method} is not supported on this operation; invoke it with ` +
        (handler.idempotent ? "GET or POST" : "POST"),
    );
  }
  return handler(ctx, {
    ...at,
    method,
    body: req.body,
    query: req.query,
    lenient: req.lenient,
  });
}

/**
 * A type-level search (GET `Type` or POST `Type/_search`), kept to the caller's reach; with
 * `patient`, a compartment search (`Patient/{id}/Type`, its links on that path).
 */
async function search(
  { ctx, req, searchSql }: Call,
  type: string,
  path = type,
  patient?: string,
): Promise<Bundle> {
  const request = parseSearch(type, req.query, {
    lenient: Boolean(req.lenient),
    defaultCount: ctx.defaultCount,
    maxCount: ctx.maxCount,
    baseUrl: ctx.baseUrl,
  });
  if (patient !== undefined) request.filters.push(compartmentFilter(type, patient));
  narrowSearch(ctx, type, request);
  const page = await executeSearch(searchSql, request);
  const bundle = searchBundle(ctx, request, page, path);
  await hideIncluded(ctx, searchSql, bundle);
  return bundle;
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

function queryString(req: FhirRequest): string {
  return new URLSearchParams(req.query).toString();
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

function methodNotAllowed(method: string, route: Route) {
  return fhirError(405, "not-supported", `${method} is not supported on ${routeName(route)}`);
}
