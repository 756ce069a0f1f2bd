/**
 * @module The analysis job: what the API puts on the queue and a sidecar takes off it, the contract
 * between the two. A job carries ids, not data: the sidecar re-reads the study, so a retry or a
 * redelivery is safe.
 */

export type Profile = "fast" | "standard" | "research";
export type Priority = "routine" | "stat";

export interface AnalysisJob {
  /** Unique per request (uuid). */
  jobId: string;
  /** The FHIR Task that tracks the job. */
  taskId: string;
  imagingStudyId: string;
  studyInstanceUid: string;
  /** `Patient/{id}` */
  patient: string;
  model: string;
  modelVersion: string;
  profile: Profile;
  threshold: number;
  priority: Priority;
  /**
   * Same study content, model version and parameters → same key: the DiagnosticReport carries it
   * as an identifier, so a redelivered or duplicate job never files a second report.
   */
  idempotencyKey: string;
  /** The request that asked for it, carried into the sidecar's logs. */
  requestId?: string;
  /** That request's trace (W3C traceparent), continued by the sidecar's span (OpenTelemetry). */
  traceparent?: string;
  enqueuedAt: string;
  /**
   * The order this job fulfils (`ServiceRequest/{id}`), when an order started it: the report and
   * its Provenance name it (`basedOn`, `entity`). Absent for `$analyze` and the rules.
   */
  order?: string;
  /**
   * Who the report names as `performer` (never the model: R4 allows no Device there): the
   * order's performers (Practitioner, PractitionerRole, Organization, CareTeam) and this
   * service's Organization (ORGANIZATION_NAME).
   */
  performers?: string[];
  /** This service's Organization (`Organization/{id}`): the model acts on its behalf. */
  organization?: string;
}

/** The identifier system of the idempotency key on DiagnosticReports and Observations. */
export const JOB_KEY_SYSTEM = "urn:imaging-ai:analysis-job";

/**
 * The idempotency key: SHA-256 of the study, its content version (its image series and their
 * instance counts: `analysis/analyze.ts` `imageContent`), the model version and the parameters;
 * for a job an order started, the order too (`ServiceRequest/{id}`, not its version), so each
 * order gets its own report while a redelivered job keeps its key. Without an order the key is
 * what it always was.
 */
export async function idempotencyKey(parts: {
  studyInstanceUid: string;
  contentVersion: string;
  model: string;
  modelVersion: string;
  profile: Profile;
  threshold: number;
  order?: string;
}): Promise<string> {
  const text = JSON.stringify([
    parts.studyInstanceUid,
    parts.contentVersion,
    parts.model,
    parts.modelVersion,
    parts.profile,
    parts.threshold,
    ...(parts.order ? [parts.order] : []),
  ]);
  const hash = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(hash), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The scope a sidecar's client is registered with: read studies and Tasks, store its DICOM results
 * (SEG, SR) into the study, file reports and their Provenance, close Tasks (checked by the API like
 * any client's). */
export const WORKER_SCOPE = [
  "system/ImagingStudy.crs",
  "system/Patient.rs",
  "system/Task.rus",
  "system/Device.rs",
  "system/DiagnosticReport.crus",
  "system/Observation.crus",
  "system/DocumentReference.crus",
  "system/Provenance.crs",
].join(" ");
