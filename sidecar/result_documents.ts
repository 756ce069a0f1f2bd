/**
 * @module The DICOM results of an analysis (its SEG and SR, stored in the study) as a FHIR
 * DocumentReference, and how a new analysis of the same study by the same model supersedes the
 * earlier ones without deleting them: the earlier DocumentReferences go to status `superseded`
 * (R4's own status for this) and the new one `replaces` them (relatesTo); the new SR names the
 * earlier SRs in its Predecessor Documents Sequence, so FHIR and DICOM say the same thing.
 *
 * The content's `format` is the SOP Class UID in the DICOM UID registry (urn:oid:1.2.840.10008.2.6.1),
 * as IHE XDS-I codes DICOM objects; the category names the model that made them, so the earlier
 * results of one model are found by search and another model's are left alone.
 */
import type {
  BundleEntry,
  Device,
  DocumentReference,
  Patient,
  Reference,
} from "@medplum/fhirtypes";
import { SEGMENTATION_STORAGE } from "../dicom/codec/seg_writer.ts";
import { COMPREHENSIVE_3D_SR_STORAGE } from "../dicom/codec/sr_writer.ts";
import { type AnalysisJob, JOB_KEY_SYSTEM } from "../queue/jobs.ts";
import type { ApiClient } from "./api_client.ts";
import type { ModelManifest } from "./manifest.ts";

/** Category of a results document: which model (by name, any version) made it. */
export const RESULTS_OF_MODEL = "urn:imaging-ai:results-of-model";
/** IHE's coding of DICOM objects in document metadata: the SOP Class UID. */
const DICOM_UID_REGISTRY = "urn:oid:1.2.840.10008.2.6.1";

export interface DicomResultFiles {
  segmentation?: { url: string; size: number };
  report: { url: string; size: number };
}

/** An earlier analysis's results document still current, and the SR it lists. */
export interface PriorResults {
  id: string;
  resource: DocumentReference;
  reports: { studyInstanceUid: string; seriesInstanceUid: string; sopInstanceUid: string }[];
}

const WADO_INSTANCE = /\/studies\/([0-9.]+)\/series\/([0-9.]+)\/instances\/([0-9.]+)$/;

/**
 * The current results documents of earlier analyses of this study by this model (not this job's
 * own, filed by an earlier delivery of the same job).
 */
export async function priorResults(
  api: ApiClient,
  job: AnalysisJob,
  m: ModelManifest,
  signal?: AbortSignal,
): Promise<PriorResults[]> {
  const query = new URLSearchParams({
    related: `ImagingStudy/${job.imagingStudyId}`,
    status: "current",
    category: `${RESULTS_OF_MODEL}|${m.name}`,
    _count: "100",
  });
  const found = await api.fhir<{ entry?: { resource?: DocumentReference }[] }>(
    "GET",
    `DocumentReference?${query}`,
    undefined,
    { requestId: job.requestId, signal },
  );
  const own = `${job.idempotencyKey}#dicom`;
  return (found.body.entry ?? []).flatMap(({ resource: r }) => {
    if (!r?.id || r.identifier?.some((i) => i.system === JOB_KEY_SYSTEM && i.value === own)) {
      return [];
    }
    const reports = (r.content ?? []).flatMap((c) => {
      const m = c.format?.code === COMPREHENSIVE_3D_SR_STORAGE &&
        WADO_INSTANCE.exec(c.attachment.url ?? "");
      return m ? [{ studyInstanceUid: m[1], seriesInstanceUid: m[2], sopInstanceUid: m[3] }] : [];
    });
    return [{ id: r.id, resource: r, reports }];
  });
}

/**
 * The transaction entries: the new results document (a conditional create on the job's key) and
 * the earlier ones set to `superseded` (each `If-Match` its version as read).
 */
export function resultDocumentEntries(input: {
  job: AnalysisJob;
  manifest: ModelManifest;
  files: DicomResultFiles;
  priors: PriorResults[];
  subject: Reference<Patient>;
  imagingStudy: Reference;
  report: Reference;
  device: Reference<Device>;
  issued: string;
}): BundleEntry[] {
  const { job, manifest: m, files } = input;
  const object = (
    file: { url: string; size: number },
    sopClass: string,
    display: string,
    title: string,
  ) => ({
    attachment: { contentType: "application/dicom", url: file.url, size: file.size, title },
    format: { system: DICOM_UID_REGISTRY, code: sopClass, display },
  });
  const document: DocumentReference = {
    resourceType: "DocumentReference",
    identifier: [{ system: JOB_KEY_SYSTEM, value: `${job.idempotencyKey}#dicom` }],
    status: "current",
    docStatus: "final",
    type: {
      coding: [{
        system: "http://loinc.org",
        code: "18748-4",
        display: "Diagnostic imaging study",
      }],
      text: "AI results as DICOM (SEG and SR)",
    },
    category: [{ coding: [{ system: RESULTS_OF_MODEL, code: m.name, display: m.displayName }] }],
    subject: input.subject,
    date: input.issued,
    author: [input.device],
    description: `${m.displayName} ${m.version}: the findings as DICOM objects in the study`,
    ...(input.priors.length
      ? {
        relatesTo: input.priors.map((p) => ({
          code: "replaces" as const,
          target: { reference: `DocumentReference/${p.id}` },
        })),
      }
      : {}),
    content: [
      ...(files.segmentation
        ? [object(
          files.segmentation,
          SEGMENTATION_STORAGE,
          "Segmentation Storage",
          "Findings as a DICOM Segmentation (SEG)",
        )]
        : []),
      object(
        files.report,
        COMPREHENSIVE_3D_SR_STORAGE,
        "Comprehensive 3D SR Storage",
        "Measurement report as DICOM SR (TID 1500)",
      ),
    ],
    context: { related: [input.imagingStudy, input.report] },
  };
  return [
    {
      fullUrl: `urn:uuid:${crypto.randomUUID()}`,
      resource: document,
      request: {
        method: "POST",
        url: "DocumentReference",
        ifNoneExist: `identifier=${JOB_KEY_SYSTEM}|${job.idempotencyKey}%23dicom`,
      },
    },
    ...input.priors.map(({ id, resource }): BundleEntry => {
      const { meta, ...rest } = resource;
      return {
        resource: { ...rest, status: "superseded" },
        request: {
          method: "PUT",
          url: `DocumentReference/${id}`,
          ...(meta?.versionId ? { ifMatch: `W/"${meta.versionId}"` } : {}),
        },
      };
    }),
  ];
}
