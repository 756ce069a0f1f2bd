/**
 * @module Batch and transaction Bundles. A transaction is all or nothing: it runs in one database
 * transaction, resolves `urn:uuid:` fullUrls and conditional references (`Patient?identifier=…`),
 * and processes entries in the spec's order (DELETE, POST, PUT, PATCH, GET). A batch runs each
 * entry on its own and reports each entry's outcome.
 */
import type { Bundle, BundleEntry, Resource } from "@medplum/fhirtypes";
import type { Sql } from "../db/db.ts";
import { type FhirContext, type Interact, parseETag } from "./context.ts";
import { type FhirRequest, type FhirResult, resultOf } from "./request.ts";
import { badRequest, FhirError, toFhirError } from "../platform/outcome.ts";
import { conditionalTarget, matchCondition } from "./resource_ops.ts";
import { findMatches } from "./conditional.ts";

const ORDER: Record<string, number> = { DELETE: 0, POST: 1, PUT: 2, PATCH: 3, GET: 4, HEAD: 4 };
const STATUS_TEXT: Record<number, string> = {
  200: "OK",
  201: "Created",
  204: "No Content",
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  410: "Gone",
  412: "Precondition Failed",
  422: "Unprocessable Entity",
  500: "Internal Server Error",
};

function statusLine(status: number): string {
  return `${status} ${STATUS_TEXT[status] ?? ""}`.trim();
}

/** Runs a batch or transaction Bundle, each entry through `interact` (the dispatch). */
export async function processBundle(
  ctx: FhirContext,
  body: unknown,
  interact: Interact,
): Promise<Bundle> {
  const bundle = body as Bundle;
  if (!bundle || typeof bundle !== "object" || bundle.resourceType !== "Bundle") {
    throw badRequest("POST to the base expects a Bundle", "Bundle");
  }
  if (bundle.type !== "batch" && bundle.type !== "transaction") {
    throw badRequest(
      `Bundle.type must be batch or transaction, got "${bundle.type}"`,
      "Bundle.type",
    );
  }
  const entries = bundle.entry ?? [];
  entries.forEach((e, i) => {
    if (!e.request?.method || !e.request.url) {
      throw badRequest(
        `Bundle.entry[${i}].request needs a method and a url`,
        `Bundle.entry[${i}].request`,
      );
    }
    if (!(e.request.method in ORDER)) {
      throw badRequest(
        `Bundle.entry[${i}].request.method ${e.request.method} is not supported`,
        `Bundle.entry[${i}].request.method`,
      );
    }
  });
  return bundle.type === "batch"
    ? await batch(ctx, entries, interact)
    : await transaction(ctx, entries, interact);
}

function toRequest(ctx: FhirContext, entry: BundleEntry): FhirRequest {
  const request = entry.request!;
  let url = request.url!;
  if (url.startsWith(ctx.baseUrl)) url = url.slice(ctx.baseUrl.length);
  url = url.replace(/^\//, "");
  const [path, qs = ""] = url.split("?", 2);
  return {
    method: request.method!,
    path: path.split("/").filter(Boolean).map(decodeURIComponent),
    query: [...new URLSearchParams(qs)],
    body: request.method === "PATCH" ? patchBody(entry) : entry.resource,
    ifMatch: parseETag(request.ifMatch),
    ifNoneExist: request.ifNoneExist,
  };
}

/** A PATCH entry carries its JSON Patch as a Binary resource (base64 data), per the spec. */
function patchBody(entry: BundleEntry): unknown {
  const r = entry.resource as Resource & { data?: string };
  if (r?.resourceType === "Binary" && r.data) {
    try {
      return JSON.parse(
        new TextDecoder().decode(Uint8Array.from(atob(r.data), (c) => c.charCodeAt(0))),
      );
    } catch {
      throw badRequest("PATCH entry: Binary.data is not a base64 JSON Patch");
    }
  }
  return r;
}

function responseEntry(
  ctx: FhirContext,
  status: number,
  result: FhirResult,
): BundleEntry {
  const entry: BundleEntry = {
    response: {
      status: statusLine(status),
      location: result.location?.replace(`${ctx.baseUrl}/`, ""),
      etag: result.etag,
      lastModified: result.lastModified,
    },
  };
  if (result.body) {
    if (result.body.resourceType === "OperationOutcome") entry.response!.outcome = result.body;
    else {
      entry.resource = result.body;
      if (result.body.id) {
        entry.fullUrl = `${ctx.baseUrl}/${result.body.resourceType}/${result.body.id}`;
      }
    }
  }
  return entry;
}

async function batch(
  ctx: FhirContext,
  entries: BundleEntry[],
  interact: Interact,
): Promise<Bundle> {
  const out: BundleEntry[] = [];
  for (const entry of entries) {
    try {
      const result = await interact(ctx, toRequest(ctx, entry));
      out.push(responseEntry(ctx, result.status, result));
    } catch (e) {
      const err = toFhirError(e);
      out.push({
        response: {
          status: statusLine(err.status),
          outcome: err.outcome,
        },
      });
    }
  }
  return { resourceType: "Bundle", id: crypto.randomUUID(), type: "batch-response", entry: out };
}

async function transaction(
  ctx: FhirContext,
  entries: BundleEntry[],
  interact: Interact,
): Promise<Bundle> {
  const results = await ctx.db.transaction(async (tx) => {
    const requests = entries.map((e) => toRequest(ctx, e));
    const refs = await assignIdentities(ctx, tx, entries, requests);
    rejectOverlaps(requests);
    for (const r of requests) {
      if (r.body && r.method !== "PATCH") r.body = await resolveReferences(ctx, tx, r.body, refs);
    }
    const order = requests.map((_, i) => i).sort((a, b) =>
      ORDER[requests[a].method] - ORDER[requests[b].method] || a - b
    );
    const results: BundleEntry[] = new Array(entries.length);
    for (const i of order) {
      try {
        const r = requests[i];
        const pre = refs.matched.get(i);
        const result = pre ?? await interact(ctx, r, tx);
        results[i] = responseEntry(ctx, result.status, result);
      } catch (e) {
        throw entryError(e, i, entries[i]);
      }
    }
    return results;
  });
  return {
    resourceType: "Bundle",
    id: crypto.randomUUID(),
    type: "transaction-response",
    entry: results,
  };
}

/** An error of one entry, its diagnostics prefixed with the entry's index, method and url. */
function entryError(e: unknown, i: number, entry: BundleEntry): FhirError {
  const err = toFhirError(e);
  for (const issue of err.outcome.issue ?? []) {
    issue.diagnostics = `Bundle.entry[${i}] (${entry.request?.method} ${entry.request?.url}): ${
      issue.diagnostics ?? ""
    }`;
  }
  return err;
}

async function inEntry<T>(i: number, entry: BundleEntry, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw entryError(e, i, entry);
  }
}

