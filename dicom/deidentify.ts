/**
 * @module `$deidentify`: a de-identified copy of a stored study as a new study of this archive.
 * The instances are de-identified one at a time (`deid_stream.ts`, one session: one set of new
 * UIDs, one date shift per patient) and handed to the STOW-RS ingest as a multipart/related stream
 * (`stowMultipart`, with the new Study Instance UID as the expected study), so the copy is indexed,
 * gets its Patient (the pseudonymous Patient ID) and ImagingStudy and is forwarded like any upload.
 * Instances flagged for burned-in text are left out unless included; those the engine refuses are
 * left out and reported. The answer maps source to copy UIDs, for whoever may see both.
 */
import { createDeidSession, type DeidOptions, EXPORT_OPTIONS } from "./codec/deid.ts";
import { newBoundary, type OutgoingPart, writeMultipart } from "./codec/multipart.ts";
import { deidDescription, planArchive } from "./archive.ts";
import type { DicomContext } from "./context.ts";
import { deidentifiedInstances } from "./deid_stream.ts";
import { DicomwebError } from "./errors.ts";
import type { StowResult } from "./stow.ts";

/** The ingest: `DicomService.stowMultipart` (its forwarding included). */
export type Stow = (
  body: ReadableStream<Uint8Array>,
  boundary: string,
  study?: string,
) => Promise<StowResult>;

export interface DeidCopyReport {
  status: StowResult["status"];
  studyInstanceUid: string;
  sourceStudyInstanceUid: string;
  url: string;
  deidentification: ReturnType<typeof deidDescription>;
  stored: number;
  instances: { sourceSopInstanceUid: string; sopInstanceUid: string; seriesInstanceUid: string }[];
  flagged: {
    sourceSopInstanceUid: string;
    sopInstanceUid: string;
    reason: string;
    included: boolean;
  }[];
  refused: { sourceSopInstanceUid: string; reason: string }[];
  missing: { sourceSopInstanceUid: string }[];
  /** Failures and warnings of the ingest, one per instance. */
  notes: string[];
  /** The ingest's PS3.18 store response. */
  storeResponse: unknown;
}

export async function deidentifyCopy(
  deps: DicomContext,
  stow: Stow,
  studyUid: string,
  opts: { includeBurnedIn: boolean; options?: DeidOptions },
): Promise<DeidCopyReport> {
  const session = createDeidSession(opts.options ?? EXPORT_OPTIONS);
  const plan = await planArchive(deps, { studyUid }, {
    session,
    includeBurnedIn: opts.includeBurnedIn,
  });
  const newStudy = session.keys.uid(studyUid);
  const report: DeidCopyReport = {
    status: 200,
    studyInstanceUid: newStudy,
    sourceStudyInstanceUid: studyUid,
    url: `${deps.dicomwebBase}/studies/${newStudy}`,
    deidentification: deidDescription(session),
    stored: 0,
    instances: [],
    flagged: plan.flagged.map((f) => ({
      sourceSopInstanceUid: f.row.sop_uid,
      sopInstanceUid: session.keys.uid(f.row.sop_uid),
      reason: f.reason,
      included: f.included,
    })),
    refused: [],
    missing: plan.missing.map((r) => ({ sourceSopInstanceUid: r.sop_uid })),
    notes: [],
    storeResponse: null,
  };
  const flagged = new Set(plan.flagged.map((f) => f.row.sop_uid));
  async function* parts(): AsyncGenerator<OutgoingPart> {
    for await (const item of deidentifiedInstances(deps, plan.rows, session)) {
      const { row, result } = item;
      if (!result) {
        report.refused.push({ sourceSopInstanceUid: row.sop_uid, reason: item.refused! });
        continue;
      }
      if (result.burnedIn && !flagged.has(row.sop_uid)) {
        report.flagged.push({
          sourceSopInstanceUid: row.sop_uid,
          sopInstanceUid: result.sopUid,
          reason: result.burnedIn,
          included: opts.includeBurnedIn,
        });
        if (!opts.includeBurnedIn) continue;
      }
      report.instances.push({
        sourceSopInstanceUid: row.sop_uid,
        sopInstanceUid: result.sopUid,
        seriesInstanceUid: result.seriesUid,
      });
      yield {
        contentType: `application/dicom; transfer-syntax=${result.transferSyntaxUid}`,
        body: result.bytes,
      };
    }
  }
  if (!plan.rows.length) throw nothingToStore(report);
  const boundary = newBoundary();
  let result: StowResult;
  try {
    result = await stow(writeMultipart(parts(), boundary), boundary, newStudy);
  } catch (e) {
    if (e instanceof DicomwebError && !report.instances.length) throw nothingToStore(report);
    throw e;
  }
  report.status = result.status;
  report.stored = result.outcomes.filter((o) => o.status !== "failed").length;
  report.notes = result.notes;
  report.storeResponse = result.body;
  return report;
}

function nothingToStore(report: DeidCopyReport): DicomwebError {
  const excluded = report.flagged.filter((f) => !f.included).length;
  return new DicomwebError(
    422,
    `Nothing to store: ${excluded} instances flagged for burned-in annotation were left out (burnedInAnnotation=include stores them), ${report.refused.length} could not be de-identified${
      report.refused[0] ? ` (${report.refused[0].reason})` : ""
    }`,
  );
}
