/**
 * @module The DICOM service the routes call: STOW-RS, WADO-RS, QIDO-RS and the study-stable
 * events, over the index in Postgres and the bytes in the object store.
 */
import type { DicomContext } from "./context.ts";
import { ensureEndpoint } from "./fhir_sync.ts";
import { qido, type QidoRequest, type QidoResult } from "./qido.ts";
import type { StudyStableEvent } from "./stability.ts";
import { stowMultipart, type StowResult, stowSingle } from "./stow.ts";
import * as wado from "./wado.ts";
import { parseDataSet } from "./codec/dataset.ts";
import { DicomwebError } from "./errors.ts";
import { renderFrame, type RenderParams } from "./rendered.ts";
import { type RenderedParts, renderedResource } from "./rendered_parts.ts";
import { thumbnail } from "./thumbnail.ts";
import { stowZip, type ZipStowResult } from "./stow_zip.ts";
import { niftiFile, type NiftiUpload, type NiftiVolume, uploadNifti } from "./nifti_upload.ts";
import {
  deleteDicom,
  type DeleteTarget,
  type DicomDeletion,
  refuseImagingStudyDelete,
} from "./delete.ts";
import { type MissingResult, sweepMissingObjects } from "./sweep.ts";

export interface DicomService {
  readonly deps: DicomContext;
  stowMultipart(
    body: ReadableStream<Uint8Array>,
    boundary: string,
    study?: string,
  ): Promise<StowResult>;
  /** One application/dicom body (read here, bounded by the instance limit). */
  stowSingle(body: ReadableStream<Uint8Array>, study?: string): Promise<StowResult>;
  stowZip(body: ReadableStream<Uint8Array>, study?: string): Promise<ZipStowResult>;
  /** Frame `frame` (1-based) of an instance as an image. */
  rendered(target: Required<wado.Target>, frame: number, params: RenderParams): Promise<Uint8Array>;
  /** A study, series or instance (every frame, or the 1-based `frames`) as rendered parts. */
  renderedParts(
    target: wado.Target,
    params: RenderParams,
    frames?: number[],
  ): Promise<RenderedParts>;
  /** The thumbnail of a study, series, instance or (1-based `frame`) frame (thumbnail.ts). */
  thumbnail(
    target: wado.Target,
    frame: number | undefined,
    params: RenderParams,
  ): Promise<Uint8Array>;
  qido(req: Omit<QidoRequest, "base">): Promise<QidoResult>;
  instances(target: wado.Target): ReturnType<typeof wado.instancesOf>;
  /** Splits the rows by whether their objects exist; 404 when none does. */
  storedInstances(
    target: wado.Target,
    rows: Awaited<ReturnType<typeof wado.instancesOf>>,
  ): Promise<wado.StoredInstances>;
  instanceParts: (
    rows: Awaited<ReturnType<typeof wado.instancesOf>>,
  ) => ReturnType<typeof wado.instanceParts>;
  metadata(target: wado.Target): Promise<string>;
  frames(target: Required<wado.Target>, numbers: number[]): ReturnType<typeof wado.frameParts>;
  bulkData(target: Required<wado.Target>, path: string[]): Promise<Uint8Array>;
  uploadNifti(upload: NiftiUpload): Promise<NiftiVolume>;
  niftiFile(id: string): ReturnType<typeof niftiFile>;
  /** Deletes a study, series or instance: rows, then objects (`delete.ts`); 404 when absent. */
  delete(target: DeleteTarget): Promise<DicomDeletion>;
  /**
   * Finds instance rows whose object is missing (`sweep.ts`); with `remove`, deletes them as
   * DICOMweb DELETE of those instances would, keeping the derived results (a repair, not an
   * erasure), and answers each study's deletion.
   */
  sweepMissing(
    options: { olderThanMs: number; now?: number; remove?: boolean },
  ): Promise<MissingResult & { deletions: DicomDeletion[] }>;
  onStudyStable(listener: (event: StudyStableEvent) => void | Promise<void>): () => void;
  close(): void;
}

export async function createDicomService(deps: DicomContext): Promise<DicomService> {
  await ensureEndpoint(deps);
  // An ImagingStudy the index made goes with its study, never on its own (`delete.ts`).
  (deps.fhir.deleteChecks ??= new Map()).set("ImagingStudy", refuseImagingStudyDelete);
  const one = async (t: Required<wado.Target>) => (await wado.instancesOf(deps, t))[0];
  // What was stored (or sent again: a delivery lost before may be queued now) goes to the
  // destinations too. Queued before the answer: a client that saw success finds it queued.
  const forwarded = async <T extends StowResult>(result: T): Promise<T> => {
    try {
      await deps.forwarding?.queue(result.outcomes);
    } catch (e) {
      deps.log("error", "could not queue stored instances for the DICOM destinations", {
        error: String(e),
      });
    }
    return result;
  };
  return {
    deps,
    stowMultipart: async (body, boundary, study) =>
      await forwarded(await stowMultipart(deps, body, boundary, study)),
    stowSingle: async (body, study) => await forwarded(await stowSingle(deps, body, study)),
    stowZip: async (body, study) => await forwarded(await stowZip(deps, body, study)),
    async rendered(t, frame, params) {
      const row = await one(t);
      const bytes = await deps.store.get(row.object_key);
      if (!bytes) throw new DicomwebError(404, `The bytes of instance ${row.sop_uid} are missing`);
      return renderFrame(parseDataSet(bytes), frame - 1, params);
    },
    renderedParts: (t, params, frames) => renderedResource(deps, t, params, frames),
    thumbnail: (t, frame, params) => thumbnail(deps, t, frame, params),
    qido: (req) => qido(deps.db, { ...req, base: deps.dicomwebBase }),
    instances: (t) => wado.instancesOf(deps, t),
    storedInstances: (t, rows) => wado.storedInstances(deps, t, rows),
    instanceParts: (rows) => wado.instanceParts(deps, rows),
    metadata: async (t) => wado.metadataJson(deps, await wado.instancesOf(deps, t, true)),
    frames: async (t, numbers) => wado.frameParts(deps, await one(t), numbers),
    bulkData: async (t, path) => wado.bulkData(deps, await one(t), path),
    uploadNifti: (upload) => uploadNifti(deps, upload),
    niftiFile: (id) => niftiFile(deps, id),
    delete: (target) => deleteDicom(deps, target),
    async sweepMissing({ remove, ...options }) {
      const deletions: DicomDeletion[] = [];
      const result = await sweepMissingObjects(deps, {
        ...options,
        remove: remove
          ? async (studyUid, rows) => {
            const d = await deleteDicom(deps, { studyUid }, {
              sopUids: rows.map((r) => r.sop_uid),
              derived: false,
            });
            if (d.instances) deletions.push(d);
            return d.instances;
          }
          : undefined,
      });
      return { ...result, deletions };
    },
    // The listeners (analysis rules) read the ImagingStudy: exact before they run.
    onStudyStable: (listener) =>
      deps.stability.onStable(async (e) => {
        await deps.studySync.syncNow(e.studyUid);
        await listener(e);
      }),
    close: () => {
      deps.stability.close();
      deps.cleanup.close();
      deps.studySync.close();
    },
  };
}
