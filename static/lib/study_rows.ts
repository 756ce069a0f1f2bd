/**
 * @module The worklist's rows from one ImagingStudy searchset with its Patients, Tasks and
 * DiagnosticReports included: patient, date, modality, description, AI status and decision.
 */
import { humanName } from "./format.ts";
import { type Bundle, refId, relativeRef, type Resource, resourcesOf } from "./fhir_types.ts";

export type AiState = "none" | "queued" | "running" | "done" | "failed";

export interface AiStatus {
  state: AiState;
  taskId?: string;
  reportId?: string;
  /** Findings of the latest report (its result Observations other than the study decision). */
  findings?: number;
  reason?: string;
}

export interface StudyRow {
  id: string;
  patientId?: string;
  patientName: string;
  patientMrn?: string;
  date?: string;
  modality: string;
  description: string;
  instances?: number;
  ai: AiStatus;
  /** The model's decision from the latest report. */
  decision?: "positive" | "negative";
}

/** A Task's status as the worklist names it. */
export function taskState(status: string | undefined): AiState {
  switch (status) {
    case "draft":
    case "requested":
    case "received":
    case "accepted":
    case "ready":
    case "on-hold":
      return "queued";
    case "in-progress":
      return "running";
    case "completed":
      return "done";
    case undefined:
      return "none";
    default:
      return "failed"; // failed, cancelled, rejected, entered-in-error
  }
}

const stamp = (r: Resource) => r.meta?.lastUpdated ?? r.authoredOn ?? r.issued ?? "";
const latest = <T extends Resource>(rs: T[]) =>
  rs.slice().sort((a, b) => stamp(b).localeCompare(stamp(a)))[0] as T | undefined;

/** The AI status of a study from its Tasks and reports (the latest of each). */
export function aiStatusOf(tasks: Resource[], reports: Resource[]): AiStatus {
  const task = latest(tasks);
  const state = taskState(task?.status);
  const output = task?.output?.find((o: Resource) => o.valueReference)?.valueReference?.reference;
  const report = (output && reports.find((r) => r.id === refId(output))) ?? latest(reports);
  const status: AiStatus = { state: task ? state : report ? "done" : "none" };
  if (task?.id) status.taskId = task.id;
  if (report?.id) {
    status.reportId = report.id;
    status.findings = findingCount(report);
  }
  if (state === "failed") status.reason = task?.statusReason?.text;
  return status;
}

/** The findings a report lists: its results, less the study-level decision Observation. */
export function findingCount(report: Resource): number {
  return Math.max(0, (report.result?.length ?? 1) - 1);
}

/** Positive or negative, from the report's conclusion code (a code, or "No … found"). */
export function decisionOf(report: Resource | undefined): "positive" | "negative" | undefined {
  const code = report?.conclusionCode?.[0];
  if (!code) return undefined;
  return code.coding?.length ? "positive" : "negative";
}

/** The rows of one page of `ImagingStudy?_include=ImagingStudy:subject&_revinclude=…`. */
export function studyRows(bundle: Bundle): StudyRow[] {
  const patients = new Map(resourcesOf(bundle, "Patient").map((p) => [p.id, p]));
  const tasks = resourcesOf(bundle, "Task");
  const reports = resourcesOf(bundle, "DiagnosticReport");
  return resourcesOf(bundle, "ImagingStudy", "match").map((s) => {
    const ref = `ImagingStudy/${s.id}`;
    const patientId = refId(s.subject?.reference);
    const patient = patientId ? patients.get(patientId) : undefined;
    const mine = tasks.filter((t) => relativeRef(t.focus?.reference) === ref);
    const theirs = reports.filter((r) =>
      (r.imagingStudy ?? []).some((i: { reference?: string }) => relativeRef(i.reference) === ref)
    );
    const ai = aiStatusOf(mine, theirs);
    const report = theirs.find((r) => r.id === ai.reportId);
    const modalities = [
      ...new Set([
        ...(s.modality ?? []).map((m: { code?: string }) => m.code),
        ...(s.series ?? []).map((x: { modality?: { code?: string } }) => x.modality?.code),
      ].filter(Boolean)),
    ];
    return {
      id: s.id!,
      patientId,
      patientName: patient ? humanName(patient.name) : s.subject?.display ?? "—",
      patientMrn: patient?.identifier?.[0]?.value,
      date: s.started ?? s.series?.[0]?.started,
      modality: modalities.join(", ") || "—",
      description: s.description ?? s.series?.[0]?.description ?? "",
      instances: s.numberOfInstances,
      ai,
      decision: ai.state === "done" || ai.reportId ? decisionOf(report) : undefined,
    };
  });
}
