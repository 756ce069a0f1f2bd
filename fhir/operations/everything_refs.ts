/**
 * @module What `$everything` adds to a page beside the compartment (Patient-everything: "and any
 * resource referenced from those, including binaries and attachments"): every resource a page's
 * resources refer to by a relative reference (or one to this server's own base URL), and every
 * Binary an Attachment's `url` names, read by id in one search per type and returned as `include`
 * entries. The caller's reach applies afterwards as to any include (`guard.ts#hideIncluded`).
 */
import type { BundleEntry, Resource } from "@medplum/fhirtypes";
import type { Sql } from "../../db/db.ts";
import type { FhirContext } from "../context.ts";
import { isSupportedType } from "../resource_types.ts";
import { entryOf, executeSearch } from "../search/execute.ts";
import { parseSearch } from "../search/parse.ts";
import { ID_PATTERN } from "../validate.ts";

/** At most this many included resources per page (as `_include`'s limit). */
const MAX_REFERENCED = 1000;
/** Ids per `_id` search. */
const BATCH = 100;

/** `Type/id` of every resource `resources` refer to that is not among them. */
export function referencedKeys(resources: Resource[], baseUrl: string): Map<string, Set<string>> {
  const present = new Set(resources.map((r) => `${r.resourceType}/${r.id}`));
  const out = new Map<string, Set<string>>();
  let count = 0;
  const add = (ref: string) => {
    if (count >= MAX_REFERENCED) return;
    const local = ref.startsWith(`${baseUrl}/`) ? ref.slice(baseUrl.length + 1) : ref;
    const [type, id, ...rest] = local.split("/");
    if (rest.length || !id || !isSupportedType(type) || !ID_PATTERN.test(id)) return;
    if (present.has(`${type}/${id}`)) return;
    const ids = out.get(type) ?? new Set<string>();
    if (!ids.has(id)) count++;
    ids.add(id);
    out.set(type, ids);
  };
  const visit = (value: unknown, key?: string) => {
    if (typeof value === "string") {
      if (key === "reference") add(value);
      // An Attachment's url naming a Binary of this server.
      else if (key === "url" && /(^|\/)Binary\/[^/]+$/.test(value)) add(value);
    } else if (Array.isArray(value)) {
      for (const item of value) visit(item, key);
    } else if (value && typeof value === "object") {
      for (const [k, v] of Object.entries(value)) visit(v, k);
    }
  };
  for (const r of resources) visit(r);
  return out;
}

/** The resources `resources` refer to, as `include` entries (deleted or missing ones left out). */
export async function referencedEntries(
  ctx: FhirContext,
  sql: Sql,
  resources: Resource[],
  /** Only these types (`_type`); absent: any. */
  types?: ReadonlySet<string>,
): Promise<BundleEntry[]> {
  const entries: BundleEntry[] = [];
  for (const [type, idSet] of referencedKeys(resources, ctx.baseUrl)) {
    if (types && !types.has(type)) continue;
    const ids = [...idSet];
    for (let i = 0; i < ids.length; i += BATCH) {
      const batch = ids.slice(i, i + BATCH);
      const request = parseSearch(type, [["_id", batch.join(",")], ["_total", "none"]], {
        lenient: false,
        defaultCount: batch.length,
        maxCount: batch.length,
        baseUrl: ctx.baseUrl,
      });
      for (const resource of (await executeSearch(sql, request)).matches) {
        entries.push(entryOf(ctx, resource, "include"));
      }
    }
  }
  return entries;
}
