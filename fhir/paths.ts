/**
 * @module A FHIR REST path read into what it names (http.html): the whole system, the
 * CapabilityStatement, a type, an instance, a version, an operation at system, type or instance
 * level. The dispatch table (`interaction.ts`) and the access layer (`guard.ts`) both key on the
 * route's `kind`.
 */
import { notFound } from "../platform/outcome.ts";

export type Route =
  /** `[base]`: a batch or transaction Bundle. */
  | { kind: "system" }
  /** `metadata` (anything after it is refused). */
  | { kind: "metadata"; trailing?: string }
  /** `_history`: the whole system's history. */
  | { kind: "system-history"; trailing?: string }
  /** `AuditEvent[/id]`, when AuditEvents are the audit trail's (read-only). */
  | { kind: "audit"; id?: string; op?: string }
  /** `Type`: search, create, conditional update and delete. */
  | { kind: "type"; type: string }
  /** `Type/_search` */
  | { kind: "type-search"; type: string }
  /** `Type/_history` */
  | { kind: "type-history"; type: string }
  /** `Type/id`: read, update, patch, delete. */
  | { kind: "instance"; type: string; id: string }
  /** `Type/id/_history` */
  | { kind: "instance-history"; type: string; id: string }
  /** `Type/id/_history/vid` */
  | { kind: "version"; type: string; id: string; vid: string }
  /** `$name`: a system-level operation (`[base]/$export`). */
  | { kind: "system-operation"; op: string }
  /** `Type/$name`: a type-level operation (`Patient/$export`, `Observation/$validate`). */
  | { kind: "type-operation"; type: string; op: string }
  /** `Type/id/$name` */
  | { kind: "operation"; type: string; id: string; op: string }
  /** `Patient/id/Type`: a search of `Type` inside that patient's compartment. */
  | { kind: "compartment"; type: string; id: string; target: string }
  /** `Type/id/anything-else`: checked like the instance, then not found. */
  | { kind: "unknown"; type: string; id: string };

export type RouteKind = Route["kind"];

/**
 * The route `path` (the segments after the FHIR base) names. `audit`: AuditEvents are served
 * from the audit trail. Throws a 404 for a path deeper than any route.
 */
export function routeOf(path: string[], audit: boolean): Route {
  const [type, id, op, vid, ...extra] = path;
  if (extra.length) throw notFound(`No such endpoint: /${path.join("/")}`);
  if (type === "AuditEvent" && audit) return { kind: "audit", id, op };
  if (type === undefined) return { kind: "system" };
  if (type.startsWith("$")) {
    if (id !== undefined) throw notFound(`No such endpoint: /${path.join("/")}`);
    return { kind: "system-operation", op: type };
  }
  if (type === "metadata") return { kind: "metadata", trailing: id };
  if (type === "_history") return { kind: "system-history", trailing: id };
  if (id === undefined) return { kind: "type", type };
  if (id === "_search" && op === undefined) return { kind: "type-search", type };
  if (id === "_history" && op === undefined) return { kind: "type-history", type };
  if (id.startsWith("$") && op === undefined) return { kind: "type-operation", type, op: id };
  if (op === "_history") {
    return vid === undefined
      ? { kind: "instance-history", type, id }
      : { kind: "version", type, id, vid };
  }
  if (op?.startsWith("$") && vid === undefined) return { kind: "operation", type, id, op };
  if (type === "Patient" && op !== undefined && /^[A-Z][A-Za-z]+$/.test(op) && vid === undefined) {
    return { kind: "compartment", type, id, target: op };
  }
  if (op !== undefined) return { kind: "unknown", type, id };
  return { kind: "instance", type, id };
}

/** How a 405 names the route: `the base`, `Patient`, `Patient/1/_history`… */
export function routeName(route: Route): string {
  switch (route.kind) {
    case "system":
      return "the base";
    case "metadata":
      return "metadata";
    case "system-history":
      return "_history";
    case "audit":
      return "AuditEvent (the audit trail is written by the server only)";
    case "type":
      return route.type;
    case "type-search":
      return `${route.type}/_search`;
    case "type-history":
      return `${route.type}/_history`;
    case "instance-history":
    case "version":
      return `${route.type}/${route.id}/_history`;
    case "system-operation":
      return route.op;
    case "type-operation":
      return `${route.type}/${route.op}`;
    case "operation":
      return `${route.type}/${route.id}/${route.op}`;
    case "compartment":
      return `${route.type}/${route.id}/${route.target}`;
    case "instance":
    case "unknown":
      return `${route.type}/${route.id}`;
  }
}
