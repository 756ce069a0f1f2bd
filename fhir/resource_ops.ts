/**
 * @module The FHIR interactions on single resources: read, vread, create (also conditional),
 * update (also create-on-update and conditional), JSON Patch and delete. Every function takes the
 * connection or transaction it runs on, so a transaction Bundle can run many of them atomically.
 */
import type { Resource, Subscription } from "@medplum/fhirtypes";
import jsonpatch from "fast-json-patch";
import type { Sql } from "../db/db.ts";
import * as repo from "../db/resource_repo.ts";
import type { FhirContext } from "./context.ts";
import { indexResource } from "./indexer.ts";
import {
  badRequest,
  gone,
  multipleMatches,
  notFound,
  preconditionFailed,
} from "../platform/outcome.ts";
import { isSupportedType, NOT_SERVED_TYPES } from "./resource_types.ts";
import { findMatches, parseCondition } from "./conditional.ts";
import { assertEndpointAllowed } from "./subscriptions/criteria.ts";
import { ID_PATTERN, validate } from "./validate.ts";
import type { Interaction } from "../auth/scopes.ts";
import { forbidden } from "../auth/access.ts";
import { inCompartment, restriction } from "./compartment.ts";
import { assertInScope } from "./scope_queries.ts";

export interface WriteResult {
  resource: Resource;
  /** 201 created, 200 updated (or matched an existing resource), 204 nothing to do. */
  status: 200 | 201 | 204;
  /** For conditional create: the resource already existed. */
  matched?: boolean;
}

export function checkType(type: string): void {
  if (!isSupportedType(type)) throw notFoundType(type);
}

function notFoundType(type: string) {
  return notFound(
    NOT_SERVED_TYPES.includes(type)
      ? `${type} has no RESTful endpoint in FHIR R4`
      : `Resource type "${type}" is not supported by this server`,
  );
}

function checkId(id: string): void {
  if (!ID_PATTERN.test(id)) {
    throw badRequest(`Invalid id "${id}": must match [A-Za-z0-9\\-.]{1,64}`);
  }
}

/**
 * No resource has an id outside [A-Za-z0-9\-.]{1,64} (every write checks it), so such an id in a
 * path is not found without asking the database, which cannot even take some of them (U+0000).
 */
function checkPathId(type: string, id: string): void {
  if (!ID_PATTERN.test(id)) throw notFound(`${type}/${id} not found`);
}

export async function read(sql: Sql, type: string, id: string): Promise<Resource> {
  checkType(type);
  checkPathId(type, id);
  const row = await repo.readCurrent(sql, type, id);
  if (!row) throw notFound(`${type}/${id} not found`);
  if (row.deleted) throw gone(`${type}/${id} was deleted (version ${row.version})`);
  return row.content as unknown as Resource;
}

export async function vread(
  sql: Sql,
  type: string,
  id: string,
  versionId: string,
): Promise<Resource> {
  checkType(type);
  checkPathId(type, id);
  const version = Number(versionId);
  // Versions are 1, 2, 3…, stored as Postgres integers: anything else is no version of it.
  const valid = /^\d+$/.test(versionId) && version >= 1 && version < 2 ** 31;
  const row = valid ? await repo.readVersion(sql, type, id, version) : undefined;
  if (!row) {
    if (!(await repo.readCurrent(sql, type, id))) throw notFound(`${type}/${id} not found`);
    throw notFound(`${type}/${id} has no version ${versionId}`);
  }
  if (row.deleted) throw gone(`${type}/${id} version ${versionId} is a deletion`);
  return row.content as unknown as Resource;
}

/**
 * Locks a conditional interaction's criteria for the rest of the transaction (so concurrent
 * conditional writes on the same criteria serialise) and finds its match: undefined for none,
 * 412 for several.
 */
export async function matchCondition(
  ctx: FhirContext,
  sql: Sql,
  type: string,
  query: string,
  what: string,
  interaction: Interaction,
): Promise<Resource | undefined> {
  // Malformed criteria (U+0000, which the lock's key cannot hold, among them) are a 400 first.
  const condition = parseCondition(ctx, type, query, interaction);
  await repo.lockCriteria(sql, `${type}?${query}`);
  const matches = await findMatches(ctx, sql, type, condition);
  if (matches.length > 1) {
    throw multipleMatches(`${what} "${query}" matched ${matches.length} resources`);
  }
  return matches[0];
}

export async function create(
  ctx: FhirContext,
  sql: Sql,
  resource: Resource,
  options: { ifNoneExist?: string; id?: string } = {},
): Promise<WriteResult> {
  checkType(resource.resourceType);
  if (options.ifNoneExist) {
    const match = await matchCondition(
      ctx,
      sql,
      resource.resourceType,
      options.ifNoneExist,
      "If-None-Exist",
      "create",
    );
    if (match) return { resource: match, status: 200, matched: true };
  }
  const id = options.id ?? crypto.randomUUID();
  return await write(ctx, sql, { ...resource, id } as Resource, "POST", { mustBeNew: true });
}

