/**
 * @module Upload of a NIfTI volume for a Patient: the file is checked (header, completeness),
 * kept as received in the object store, and described in FHIR by an ImagingStudy (so worklists
 * and the AI pipeline see a study) and a DocumentReference whose attachment is the file. All in
 * one transaction (the volume's row: `nifti_repo.ts`); the object is removed again if it does not
 * commit.
 */
import type { DocumentReference, ImagingStudy } from "@medplum/fhirtypes";
import { interact } from "../fhir/interaction.ts";
import type { DicomContext } from "./context.ts";
import { HttpError } from "../platform/http_error.ts";
import { DCM } from "./imaging_study.ts";
import { insertNiftiVolume, readNiftiFile } from "./nifti_repo.ts";
import {
  checkComplete,
  describe,
  isGzip,
  NiftiError,
  type NiftiHeader,
  parseNiftiHeader,
} from "./codec/nifti.ts";

export interface NiftiUpload {
  bytes: Uint8Array;
  /** `Patient/{id}` */
  patient: string;
  filename?: string;
  modality?: string;
  description?: string;
}

export interface NiftiVolume {
  id: string;
  header: NiftiHeader;
  imagingStudy: ImagingStudy;
  documentReference: DocumentReference;
}

/** A fresh `2.25.<128-bit integer>` UID (PS3.5 B.2). */
export function newUid(): string {
  const hex = crypto.randomUUID().replaceAll("-", "");
  return `2.25.${BigInt(`0x${hex}`).toString()}`;
}

export async function uploadNifti(deps: DicomContext, u: NiftiUpload): Promise<NiftiVolume> {
  const m = /^Patient\/([A-Za-z0-9\-.]{1,64})$/.exec(u.patient);
  if (!m) throw new HttpError(400, `patient must be Patient/{id}, got "${u.patient}"`);
  const modality = (u.modality ?? "OT").toUpperCase();
  if (!/^[A-Z0-9]{1,16}$/.test(modality)) {
    throw new HttpError(400, `Invalid modality "${u.modality}"`);
  }
  let header: NiftiHeader;
  try {
    header = parseNiftiHeader(u.bytes);
    checkComplete(header, u.bytes);
  } catch (e) {
    if (e instanceof NiftiError) {
      throw new HttpError(400, `Not a usable NIfTI volume: ${e.message}`);
    }
    throw e;
  }
  await interact(deps.fhir, { method: "GET", path: ["Patient", m[1]], query: [] });
  const gz = isGzip(u.bytes);
  const filename = (u.filename ?? (gz ? "volume.nii.gz" : "volume.nii")).replace(
    /[^A-Za-z0-9._-]/g,
    "_",
  ).slice(0, 128);
  const id = crypto.randomUUID();
  const key = `nifti/${id}/${filename}`;
  const contentType = gz ? "application/gzip" : "application/octet-stream";
  await deps.store.put(key, u.bytes, { contentType });
  const [sha256, sha1] = await Promise.all([hash("SHA-256", u.bytes), hash("SHA-1", u.bytes)]);
  const summary = describe(header);
  const now = new Date().toISOString();
  const studyUid = newUid();
  try {
    return await deps.db.transaction(async (tx) => {
      const study = (await interact(deps.fhir, {
        method: "POST",
        path: ["ImagingStudy"],
        query: [],
        body: {
          resourceType: "ImagingStudy",
          identifier: [{ system: "urn:dicom:uid", value: `urn:oid:${studyUid}` }],
          status: "available",
          subject: { reference: u.patient },
          started: now,
          modality: [{ system: DCM, code: modality }],
          description: u.description ?? summary,
          numberOfSeries: 1,
          numberOfInstances: 0,
          series: [{
            uid: newUid(),
            modality: { system: DCM, code: modality },
            description: summary,
            numberOfInstances: 0,
          }],
          note: [{ text: `NIfTI volume, not DICOM: ${summary}. File: ${filename}.` }],
        } satisfies ImagingStudy,
      }, tx)).body as ImagingStudy;
      const doc = (await interact(deps.fhir, {
        method: "POST",
        path: ["DocumentReference"],
        query: [],
        body: {
          resourceType: "DocumentReference",
          identifier: [{ system: "urn:ietf:rfc:3986", value: `urn:uuid:${id}` }],
          status: "current",
          docStatus: "final",
          type: {
            coding: [{
              system: "http://loinc.org",
              code: "18748-4",
              display: "Diagnostic imaging study",
            }],
            text: "NIfTI volume",
          },
          subject: { reference: u.patient },
          date: now,
          description: summary,
          content: [{
            attachment: {
              contentType,
              url: `${deps.publicUrl}/uploads/nifti/${id}`,
              size: u.bytes.length,
              hash: sha1,
              title: filename,
              creation: now,
            },
          }],
          context: { related: [{ reference: `ImagingStudy/${study.id}` }] },
        } satisfies DocumentReference,
      }, tx)).body as DocumentReference;
      await insertNiftiVolume(tx, {
        id,
        objectKey: key,
        filename,
        contentType,
        size: u.bytes.length,
        sha256,
        header,
        patientRef: u.patient,
        imagingStudyId: study.id,
        documentReferenceId: doc.id,
      });
      return { id, header, imagingStudy: study, documentReference: doc };
    });
  } catch (e) {
    await deps.store.delete(key).catch(() => {});
    throw e;
  }
}

/** The stored file of a volume, or null. */
export async function niftiFile(
  deps: DicomContext,
  id: string,
): Promise<
  { body: ReadableStream<Uint8Array>; contentType: string; filename: string; size: number } | null
> {
  const row = await readNiftiFile(deps.db, id);
  if (!row) return null;
  const body = await deps.store.getStream(row.object_key);
  return body
    ? { body, contentType: row.content_type, filename: row.filename, size: Number(row.size) }
    : null;
}

async function hash(algorithm: "SHA-1" | "SHA-256", bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest(algorithm, bytes as Uint8Array<ArrayBuffer>),
  );
  return algorithm === "SHA-1"
    ? btoa(String.fromCharCode(...digest))
    : Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}
