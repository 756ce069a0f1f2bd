/** @module The worklist's filters as one FHIR ImagingStudy search (newest first, one page). */
import type { AiState } from "./study_rows.ts";

export interface WorklistFilter {
  name?: string;
  patientId?: string;
  /** `YYYY-MM-DD`, inclusive. */
  from?: string;
  to?: string;
  status?: Exclude<AiState, "none"> | "";
}

export const PAGE_SIZE = 25;

/** Task statuses behind each AI status of the filter. */
export const STATUS_TASKS: Record<Exclude<AiState, "none">, string> = {
  queued: "draft,requested,received,accepted,ready,on-hold",
  running: "in-progress",
  done: "completed",
  failed: "failed,cancelled,rejected,entered-in-error",
};

/**
 * `ImagingStudy?…` with the Patient included and the Tasks and reports that point at each study
 * reverse-included, so a page is one request.
 */
export function worklistQuery(f: WorklistFilter, count = PAGE_SIZE): string {
  const q = new URLSearchParams();
  q.set("_sort", "-started");
  q.set("_count", String(count));
  q.append("_include", "ImagingStudy:subject");
  q.append("_revinclude", "Task:focus");
  q.append("_revinclude", "DiagnosticReport:imaging-study");
  if (f.name?.trim()) q.set("patient.name", f.name.trim());
  if (f.patientId?.trim()) q.set("patient.identifier", f.patientId.trim());
  if (f.from) q.append("started", `ge${f.from}`);
  if (f.to) q.append("started", `le${f.to}`);
  if (f.status) q.set("_has:Task:focus:status", STATUS_TASKS[f.status]);
  return `ImagingStudy?${q}`;
}

/** The filter as the page's own query string (so a reload or a shared link keeps it). */
export function filterToSearch(f: WorklistFilter): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(f)) if (v) q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** The filter from the page's query string. */
export function filterFromSearch(q: URLSearchParams): WorklistFilter {
  const status = q.get("status") ?? "";
  return {
    name: q.get("name") ?? "",
    patientId: q.get("patientId") ?? "",
    from: q.get("from") ?? "",
    to: q.get("to") ?? "",
    status: status in STATUS_TASKS ? status as WorklistFilter["status"] : "",
  };
}

/** A searchset link (absolute) as a path relative to /fhir, for the next request. */
export function fhirPathOf(link: string): string {
  const at = link.indexOf("/fhir/");
  return at < 0 ? link : link.slice(at + "/fhir/".length);
}