export async function update(
  ctx: FhirContext,
  sql: Sql,
  type: string,
  id: string,
  resource: Resource,
  options: { ifMatch?: string } = {},
): Promise<WriteResult> {
  checkType(type);
  checkId(id);
  if (resource.resourceType !== type) {
    throw badRequest(
      `Body is a ${resource.resourceType}, but the URL names ${type}`,
      "resourceType",
    );
  }
  if (resource.id === undefined) {
    throw badRequest(`The resource in an update must carry its id ("${id}")`, `${type}.id`);
  }
  if (resource.id !== id) {
    throw badRequest(`Body id "${resource.id}" does not match the URL id "${id}"`, `${type}.id`);
  }
  return await write(ctx, sql, resource, "PUT", { ifMatch: options.ifMatch });
}

export async function conditionalUpdate(
  ctx: FhirContext,
  sql: Sql,
  type: string,
  query: string,
  resource: Resource,
): Promise<WriteResult> {
  checkType(type);
  if (resource.resourceType !== type) {
    throw badRequest(
      `Body is a ${resource.resourceType}, but the URL names ${type}`,
      "resourceType",
    );
  }
  const id = await conditionalTarget(ctx, sql, type, query, resource);
  return await write(ctx, sql, { ...resource, id }, "PUT", {});
}

/**
 * The id a conditional update writes to: the one match's; with no match, the body's id (when that
 * resource does not exist as another, non-matching one) or a new id.
 */
export async function conditionalTarget(
  ctx: FhirContext,
  sql: Sql,
  type: string,
  query: string,
  resource: Resource,
): Promise<string> {
  const match = await matchCondition(ctx, sql, type, query, "Conditional update", "update");
  if (match) {
    if (resource.id !== undefined && resource.id !== match.id) {
      throw badRequest(
        `Body id "${resource.id}" differs from the matched resource ${type}/${match.id}`,
        `${type}.id`,
      );
    }
    return match.id as string;
  }
  if (!resource.id) return crypto.randomUUID();
  checkId(resource.id);
  const existing = await repo.readCurrent(sql, type, resource.id);
  if (existing && !existing.deleted) {
    throw badRequest(`${type}/${resource.id} exists but does not match "${query}"`, `${type}.id`);
  }
  return resource.id;
}

export async function patch(
  ctx: FhirContext,
  sql: Sql,
  type: string,
  id: string,
  operations: unknown,
  options: { ifMatch?: string } = {},
): Promise<WriteResult> {
  checkType(type);
  if (!Array.isArray(operations)) {
    throw badRequest("A JSON Patch body must be an array of operations");
  }
  checkPathId(type, id);
  const current = await repo.readCurrent(sql, type, id, true);
  if (!current) throw notFound(`${type}/${id} not found`);
  if (current.deleted) throw gone(`${type}/${id} was deleted`);
  checkIfMatch(options.ifMatch, current.version, type, id);
  let patched: Resource;
  try {
    patched = jsonpatch.applyPatch(structuredClone(current.content), operations, true, false)
      .newDocument as unknown as Resource;
  } catch (e) {
    const message = (e as Error).message.split("\n")[0];
    const failed = (e as { name?: string }).name === "TEST_OPERATION_FAILED";
    throw failed
      ? preconditionFailed(`JSON Patch test failed: ${message}`)
      : badRequest(`Invalid JSON Patch: ${message}`);
  }
  if (patched?.resourceType !== type || patched.id !== id) {
    throw badRequest("A patch may not change resourceType or id");
  }
  return await write(ctx, sql, patched, "PATCH", { ifMatch: String(current.version) });
}

export async function remove(
  ctx: FhirContext,
  sql: Sql,
  type: string,
  id: string,
  options: { ifMatch?: string } = {},
): Promise<WriteResult & { version?: number }> {
  checkType(type);
  checkPathId(type, id);
  const current = await repo.readCurrent(sql, type, id, true);
  const patient = restriction(ctx, type, "delete");
  const hidden = patient !== undefined && current && !current.deleted &&
    !inCompartment(current.content as unknown as Resource, patient, ctx.baseUrl);
  if (!current || hidden) throw notFound(`${type}/${id} not found`);
  if (!current.deleted) {
    await assertInScope(ctx, sql, { resourceType: type, id } as Resource, "delete");
  }
  checkIfMatch(options.ifMatch, current.version, type, id);
  if (!current.deleted) {
    await ctx.deleteChecks?.get(type)?.(sql, current.content as unknown as Resource);
  }
  if (current.deleted) {
    return {
      resource: { resourceType: type, id } as Resource,
      status: 204,
      version: current.version,
    };
  }
  const version: repo.NewVersion = {
    type,
    id,
    version: current.version + 1,
    lastUpdated: nextTimestamp(current.lastUpdated),
    deleted: true,
    method: "DELETE",
    content: null,
  };
  await repo.updateCurrent(sql, current.rid, version);
  await repo.insertVersion(sql, current.rid, version);
  await repo.replaceIndex(sql, current.rid, type, null);
  return {
    resource: { resourceType: type, id } as Resource,
    status: 200,
    version: version.version,
  };
}

