/**
 * @module What an HTTP request was, for the audit trail: the RESTful interaction (subtype and
 * action), the entity (`Type/id`, or the type searched with its query) and the patient when the
 * request names one, for FHIR, DICOMweb, uploads, exports, live events and the admin API.
 */
import type { AuditRecord } from "./log.ts";

type Described = Pick<AuditRecord, "kind" | "subtype" | "action" | "entity" | "query" | "patient">;

/** The audit description of `method path?search`; undefined for a route not audited. */
export function describeRequest(method: string, path: string, search: string): Described {
  const m = method.toUpperCase();
  const seg = path.split("/").filter(Boolean).map((s) => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  });
  const query = search.replace(/^\?/, "") || undefined;
  const write = m === "POST" ? "C" : m === "DELETE" ? "D" : m === "GET" || m === "HEAD" ? "R" : "U";
  if (seg[0] === "fhir") return fhir(m, seg.slice(1), query);
  if (seg[0] === "dicomweb") {
    const qido = /\/(studies|series|instances)$/.test(path) && m === "GET";
    const study = seg[1] === "studies" && seg[2] ? seg[2] : undefined;
    if (m === "DELETE") {
      // A deletion names what it deletes: the study, and the series and instance when given.
      const uids = new URLSearchParams({
        ...(study ? { StudyInstanceUID: study } : {}),
        ...(seg[3] === "series" && seg[4] ? { SeriesInstanceUID: seg[4] } : {}),
        ...(seg[5] === "instances" && seg[6] ? { SOPInstanceUID: seg[6] } : {}),
      }).toString();
      return {
        kind: "rest",
        subtype: "delete",
        action: "D",
        entity: "ImagingStudy",
        query: uids || undefined,
      };
    }
    return {
      kind: "rest",
      subtype: m === "POST" ? "create" : qido ? "search-type" : "read",
      action: m === "POST" ? "C" : "R",
      entity: "ImagingStudy",
      query: qido ? query : study ? `StudyInstanceUID=${study}` : undefined,
    };
  }
  if (seg[0] === "reports") {
    return {
      kind: "export",
      subtype: `findings.${(seg[2] ?? "").split(".").pop()}`,
      action: "R",
      entity: `DiagnosticReport/${seg[1]}`,
    };
  }
  if (seg[0] === "uploads") {
    const entity = seg[1] === "results" ? "DiagnosticReport" : "ImagingStudy";
    return { kind: "rest", subtype: m === "GET" ? "read" : "create", action: write, entity };
  }
  if (seg[0] === "events") {
    return { kind: "rest", subtype: "search-type", action: "R", entity: "Task", query };
  }
  const id = seg[2];
  const collection = !id && (seg[1] === "users" || seg[1] === "clients");
  return {
    kind: "rest",
    subtype: m === "GET"
      ? (collection ? "search-type" : "read")
      : m === "POST"
      ? "create"
      : m === "DELETE"
      ? "delete"
      : "update",
    action: write,
    entity: `${seg.slice(0, 2).join("/")}${id ? `/${id}` : ""}` || path,
  };
}

function fhir(m: string, seg: string[], query: string | undefined): Described {
  const [type, id, op, vid] = seg;
  const rest = (subtype: string, action: AuditRecord["action"], entity?: string) => ({
    kind: "rest" as const,
    subtype,
    action,
    entity,
    patient: type === "Patient" && id && !/^[_$]/.test(id) ? `Patient/${id}` : undefined,
  });
  if (!type) return { ...rest(m === "POST" ? "batch" : "search-system", "E"), query };
  // Operations at the system (`$export`, `$export-status/{id}`) and type (`Patient/$export`)
  // level: the entity is the operation or the type, never a reference (no resource has such an id).
  if (type.startsWith("$")) return { ...rest("operation", "E", type), query };
  if (id?.startsWith("$")) return { ...rest("operation", "E", type), query };
  if (type === "_history") return { ...rest("history-system", "R"), query };
  if (id === undefined) {
    if (m === "GET" || m === "HEAD") return { ...rest("search-type", "R", type), query };
    if (m === "POST") return { ...rest("create", "C", type), query };
    if (m === "PUT") return { ...rest("update", "U", type), query };
    return { ...rest("delete", "D", type), query };
  }
  if (id === "_search") return { ...rest("search-type", "R", type), query };
  if (id === "_history") return { ...rest("history-type", "R", type), query };
  const entity = `${type}/${id}`;
  if (op?.startsWith("$")) return rest("operation", "E", entity);
  // A compartment search (`Patient/{id}/Observation`): a search of that type, for that patient.
  if (type === "Patient" && op && /^[A-Z]/.test(op) && !vid) {
    return { ...rest("search-type", "R", op), query };
  }
  if (op === "_history") return rest(vid ? "vread" : "history-instance", "R", entity);
  if (m === "GET" || m === "HEAD") return rest("read", "R", entity);
  if (m === "DELETE") return rest("delete", "D", entity);
  return rest(m === "PATCH" ? "patch" : "update", "U", entity);
}
