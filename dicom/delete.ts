/**
 * @module Deleting DICOM data: a study, a series or an instance (`DELETE /dicomweb/studies/...`,
 * administrators only, as Google Cloud Healthcare and Azure DICOM services offer it).
 *
 * Order, so that a crash leaves no orphan the sweep cannot find: one transaction first (under the
 * study's lock and its ImagingStudy rebuild's) removes the index rows, the deliveries to DICOM
 * destinations and, when the study is gone, its quiet period, its ImagingStudy and the resources
 * derived from it; or, when some of the study is left, recounts it and rebuilds its ImagingStudy.
 * Then the objects go from the store; one the store will not delete now is left to the background
 * cleanup, and the object sweep (`sweep.ts`) removes any a crash left behind (an object without a
 * row). A row is never left without its object by a deletion.
 *
 * The rules: a study goes when its last instance goes. With the study go the resources that name
 * its ImagingStudy as what they report on, derive from or are about (`DERIVED`: the analyses'
 * DiagnosticReports, Observations, DocumentReferences and Tasks; the SEG and SR are instances of
 * the study and go with it) and the analyses' result files those reports present
 * (`/uploads/results/...`). A series or an instance going leaves them (the ImagingStudy is still
 * there). The Patient stays. A FHIR delete of an ImagingStudy the index made is refused (409):
 * its images would still be served (`refuseImagingStudyDelete`).
 */
import type { Attachment, Bundle, Resource } from "@medplum/fhirtypes";
import type { Sql } from "../db/db.ts";
import * as repo from "../db/dicom_repo.ts";
import { forEachLimit } from "../db/object_store.ts";
import { interact } from "../fhir/interaction.ts";
import { conflict, FhirError } from "../platform/outcome.ts";
import type { DicomContext } from "./context.ts";
import * as del from "./delete_repo.ts";
import { DicomwebError } from "./errors.ts";
import { syncStudyResources } from "./fhir_sync.ts";

export interface DeleteTarget {
  studyUid: string;
  seriesUid?: string;
  sopUid?: string;
}

export interface DeleteOptions {
  /**
   * Instances of the study by SOP Instance UID, in place of the target's series or instance (the
   * sweep's rows without objects); none of them stored is no error.
   */
  sopUids?: string[];
  /** Whether the derived resources go when the study goes (default true; the sweep keeps them). */
  derived?: boolean;
}

/** What a deletion removed (for its AuditEvent and the logs). */
export interface DicomDeletion {
  target: DeleteTarget;
  /** Instances whose rows went (and whose objects go). */
  instances: number;
  /** The study went with it (its last instance went). */
  studyDeleted: boolean;
  /** `ImagingStudy/{id}`: deleted with the study, or rebuilt from what is left. */
  imagingStudy?: string;
  patient?: string;
  /** `Type/id` of the derived resources deleted with the study. */
  derived: string[];
  /** DICOM destinations that had been sent some of the instances (copies this server cannot reach). */
  deliveredTo: string[];
  /** Objects removed now, and those left to the background cleanup (the store refused now). */
  objects: { removed: number; deferred: number };
}

/** The resources derived from a study: type and the search parameter naming its ImagingStudy. */
export const DERIVED: [type: string, param: string][] = [
  ["DiagnosticReport", "imaging-study"],
  ["Observation", "derived-from"],
  ["Observation", "focus"],
  ["DocumentReference", "related"],
  ["Task", "focus"],
];

/** Objects removed at once after a deletion. */
const DELETE_CONCURRENCY = 16;
/** Tries of the transaction that Postgres ended to break a deadlock. */
const CONFLICT_TRIES = 4;

/** Deletes a study, series or instance; a 404 DicomwebError when there is no such thing. */
export async function deleteDicom(
  deps: DicomContext,
  target: DeleteTarget,
  options: DeleteOptions = {},
): Promise<DicomDeletion> {
  for (let attempt = 1;; attempt++) {
    try {
      const [deletion, keys] = await deps.db.transaction((tx) =>
        deleteRows(deps, tx, target, options)
      );
      deletion.objects = await removeObjects(deps, keys);
      if (deletion.instances) deps.log("info", "DICOM data deleted", { ...deletion });
      return deletion;
    } catch (e) {
      const code = (e as { code?: unknown })?.code;
      if ((code !== "40P01" && code !== "40001") || attempt >= CONFLICT_TRIES) throw e;
      await new Promise((r) => setTimeout(r, Math.random() * 50 * attempt));
    }
  }
}

