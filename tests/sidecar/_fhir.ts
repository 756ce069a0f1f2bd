/** @module FHIR fixtures of the sidecar's tests: a Patient, an ImagingStudy and the job's Task. */
import type { AnalysisJob } from "../../queue/jobs.ts";
import { fhirJson, type TestContext, uniq } from "../_harness.ts";

/** Creates a Patient, an ImagingStudy (for `studyUid`) and a requested Task; returns a job. */
export async function createJobResources(
  ctx: TestContext,
  options: { studyUid?: string; imagingStudyId?: string; patient?: string; model?: string } = {},
): Promise<AnalysisJob> {
  const patient = options.patient ??
    `Patient/${
      (await fhirJson(ctx, "POST", "Patient", {
        resourceType: "Patient",
        name: [{ family: uniq("Test") }],
      })).body.id
    }`;
  const studyUid = options.studyUid ??
    `2.25.${BigInt(`0x${crypto.randomUUID().replaceAll("-", "")}`)}`;
  const imagingStudyId = options.imagingStudyId ?? (await fhirJson(ctx, "POST", "ImagingStudy", {
    resourceType: "ImagingStudy",
    status: "available",
    subject: { reference: patient },
    identifier: [{ system: "urn:dicom:uid", value: `urn:oid:${studyUid}` }],
  })).body.id;
  const task = await fhirJson(ctx, "POST", "Task", {
    resourceType: "Task",
    status: "requested",
    intent: "order",
    code: { text: "Analyse imaging study" },
    focus: { reference: `ImagingStudy/${imagingStudyId}` },
    for: { reference: patient },
    authoredOn: new Date().toISOString(),
    input: [{ type: { text: "model" }, valueString: options.model ?? "threshold-demo" }],
  });
  if (task.status !== 201) throw new Error(`Task: ${task.status} ${JSON.stringify(task.body)}`);
  const key = Array.from(
    crypto.getRandomValues(new Uint8Array(32)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  return {
    jobId: crypto.randomUUID(),
    taskId: task.body.id,
    imagingStudyId,
    studyInstanceUid: studyUid,
    patient,
    model: options.model ?? "threshold-demo",
    modelVersion: "1.0.0",
    profile: "standard",
    threshold: 0.5,
    priority: "routine",
    idempotencyKey: key,
    requestId: uniq("req"),
    enqueuedAt: new Date().toISOString(),
  };
}

/** How many resources of `type` match `query` (a search, `_total=accurate`). */
export async function count(ctx: TestContext, type: string, query: string): Promise<number> {
  const res = await fhirJson(ctx, "GET", `${type}?${query}&_total=accurate`);
  if (res.status !== 200) {
    throw new Error(`${type}?${query}: ${res.status} ${JSON.stringify(res.body)}`);
  }
  return res.body.total;
}
