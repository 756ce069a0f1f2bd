/**
 * @module Route classes: a request's method and concrete path turned into a low-cardinality label
 * such as `GET /fhir/Patient/{id}/_history/{vid}`, for request statistics and metrics.
 *
 * Every class comes from a fixed grammar of this server's routes, so the set of classes is bounded
 * whatever clients send: ids, UIDs, keys and file names become placeholders; a FHIR resource type
 * is kept only when it is one this server stores (else `{type}`), an operation name only when it is
 * a known one (else `{op}`); methods outside the standard set are `OTHER`; query strings and
 * fragments are dropped; and any path outside the grammar is `METHOD {other}`, never the raw path.
 */
import { isSupportedType } from "../fhir/resource_types.ts";

/** The methods kept as they are; any other is reported as `OTHER`. */
const METHODS: ReadonlySet<string> = new Set([
  "GET",
  "HEAD",
  "POST",
  "PUT",
  "PATCH",
  "DELETE",
  "OPTIONS",
]);

/**
 * Operation names kept in a class: this server's (`$analyze`) and the standard FHIR ones a client
 * may plausibly call. Others become `{op}`, so made-up names cannot add classes.
 */
const OPERATIONS: ReadonlySet<string> = new Set([
  "$analyze",
  "$everything",
  "$validate",
  "$meta",
  "$meta-add",
  "$meta-delete",
  "$export",
  "$expand",
  "$lookup",
  "$translate",
  "$validate-code",
  "$subsumes",
  "$document",
  "$lastn",
  "$stats",
  "$match",
  "$process-message",
  "$graphql",
]);

/** DICOMweb path levels in order, each followed by its UID (or frame list) placeholder. */
const DICOM_LEVELS = ["studies", "series", "instances", "frames"];
const DICOM_IDS = ["{study}", "{series}", "{instance}", "{frames}"];
const DICOM_TERMINALS: ReadonlySet<string> = new Set(["metadata", "rendered", "thumbnail"]);

/** The single segments under `/auth`. */
const AUTH_PATHS: ReadonlySet<string> = new Set(["token", "revoke", "me", "users", "clients"]);

/** Paths are never classified past this many segments (none of the routes is this deep). */
const MAX_SEGMENTS = 16;

/** The placeholder for any path outside the grammar. */
export const OTHER_PATH = "{other}";

/** A method as classes and metrics show it: upper case, one of the standard set, or `OTHER`. */
export function normalizeMethod(method: string): string {
  if (METHODS.has(method)) return method;
  const upper = method.toUpperCase();
  return METHODS.has(upper) ? upper : "OTHER";
}

/**
 * The route class of a request: `"<METHOD> <path template>"`, e.g.
 * `routeClass("GET", "/fhir/Patient/123/_history/4")` is `"GET /fhir/Patient/{id}/_history/{vid}"`.
 * Paths outside the grammar give `"<METHOD> {other}"`.
 */
export function routeClass(method: string, path: string): string {
  return `${normalizeMethod(method)} ${pathClass(path)}`;
}

/** The path template of a concrete path (the part of a route class after the method). */
export function pathClass(path: string): string {
  const s = segmentsOf(path);
  if (!s || s.length === 0) return OTHER_PATH;
  const n = s.length - 1; // segments after the first
  const a = s[1];
  switch (s[0]) {
    case "fhir":
      return fhirClass(s);
    case "dicomweb":
      return dicomClass(s);
    case "uploads":
      if (a === "nifti" && n <= 2) return n === 1 ? "/uploads/nifti" : "/uploads/nifti/{id}";
      if (a === "results" && n === 3) return "/uploads/results/{key}/{name}";
      return OTHER_PATH;
    case "reports":
      if (n === 2 && (s[2] === "findings.json" || s[2] === "findings.xlsx")) {
        return `/reports/{id}/${s[2]}`;
      }
      return OTHER_PATH;
    case "auth":
      if (n === 1 && AUTH_PATHS.has(a)) return `/auth/${a}`;
      if (n === 2 && (a === "users" || a === "clients")) return `/auth/${a}/{id}`;
      return OTHER_PATH;
    case ".well-known":
      if (n === 1 && (a === "jwks.json" || a === "smart-configuration")) return `/.well-known/${a}`;
      return OTHER_PATH;
    case "health":
      if (n === 0) return "/health";
      return n === 1 && a === "live" ? "/health/live" : OTHER_PATH;
    case "events":
      return n === 0 ? "/events" : OTHER_PATH;
    case "metrics":
      return n === 0 ? "/metrics" : OTHER_PATH;
    case "admin":
      return n === 1 && a === "stats" ? "/admin/stats" : OTHER_PATH;
  }
  return OTHER_PATH;
}

