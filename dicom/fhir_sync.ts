/**
 * @module Keeps a study's FHIR resources in step with its DICOM index: the Patient (found by
 * identifier or created once) and the ImagingStudy (one per StudyInstanceUID, built from the
 * index), made in the transaction that stores the study's first batch, under the study's lock, and
 * rebuilt later by `study_sync.ts` (coalesced, one replica at a time); and the server's DICOMweb
 * Endpoint. Writes go through the FHIR interactions, so validation, versions and history apply.
 */
import type { Endpoint, ImagingStudy, Patient } from "@medplum/fhirtypes";
import type { Sql } from "../db/db.ts";
import * as repo from "../db/dicom_repo.ts";
import { interact } from "../fhir/interaction.ts";
import type { DicomContext } from "./context.ts";
import { ENDPOINT_ID, imagingStudy, patientFromStudy, patientIdentifier } from "./imaging_study.ts";

/**
 * A token part for a conditional create's query string: FHIR search escaping (`\`, `,`, `|`, `$`),
 * then URL encoding, since the condition is parsed as a query string (a Patient ID `A&B` or `A+B`
 * would otherwise fail the whole batch or never match, creating a second Patient).
 */
function esc(value: string): string {
  return encodeURIComponent(value.replace(/[\\,|$]/g, (c) => `\\${c}`));
}

export async function syncStudyResources(
  deps: DicomContext,
  tx: Sql,
  studyUid: string,
): Promise<void> {
  const study = await repo.readStudy(tx, studyUid);
  if (!study) return;
  const patientRef = study.patient_ref ?? await ensurePatient(deps, tx, study);
  const [series, instances] = await Promise.all([
    repo.listSeries(tx, studyUid),
    repo.listInstances(tx, { studyUid }),
  ]);
  const offset = firstTimezone(study.attrs);
  let id = study.imaging_study_id;
  if (!id) {
    const created = await interact(deps.fhir, {
      method: "POST",
      path: ["ImagingStudy"],
      query: [],
      body: imagingStudy({ study, series, instances, patientRef, timezoneOffset: offset }),
      ifNoneExist: `identifier=urn:dicom:uid|${esc(`urn:oid:${studyUid}`)}`,
    }, tx);
    id = (created.body as ImagingStudy).id!;
    // A study someone created through FHIR first: take it over with the DICOM content.
    if (created.status === 200) await putImagingStudy();
  } else {
    await putImagingStudy();
  }
  await repo.setStudyResources(tx, studyUid, patientRef, id);

  async function putImagingStudy() {
    await interact(deps.fhir, {
      method: "PUT",
      path: ["ImagingStudy", id!],
      query: [],
      body: imagingStudy(
        { study: study!, series, instances, patientRef, timezoneOffset: offset },
        id!,
      ),
    }, tx);
  }
}

async function ensurePatient(deps: DicomContext, tx: Sql, study: repo.StudyRow): Promise<string> {
  const patient = patientFromStudy(study);
  let ifNoneExist: string | undefined;
  if (study.patient_id) {
    const { system, value } = patientIdentifier(study.patient_id, study.issuer);
    ifNoneExist = `identifier=${esc(system)}|${esc(value)}`;
  }
  const result = await interact(deps.fhir, {
    method: "POST",
    path: ["Patient"],
    query: [],
    body: patient,
    ifNoneExist,
  }, tx);
  return `Patient/${(result.body as Patient).id}`;
}

function firstTimezone(attrs: string): string | undefined {
  try {
    const v = JSON.parse(attrs)["00080201"]?.Value?.[0];
    return typeof v === "string" ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Creates or corrects the Endpoint that every ImagingStudy points at. */
export async function ensureEndpoint(deps: DicomContext): Promise<void> {
  const endpoint: Endpoint = {
    resourceType: "Endpoint",
    id: ENDPOINT_ID,
    status: "active",
    name: "DICOMweb (WADO-RS, QIDO-RS, STOW-RS) of this service",
    connectionType: {
      system: "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
      code: "dicom-wado-rs",
    },
    payloadType: [{ text: "DICOM" }],
    payloadMimeType: ["application/dicom"],
    address: deps.dicomwebBase,
  };
  const current = await interact(deps.fhir, {
    method: "GET",
    path: ["Endpoint", ENDPOINT_ID],
    query: [],
  }).then((r) => r.body as Endpoint).catch(() => undefined);
  if (current?.address === endpoint.address && current.status === "active") return;
  await interact(deps.fhir, {
    method: "PUT",
    path: ["Endpoint", ENDPOINT_ID],
    query: [],
    body: endpoint,
  });
}
