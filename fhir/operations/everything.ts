/**
 * @module `Patient/[id]/$everything` (http://hl7.org/fhir/OperationDefinition/Patient-everything):
 * the patient and every resource in its compartment (R4 CompartmentDefinition/patient), as a
 * searchset paged with `_count` and `next` links, optionally only those changed after `_since`
 * and of the types in `_type`. Each type is read by its own keyset search (the patient first, then
 * the types in alphabetical order), so pages neither repeat nor skip a resource; the `_cursor` of a
 * `next` link names the type and the position in it. What the caller may not search (a type its
 * scopes do not reach) is left out, as a search would; a patient-bound token reaches only its own
 * patient. What a page's resources refer to (a Practitioner, an Organization, a Binary) follows
 * its matches as `include` entries (`everything_refs.ts`), left out where the caller may not read.
 */
import type { Bundle, BundleEntry } from "@medplum/fhirtypes";
import { badRequest, FhirError } from "../../platform/outcome.ts";
import { compartmentFilter, compartmentParams } from "../compartment.ts";
import type { FhirContext, OperationHandler, OperationRequest } from "../context.ts";
import { hideIncluded, narrowSearch, visible } from "../guard.ts";
import { referencedEntries } from "./everything_refs.ts";
import * as ops from "../resource_ops.ts";
import { RESOURCE_TYPES } from "../resource_types.ts";
import { entryOf, executeSearch } from "../search/execute.ts";
import { encodeCursor, packCursor, unpackCursor } from "../search/cursor.ts";
import { parseSearch } from "../search/parse.ts";

export const EVERYTHING_DEFINITION = "http://hl7.org/fhir/OperationDefinition/Patient-everything";

/** The patient, then every other type with a place in the compartment, in a fixed order. */
let compartmentTypes: readonly string[] | undefined;
function typesInCompartment(): readonly string[] {
  return compartmentTypes ??= [
    "Patient",
    ...RESOURCE_TYPES.filter((t) => t !== "Patient" && compartmentParams(t)?.length).sort(),
  ];
}

const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;

interface Position {
  /** The type being read. */
  type: string;
  /** The keyset cursor inside it (none: its start). */
  cursor?: string;
}

/** The operation's handler, registered as `Patient/$everything` (instance level). */
export function everythingOperation(): OperationHandler {
  const handler: OperationHandler = async (ctx, req) => {
    const id = req.id as string;
    const sql = ctx.db;
    await visible(ctx, sql, await ops.read(sql, "Patient", id));
    const { since, types, count, position } = parametersOf(ctx, req);
    const entries: BundleEntry[] = [];
    let next: Position | undefined;
    const start = position ? types.indexOf(position.type) : 0;
    if (start < 0) throw badRequest("The _cursor does not belong to these _type", "_cursor");
    for (let i = start; i < types.length; i++) {
      const type = types[i];
      const remaining = count - entries.length;
      if (remaining === 0) {
        next = { type };
        break;
      }
      const query: [string, string][] = [["_count", String(remaining)], ["_total", "none"]];
      if (since) query.push(["_lastUpdated", `gt${since}`]);
      if (i === start && position?.cursor) query.push(["_cursor", position.cursor]);
      const request = parseSearch(type, query, {
        lenient: false,
        defaultCount: remaining,
        maxCount: remaining,
        baseUrl: ctx.baseUrl,
      });
      request.filters.push(compartmentFilter(type, id));
      try {
        narrowSearch(ctx, type, request);
      } catch (e) {
        // A type the caller's scopes do not reach is left out, as its own search would refuse.
        if (e instanceof FhirError && e.status === 403) continue;
        throw e;
      }
      const page = await executeSearch(sql, request);
      entries.push(...page.matches.map((r) => entryOf(ctx, r, "match")));
      if (page.next) {
        next = { type, cursor: encodeCursor(page.next) };
        break;
      }
    }
    const link = (at?: Position) => {
      const qs = new URLSearchParams([["_count", String(count)]]);
      if (since) qs.set("_since", since);
      if (req.query.some(([k]) => k === "_type")) qs.set("_type", types.join(","));
      if (at) qs.set("_cursor", encodePosition(at));
      return `${ctx.baseUrl}/Patient/${id}/$everything?${qs}`;
    };
    const bundle: Bundle = {
      resourceType: "Bundle",
      id: crypto.randomUUID(),
      meta: { lastUpdated: new Date().toISOString() },
      type: "searchset",
      link: [
        { relation: "self", url: link(position) },
        ...(next ? [{ relation: "next", url: link(next) }] : []),
      ],
    };
    // What the page's resources refer to (a Practitioner, an Organization, a Binary), as
    // includes, then only what the caller may read of those.
    // `_type` limits these too ("the resource types to include in the return resources").
    const typed = req.query.some(([k]) => k === "_type") ||
      bodyParameters(req.body).some(([k]) => k === "_type");
    const referenced = await referencedEntries(
      ctx,
      sql,
      entries.map((e) => e.resource!),
      typed ? new Set(types) : undefined,
    );
    if (entries.length) bundle.entry = [...entries, ...referenced];
    await hideIncluded(ctx, sql, bundle);
    return { status: 200, body: bundle };
  };
  return Object.assign(handler, {
    levels: ["instance"] as OperationRequest["level"][],
    idempotent: true,
    access: [["Patient", "read"]] as [string, "read"][],
  });
}