/** The transaction: rows, deliveries, FHIR resources. Answers the deletion and the keys to remove. */
async function deleteRows(
  deps: DicomContext,
  tx: Sql,
  target: DeleteTarget,
  options: DeleteOptions,
): Promise<[DicomDeletion, string[]]> {
  const { studyUid, seriesUid, sopUid } = target;
  const sopUids = options.sopUids ?? (sopUid ? [sopUid] : undefined);
  const none: DicomDeletion = {
    target,
    instances: 0,
    studyDeleted: false,
    derived: [],
    deliveredTo: [],
    objects: { removed: 0, deferred: 0 },
  };
  await repo.lockStudy(tx, studyUid);
  await del.lockStudySync(tx, studyUid);
  const study = await repo.readStudy(tx, studyUid);
  if (!study) {
    if (options.sopUids) return [none, []];
    throw new DicomwebError(404, `Study ${studyUid} not found`);
  }
  const whole = !seriesUid && !sopUids;
  const rows = await del.deleteInstanceRows(tx, {
    studyUid,
    seriesUid: options.sopUids ? undefined : seriesUid,
    sopUids,
  });
  if (options.sopUids && !rows.length) return [none, []];
  if (sopUid && !rows.length) {
    throw new DicomwebError(404, `Instance ${sopUid} not found in series ${seriesUid}`);
  }
  if (seriesUid && !sopUids && !(await del.deleteSeriesRow(tx, studyUid, seriesUid))) {
    throw new DicomwebError(404, `Series ${seriesUid} not found in study ${studyUid}`);
  }
  const left = whole ? { instances: 0 } : await del.recountStudy(tx, studyUid);
  const deletion: DicomDeletion = {
    target,
    instances: rows.length,
    studyDeleted: left.instances === 0,
    imagingStudy: study.imaging_study_id ? `ImagingStudy/${study.imaging_study_id}` : undefined,
    patient: study.patient_ref ?? undefined,
    derived: [],
    deliveredTo: await del.deleteForwards(tx, studyUid, rows.map((r) => r.sop_uid)),
    objects: { removed: 0, deferred: 0 },
  };
  const keys = rows.map((r) => r.object_key);
  if (!deletion.studyDeleted) {
    // The ImagingStudy follows in this transaction: the rebuild is held, and no batch commits.
    await syncStudyResources(deps, tx, studyUid);
    const seqs = await repo.fhirSyncSeqs(tx, studyUid);
    if (seqs) await repo.markFhirSynced(tx, studyUid, Number(seqs.stale));
    return [deletion, keys];
  }
  await del.deleteStudyRow(tx, studyUid);
  if (study.imaging_study_id) {
    if (options.derived ?? true) {
      const derived = await deleteDerived(deps, tx, study.imaging_study_id);
      deletion.derived = derived.resources;
      keys.push(...derived.files);
    }
    await deleteResource(deps, tx, "ImagingStudy", study.imaging_study_id);
  }
  return [deletion, keys];
}

/**
 * Deletes the resources that name the ImagingStudy `id` (`DERIVED`), page by page until none is
 * left; answers them and the object keys of the result files they present.
 */
async function deleteDerived(
  deps: DicomContext,
  tx: Sql,
  id: string,
): Promise<{ resources: string[]; files: string[] }> {
  const resources: string[] = [];
  const files = new Set<string>();
  for (const [type, param] of DERIVED) {
    for (;;) {
      const found = await interact(deps.fhir, {
        method: "GET",
        path: [type],
        query: [[param, `ImagingStudy/${id}`], ["_count", String(deps.fhir.maxCount)]],
      }, tx);
      const page = ((found.body as Bundle).entry ?? []).map((e) => e.resource)
        .filter((r): r is Resource & { id: string } => r?.resourceType === type && !!r.id);
      if (!page.length) break;
      for (const resource of page) {
        for (const key of resultFiles(deps, resource)) files.add(key);
        await deleteResource(deps, tx, type, resource.id);
        resources.push(`${type}/${resource.id}`);
      }
    }
  }
  return { resources, files: [...files] };
}