/** The decoded, non-empty segments of a path (query and fragment dropped); null when too deep. */
function segmentsOf(path: string): string[] | null {
  let end = path.length;
  const q = path.indexOf("?");
  if (q >= 0) end = q;
  const h = path.indexOf("#");
  if (h >= 0 && h < end) end = h;
  let p = path.slice(0, end);
  if (!p.startsWith("/")) {
    // An absolute URL: keep its path.
    const scheme = p.indexOf("://");
    if (scheme < 0) return null;
    const slash = p.indexOf("/", scheme + 3);
    p = slash < 0 ? "/" : p.slice(slash);
  }
  const out: string[] = [];
  for (const raw of p.split("/")) {
    if (!raw) continue;
    if (out.length === MAX_SEGMENTS) return null;
    out.push(decode(raw));
  }
  return out;
}

function decode(segment: string): string {
  if (!segment.includes("%")) return segment;
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** Segments from `fhir` on. */
function fhirClass(segments: string[]): string {
  const n = segments.length - 1;
  if (n === 0) return "/fhir";
  const first = segments[1];
  const id = segments[2];
  const op = segments[3];
  if (n === 1) {
    if (first === "metadata" || first === "_history") return `/fhir/${first}`;
    if (first.startsWith("$")) return `/fhir/${operation(first)}`;
  }
  if (n === 2 && first === ".well-known" && id === "smart-configuration") {
    return "/fhir/.well-known/smart-configuration";
  }
  // Bulk Data's job status and files (routes/bulk.ts).
  if (n === 2 && first === "$export-status") return "/fhir/$export-status/{id}";
  if (n === 3 && first === "$export-file") return "/fhir/$export-file/{id}/{file}";
  const type = isSupportedType(first) ? `/fhir/${first}` : "/fhir/{type}";
  if (n === 1) return type;
  if (n === 2) {
    if (id === "_search" || id === "_history") return `${type}/${id}`;
    if (id.startsWith("$")) return `${type}/${operation(id)}`;
    return `${type}/{id}`;
  }
  if (op === "_history") {
    if (n === 3) return `${type}/{id}/_history`;
    if (n === 4) return `${type}/{id}/_history/{vid}`;
    return OTHER_PATH;
  }
  if (n === 3 && op.startsWith("$")) return `${type}/{id}/${operation(op)}`;
  // A compartment search: the searched type is a class of its own only when it is one we serve.
  if (n === 3 && first === "Patient") return `${type}/{id}/${isSupportedType(op) ? op : "{type}"}`;
  return OTHER_PATH;
}

function operation(name: string): string {
  return OPERATIONS.has(name) ? name : "{op}";
}

/**
 * Segments from `dicomweb` on. After it: `studies`, `series`, `instances` and `frames` in that
 * order (any may be skipped but `frames`, which needs an instance), each followed by its UID; then
 * at most one of `metadata`, `rendered`, `thumbnail`, or `bulkdata/…` (any depth).
 */
function dicomClass(s: string[]): string {
  let out = "/dicomweb";
  let level = -1;
  let hasId = false;
  for (let i = 1; i < s.length; i++) {
    const seg = s[i];
    const next = DICOM_LEVELS.indexOf(seg);
    const allowed = next > level && (next < 3 || (level === 2 && hasId));
    if (next >= 0 && allowed) {
      out += `/${seg}`;
      level = next;
      hasId = i + 1 < s.length;
      if (hasId) {
        out += `/${DICOM_IDS[next]}`;
        i++;
      }
      continue;
    }
    if (hasId && i === s.length - 1 && DICOM_TERMINALS.has(seg)) return `${out}/${seg}`;
    if (hasId && seg === "bulkdata" && level < 3) return `${out}/bulkdata/{path}`;
    return OTHER_PATH;
  }
  return level < 0 ? OTHER_PATH : out;
}