function parametersOf(ctx: FhirContext, req: OperationRequest) {
  let since: string | undefined;
  let types = typesInCompartment();
  let count = ctx.defaultCount;
  let position: Position | undefined;
  for (const [key, value] of [...req.query, ...bodyParameters(req.body)]) {
    switch (key) {
      case "_since":
        if (!INSTANT.test(value) || Number.isNaN(Date.parse(value))) {
          throw badRequest(`_since must be an instant with a time zone, got "${value}"`, "_since");
        }
        since = value;
        break;
      case "_type": {
        const wanted = value.split(",").map((t) => t.trim()).filter(Boolean);
        for (const t of wanted) {
          if (!typesInCompartment().includes(t)) {
            throw badRequest(`_type: ${t} has no place in a patient's compartment`, "_type");
          }
        }
        types = typesInCompartment().filter((t) => wanted.includes(t));
        break;
      }
      case "_count":
        if (!/^\d+$/.test(value) || Number(value) < 1) {
          throw badRequest(`_count must be a positive integer, got "${value}"`, "_count");
        }
        count = Math.min(Number(value), ctx.maxCount);
        break;
      case "_cursor":
        position = decodePosition(value);
        break;
      case "_format":
      case "_pretty":
        break;
      default:
        // start, end, _elements…: not done here, so refused unless the client asked leniency.
        if (!req.lenient) {
          throw badRequest(
            `Parameter ${key} of $everything is not supported (Prefer: handling=lenient ignores it)`,
            key,
          );
        }
    }
  }
  return { since, types, count, position };
}

/** The parameters of a POST's Parameters body, as query pairs. */
function bodyParameters(body: unknown): [string, string][] {
  const p = body as { resourceType?: string; parameter?: Record<string, unknown>[] } | undefined;
  if (!p) return [];
  if (p.resourceType !== "Parameters") throw badRequest("$everything takes a Parameters body");
  return (p.parameter ?? []).map((param) => {
    const value = Object.entries(param).find(([k]) => k.startsWith("value"))?.[1];
    return [String(param.name), String(value ?? "")];
  });
}

function encodePosition(p: Position): string {
  return packCursor([p.type, p.cursor ?? null]);
}

function decodePosition(value: string): Position {
  const [type, cursor] = unpackCursor(
    value,
    (v): v is [string, string | null] => Array.isArray(v) && typeof v[0] === "string",
  );
  return { type, cursor: cursor ?? undefined };
}