async function deleteResource(deps: DicomContext, tx: Sql, type: string, id: string) {
  try {
    await interact(deps.fhir, { method: "DELETE", path: [type, id], query: [] }, tx);
  } catch (e) {
    if (!(e instanceof FhirError && e.status === 404)) throw e;
  }
}

/** Result file paths: `/uploads/results/{64 hex}/{name}` under this server's public URL. */
const RESULT_FILE = /^\/uploads\/results\/([0-9a-f]{64})\/([A-Za-z0-9][A-Za-z0-9._-]{0,63})$/;

/** The object keys of the analysis result files a report or document presents. */
function resultFiles(deps: DicomContext, resource: Resource): string[] {
  const attachments: (Attachment | undefined)[] = resource.resourceType === "DiagnosticReport"
    ? resource.presentedForm ?? []
    : resource.resourceType === "DocumentReference"
    ? (resource.content ?? []).map((c) => c.attachment)
    : [];
  const keys: string[] = [];
  for (const a of attachments) {
    if (!a?.url?.startsWith(`${deps.publicUrl}/uploads/results/`)) continue;
    const m = RESULT_FILE.exec(a.url.slice(deps.publicUrl.length));
    if (m) keys.push(`results/${m[1]}/${m[2]}`);
  }
  return keys;
}

/** Removes the objects; one the store will not delete now is left to the background cleanup. */
async function removeObjects(
  deps: DicomContext,
  keys: string[],
): Promise<DicomDeletion["objects"]> {
  const objects = { removed: 0, deferred: 0 };
  await forEachLimit(keys, DELETE_CONCURRENCY, async (key) => {
    try {
      await deps.store.delete(key);
      objects.removed++;
    } catch (e) {
      objects.deferred++;
      deps.cleanup.add(key);
      deps.log("warn", "a deleted instance's object is left to the cleanup", {
        key,
        error: String(e),
      });
    }
  });
  return objects;
}

/** A deletion in words, for its AuditEvent (at most 4000 characters). */
export function describeDeletion(d: DicomDeletion, why = "deleted"): string {
  const { studyUid, seriesUid, sopUid } = d.target;
  const what = sopUid
    ? `instance ${sopUid} of series ${seriesUid}`
    : seriesUid
    ? `series ${seriesUid}`
    : `study ${studyUid}`;
  const parts = [
    `DICOM ${what}${sopUid || seriesUid ? ` of study ${studyUid}` : ""} ${why}: ` +
    `${d.instances} instance row(s) removed; objects: ${d.objects.removed} removed, ` +
    `${d.objects.deferred} left to the cleanup`,
    d.studyDeleted
      ? `the study is gone${d.imagingStudy ? `, ${d.imagingStudy} deleted` : ""}`
      : `${d.imagingStudy ?? "its ImagingStudy"} rebuilt from what is left`,
  ];
  if (d.derived.length) parts.push(`derived resources deleted: ${d.derived.join(", ")}`);
  if (d.deliveredTo.length) {
    parts.push(`copies had been sent to the DICOM destinations ${d.deliveredTo.join(", ")}`);
  }
  const text = parts.join("; ");
  return text.length > 4000 ? `${text.slice(0, 3997)}...` : text;
}

/**
 * The FHIR delete check of ImagingStudy (`FhirContext.deleteChecks`): one the DICOM index made is
 * refused with a 409 naming the DICOMweb deletion, since its images would still be served.
 */
export async function refuseImagingStudyDelete(sql: Sql, resource: Resource): Promise<void> {
  if (!resource.id) return;
  const studyUid = await del.studyOfImagingStudy(sql, resource.id);
  if (!studyUid) return;
  throw conflict(
    `ImagingStudy/${resource.id} is DICOM study ${studyUid}, whose images this server stores ` +
      `and serves; it is not deleted on its own. An administrator deletes the study with ` +
      `DELETE /dicomweb/studies/${studyUid}, which deletes this ImagingStudy, the images and ` +
      `the results derived from them.`,
  );
}