/** A transaction may not touch one resource twice (http.html, transaction integrity). */
function rejectOverlaps(requests: FhirRequest[]): void {
  const seen = new Map<string, number>();
  requests.forEach((r, i) => {
    if (r.method === "GET" || r.method === "HEAD" || r.method === "POST") return;
    const [type, id] = r.path;
    if (!type || !id) return;
    const key = `${type}/${id}`;
    const earlier = seen.get(key);
    if (earlier !== undefined) {
      throw badRequest(
        `Bundle.entry[${earlier}] and Bundle.entry[${i}] both write ${key}; a transaction may touch a resource once`,
      );
    }
    seen.set(key, i);
  });
}

interface Identities {
  /** fullUrl (urn:uuid:…, or an absolute URL) → `Type/id`. */
  byFullUrl: Map<string, string>;
  /** Entries already answered while assigning identities (conditional create that matched). */
  matched: Map<number, FhirResult>;
}

/**
 * Gives every created resource its id before anything is written, so references between entries
 * can be rewritten; conditional creates and updates are resolved here, inside the transaction.
 */
async function assignIdentities(
  ctx: FhirContext,
  tx: Sql,
  entries: BundleEntry[],
  requests: FhirRequest[],
): Promise<Identities> {
  const ids: Identities = { byFullUrl: new Map(), matched: new Map() };
  for (const [i, r] of requests.entries()) {
    const fullUrl = entries[i].fullUrl;
    const [type, id] = r.path;
    if (r.method === "POST" && type && !id) {
      const match = r.ifNoneExist
        ? await inEntry(
          i,
          entries[i],
          () => matchCondition(ctx, tx, type, r.ifNoneExist!, "If-None-Exist", "create"),
        )
        : undefined;
      if (match) {
        if (fullUrl) ids.byFullUrl.set(fullUrl, `${type}/${match.id}`);
        ids.matched.set(i, resultOf(ctx, { status: 200, resource: match }));
        continue;
      }
      r.assignedId = crypto.randomUUID();
      if (fullUrl) ids.byFullUrl.set(fullUrl, `${type}/${r.assignedId}`);
    } else if (r.method === "PUT" && type && !id && r.query.length) {
      const resource = r.body as Resource;
      if (!resource || typeof resource !== "object") continue; // interact() reports the bad body
      const qs = new URLSearchParams(r.query).toString();
      const targetId = await inEntry(
        i,
        entries[i],
        () => conditionalTarget(ctx, tx, type, qs, resource),
      );
      r.path = [type, targetId];
      r.query = [];
      r.body = { ...resource, id: targetId };
      if (fullUrl) ids.byFullUrl.set(fullUrl, `${type}/${targetId}`);
    } else if (r.method === "PUT" && type && id && fullUrl) {
      ids.byFullUrl.set(fullUrl, `${type}/${id}`);
    }
  }
  return ids;
}

/** Rewrites every `reference` in a resource: fullUrls of this Bundle and conditional references. */
async function resolveReferences(
  ctx: FhirContext,
  tx: Sql,
  value: unknown,
  ids: Identities,
): Promise<unknown> {
  if (Array.isArray(value)) {
    return await Promise.all(value.map((v) => resolveReferences(ctx, tx, v, ids)));
  }
  if (!value || typeof value !== "object") return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (k === "reference" && typeof v === "string") out[k] = await resolveOne(ctx, tx, v, ids);
    else out[k] = await resolveReferences(ctx, tx, v, ids);
  }
  return out;
}

async function resolveOne(
  ctx: FhirContext,
  tx: Sql,
  ref: string,
  ids: Identities,
): Promise<string> {
  const mapped = ids.byFullUrl.get(ref);
  if (mapped) return mapped;
  if (ref.startsWith("urn:uuid:") || ref.startsWith("urn:oid:")) {
    throw badRequest(`Reference "${ref}" names no entry of this transaction`);
  }
  const conditional = /^([A-Z][A-Za-z]+)\?(.+)$/.exec(ref);
  if (!conditional) return ref;
  const found = await findMatches(ctx, tx, conditional[1], conditional[2]);
  if (found.length !== 1) {
    throw new FhirError(found.length === 0 ? 404 : 412, {
      resourceType: "OperationOutcome",
      issue: [{
        severity: "error",
        code: found.length === 0 ? "not-found" : "multiple-matches",
        diagnostics: `Conditional reference "${ref}" matched ${
          found.length === 0 ? "no" : "several"
        } resources`,
      }],
    });
  }
  return `${conditional[1]}/${found[0].id}`;
}