export async function conditionalDelete(
  ctx: FhirContext,
  sql: Sql,
  type: string,
  query: string,
): Promise<number> {
  checkType(type);
  const match = await matchCondition(ctx, sql, type, query, "Conditional delete", "delete");
  if (match) await remove(ctx, sql, type, match.id as string);
  return match ? 1 : 0;
}

/** 412 when the client's If-Match names another version than the current one. */
function checkIfMatch(
  ifMatch: string | undefined,
  version: number,
  type: string,
  id: string,
): void {
  if (ifMatch !== undefined && ifMatch !== String(version)) {
    throw preconditionFailed(
      `If-Match version ${ifMatch} does not match current version ${version} of ${type}/${id}`,
    );
  }
}

/** A 403 unless `resource` (as it would be written) lies in `patient`'s compartment. */
function assertInside(
  ctx: FhirContext,
  resource: Resource,
  patient: string,
  interaction: Interaction,
): void {
  if (inCompartment(resource, patient, ctx.baseUrl)) return;
  throw forbidden(
    `The ${resource.resourceType} would not be in the compartment of Patient/${patient}, the ` +
      `only one this token may ${interaction} in (reference the patient, e.g. in subject)`,
  );
}

/** Now, but never at or before the previous version's time (versions sort by time). */
function nextTimestamp(previous?: string): string {
  const now = Date.now();
  const prev = previous ? Date.parse(previous) : 0;
  return new Date(Math.max(now, prev + 1)).toISOString();
}

/**
 * Validates and stores a new version: inserts the row (version 1) or locks the existing one,
 * checks If-Match, writes the version and replaces the index rows.
 */
async function write(
  ctx: FhirContext,
  sql: Sql,
  resource: Resource,
  method: repo.NewVersion["method"],
  options: { ifMatch?: string; mustBeNew?: boolean },
): Promise<WriteResult> {
  const type = resource.resourceType;
  const id = resource.id as string;
  const stamp = (version: number, lastUpdated: string): Resource => {
    const meta = { ...(resource.meta ?? {}), versionId: String(version), lastUpdated };
    return { ...resource, meta } as Resource;
  };
  let content = stamp(1, nextTimestamp());
  validate(content);
  if (type === "Subscription") {
    assertEndpointAllowed(
      content as Subscription,
      ctx.subscriptionEndpoints,
      ctx.outboundPrivateAddresses,
    );
  }
  const interaction: Interaction = method === "POST" ? "create" : "update";
  const patient = restriction(ctx, type, interaction);
  const rows = indexResource(content, ctx.baseUrl);
  const first: repo.NewVersion = {
    type,
    id,
    version: 1,
    lastUpdated: content.meta!.lastUpdated!,
    deleted: false,
    method,
    content: content as unknown as Record<string, unknown>,
  };
  // Checked after the lock: a throw rolls the transaction back, an inserted row with it.
  const { rid, existing } = await repo.insertOrLock(sql, first);
  if (!existing) {
    if (patient !== undefined) assertInside(ctx, content, patient, interaction);
    if (options.ifMatch !== undefined) {
      throw preconditionFailed(`If-Match given, but ${type}/${id} does not exist`);
    }
    await repo.insertVersion(sql, rid, first);
    await repo.replaceIndex(sql, rid, type, rows as unknown as repo.IndexRowSet, { fresh: true });
    await assertInScope(ctx, sql, content, interaction);
    return { resource: content, status: 201 };
  }
  if (options.mustBeNew) throw new Error(`generated id ${type}/${id} collided`);
  if (patient !== undefined && !existing.deleted) {
    // Another patient's resource is not there for this token: not found, not overwritten.
    const before = await repo.readCurrent(sql, type, id);
    if (
      !before?.content ||
      !inCompartment(before.content as unknown as Resource, patient, ctx.baseUrl)
    ) {
      throw notFound(`${type}/${id} not found`);
    }
  }
  if (patient !== undefined) assertInside(ctx, content, patient, interaction);
  // Fine-grained scopes: the version replaced must be in scope (its index is still in place)…
  if (!existing.deleted) await assertInScope(ctx, sql, content, interaction);
  checkIfMatch(options.ifMatch, existing.version, type, id);
  content = stamp(existing.version + 1, nextTimestamp(existing.lastUpdated));
  const next: repo.NewVersion = {
    ...first,
    version: existing.version + 1,
    lastUpdated: content.meta!.lastUpdated!,
    content: content as unknown as Record<string, unknown>,
  };
  await repo.updateCurrent(sql, rid, next);
  await repo.insertVersion(sql, rid, next);
  await repo.replaceIndex(sql, rid, type, rows as unknown as repo.IndexRowSet);
  // …and so must the new one (checked in this transaction: refused, nothing is committed).
  await assertInScope(ctx, sql, content, interaction);
  return { resource: content, status: existing.deleted ? 201 : 200 };
}
