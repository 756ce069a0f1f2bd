// deno-lint-ignore-file no-explicit-any
/**
 * @module What the deletion suites share: a stored study of two series (a synthetic CT of three
 * slices and two secondary captures), its objects in the store, QIDO and WADO answers, the
 * AuditEvents of a deletion, and derived resources made through FHIR.
 */
import assert from "node:assert/strict";
import { generateStudy } from "../../dicom/synth/ct.ts";
import { stowInstances } from "../../dicom/synth/stow.ts";
import { fhirJson, type TestContext } from "../_harness.ts";
import { imagingStudyOf } from "../_analysis.ts";
import { makeInstance, newUid } from "./_dicomweb_util.ts";

export interface StoredStudy {
  studyUid: string;
  ctSeries: string;
  ctSops: string[];
  otSeries: string;
  otSops: string[];
  /** The instances' Part 10 files, to store them again. */
  files: Uint8Array[];
  imagingStudyId: string;
}

/** Stores a study of two series through STOW-RS and waits for its ImagingStudy. */
export async function storeStudy(
  ctx: Pick<TestContext, "origin" | "fetch">,
  headers: HeadersInit = {},
): Promise<StoredStudy> {
  const ct = generateStudy({
    seed: Math.floor(Math.random() * 2 ** 31),
    slices: 3,
    rows: 32,
    cols: 32,
    lesions: 0,
  });
  const studyUid = ct.study.studyInstanceUid;
  const otSeries = newUid();
  const otSops = [newUid(), newUid()];
  const ot = otSops.map((sop, i) =>
    makeInstance({
      StudyInstanceUID: studyUid,
      SeriesInstanceUID: otSeries,
      SOPInstanceUID: sop,
      PatientID: ct.patient.id,
      IssuerOfPatientID: ct.patient.issuer,
      PatientName: ct.patient.name,
      SeriesNumber: 9,
      InstanceNumber: i + 1,
    })
  );
  const files = [...ct.instances, ...ot];
  const stow = await stowInstances(`${ctx.origin}/dicomweb`, files, { headers });
  assert.equal(stow.status, 200, stow.text);
  assert.equal(stow.stored, files.length);
  const study = await imagingStudyOf(ctx, studyUid);
  return {
    studyUid,
    ctSeries: ct.study.seriesInstanceUid,
    ctSops: ct.plan.sopInstanceUids,
    otSeries,
    otSops,
    files,
    imagingStudyId: study.id,
  };
}

/** The object keys under the study's folder, or one series' or instance's. */
export async function objectsOf(
  ctx: Pick<TestContext, "services">,
  studyUid: string,
  seriesUid?: string,
  sopUid?: string,
): Promise<string[]> {
  const prefix = `dicom/${studyUid}/${
    seriesUid ? `${seriesUid}/${sopUid ? `${sopUid}.` : ""}` : ""
  }`;
  return (await Array.fromAsync(ctx.services.store.list(prefix))).map((o) => o.key).sort();
}

/** A DICOMweb request; answers the status and the parsed JSON body (or the text). */
export async function dicomweb(
  ctx: Pick<TestContext, "origin">,
  method: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any }> {
  const res = await fetch(`${ctx.origin}/dicomweb${path}`, {
    method,
    headers: { Accept: method === "GET" ? "application/dicom+json" : "*/*", ...headers },
  });
  const text = await res.text();
  let body: any = text;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch { /* not JSON */ }
  return { status: res.status, body };
}

/** The SOP Instance UIDs QIDO-RS lists for the study (none when it is not found). */
export async function qidoInstances(
  ctx: Pick<TestContext, "origin">,
  studyUid: string,
): Promise<string[]> {
  const r = await dicomweb(ctx, "GET", `/instances?StudyInstanceUID=${studyUid}`);
  assert.equal(r.status, 200);
  return (r.body as any[]).map((i) => i["00080018"].Value[0]).sort();
}

/** The status of a WADO-RS retrieve of `path` (multipart, any transfer syntax). */
export async function wadoStatus(ctx: Pick<TestContext, "origin">, path: string): Promise<number> {
  const res = await fetch(`${ctx.origin}/dicomweb${path}`, {
    headers: { Accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' },
  });
  await res.body?.cancel();
  return res.status;
}

/** The deletion AuditEvents naming the ImagingStudy (written first: the log is buffered). */
export async function deletionEvents(
  ctx: Pick<TestContext, "fetch" | "services">,
  imagingStudyId: string,
): Promise<any[]> {
  await ctx.services.audit.flush();
  const r = await fhirJson(
    ctx,
    "GET",
    `AuditEvent?entity=ImagingStudy/${imagingStudyId}&subtype=delete&_count=100`,
  );
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return (r.body.entry ?? []).map((e: any) => e.resource);
}

/** Makes a resource through FHIR; answers its id. */
export async function create(ctx: Pick<TestContext, "fetch">, resource: any): Promise<string> {
  const r = await fhirJson(ctx, "POST", resource.resourceType, resource);
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.id;
}

/**
 * The resources an analysis derives from the study (report with a result file, Observations by
 * derivedFrom and focus, a DocumentReference, a Task), and one that names another ImagingStudy;
 * answers their `Type/id` and the result file's object key.
 */
export async function deriveResults(
  ctx: Pick<TestContext, "fetch" | "origin" | "services">,
  s: StoredStudy,
): Promise<{ derived: string[]; unrelated: string; file: string }> {
  const key = Array.from(
    crypto.getRandomValues(new Uint8Array(32)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  const put = await fetch(`${ctx.origin}/uploads/results/${key}/mask.nii.gz`, {
    method: "PUT",
    body: new Uint8Array([31, 139, 8, 0]),
  });
  assert.equal(put.status, 201, await put.text());
  const study = { reference: `ImagingStudy/${s.imagingStudyId}` };
  const code = { text: "test finding" };
  const resources = [
    {
      resourceType: "DiagnosticReport",
      status: "final",
      code,
      imagingStudy: [study],
      presentedForm: [{
        contentType: "application/gzip",
        url: `${ctx.origin}/uploads/results/${key}/mask.nii.gz`,
      }],
    },
    { resourceType: "Observation", status: "final", code, derivedFrom: [study] },
    { resourceType: "Observation", status: "final", code, focus: [study] },
    {
      resourceType: "DocumentReference",
      status: "current",
      content: [{ attachment: { contentType: "application/dicom", url: "urn:x" } }],
      context: { related: [study] },
    },
    { resourceType: "Task", status: "completed", intent: "order", focus: study },
  ];
  const derived: string[] = [];
  for (const r of resources) derived.push(`${r.resourceType}/${await create(ctx, r)}`);
  const unrelated = `Observation/${await create(ctx, {
    resourceType: "Observation",
    status: "final",
    code,
    derivedFrom: [{ reference: "ImagingStudy/someone-else" }],
  })}`;
  return { derived, unrelated, file: `results/${key}/mask.nii.gz` };
}

/** The status of GET `Type/id` through FHIR. */
export async function fhirStatus(ctx: Pick<TestContext, "fetch">, ref: string): Promise<number> {
  return (await fhirJson(ctx, "GET", ref)).status;
}
