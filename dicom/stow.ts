/**
 * @module STOW-RS (PS3.18 10.5): reads a multipart/related body part by part, stores the parts in
 * bounded batches (so a 1 GB upload needs a batch of memory, not a gigabyte), and builds the
 * store response: ReferencedSOPSequence, FailedSOPSequence with a FailureReason per part,
 * WarningReason where values were coerced, and 200 / 202 / 409 as the standard says (503 or 507
 * when nothing could be stored because the database or the object store is down).
 */
import type { DicomContext } from "./context.ts";
import type { DicomJson } from "./codec/dicom_json.ts";
import { DicomwebError } from "./errors.ts";
import { readBounded } from "../platform/body.ts";
import { HttpError } from "../platform/http_error.ts";
import { MultipartError, readMultipart } from "./codec/multipart.ts";
import { createBatcher, storeInstances, type StoreOutcome, WARNING_COERCED } from "./store.ts";

export interface StowResult {
  /**
   * 200 all stored, 202 some (or with warnings), 409 none; 503 (507: out of space) when none was
   * stored and the database or the object store being down failed parts (sent again later, they
   * may well be stored; the route adds Retry-After).
   */
  status: 200 | 202 | 409 | 503 | 507;
  body: DicomJson;
  /** Human-readable reasons, one per failed or coerced part (for HTTP Warning headers). */
  notes: string[];
  outcomes: StoreOutcome[];
}

/** Stores the parts of a multipart/related body. */
export async function stowMultipart(
  deps: DicomContext,
  body: ReadableStream<Uint8Array>,
  boundary: string,
  expectedStudy?: string,
): Promise<StowResult> {
  const batcher = createBatcher(deps, expectedStudy);
  const { outcomes, flush } = batcher;
  let broken: MultipartError | undefined;
  try {
    for await (
      const part of readMultipart(body, boundary, {
        maxPartBytes: deps.config.maxInstanceBytes,
        maxTotalBytes: deps.config.maxRequestBytes,
      })
    ) {
      const type = (part.headers.get("content-type") ?? "application/dicom").split(";")[0].trim()
        .toLowerCase();
      if (type !== "application/dicom") {
        outcomes.push({
          index: part.index,
          status: "failed",
          failureReason: 0xc000,
          reason: `Part ${part.index + 1} is ${type}, not application/dicom`,
          warnings: [],
        });
        continue;
      }
      await batcher.add({ index: part.index, bytes: part.body });
    }
  } catch (e) {
    if (!(e instanceof MultipartError)) throw e;
    broken = e;
  }
  await flush();
  if (broken) {
    if (broken.kind === "too-large" || broken.kind === "part-too-large") {
      throw new DicomwebError(413, `${broken.reason}${storedNote(outcomes)}`);
    }
    if (!outcomes.some(isStored)) {
      throw new DicomwebError(400, `Malformed multipart body: ${broken.reason}`);
    }
  }
  if (!outcomes.length) throw new DicomwebError(400, "The multipart body holds no parts");
  const result = storeResponse(deps, outcomes.sort((a, b) => a.index - b.index));
  if (broken) {
    result.notes.unshift(`The body is malformed after the stored parts: ${broken.reason}`);
  }
  if (broken && result.status === 200) result.status = 202;
  return result;
}

/**
 * Stores one application/dicom body: read whole (it is one instance), at most the instance limit
 * (DICOM_MAX_INSTANCE_BYTES, and the request limit when lower): a 413 past it.
 */
export async function stowSingle(
  deps: DicomContext,
  body: ReadableStream<Uint8Array>,
  expectedStudy?: string,
): Promise<StowResult> {
  const max = Math.min(deps.config.maxRequestBytes, deps.config.maxInstanceBytes);
  const bytes = await readBounded(body, max, "The instance").catch((e) => {
    throw e instanceof HttpError ? new DicomwebError(413, e.message) : e;
  });
  return storeResponse(deps, await storeInstances(deps, [{ index: 0, bytes }], { expectedStudy }));
}

function isStored(o: StoreOutcome): boolean {
  return o.status !== "failed";
}

function storedNote(outcomes: StoreOutcome[]): string {
  const n = outcomes.filter(isStored).length;
  return n ? ` (${n} complete parts before it were stored)` : "";
}

/** The PS3.18 store response for a set of outcomes. */
export function storeResponse(deps: DicomContext, outcomes: StoreOutcome[]): StowResult {
  const referenced: DicomJson[] = [];
  const failed: DicomJson[] = [];
  const notes: string[] = [];
  const studies = new Set<string>();
  for (const o of outcomes) {
    const ref: DicomJson = {
      "00081150": { vr: "UI", ...(o.sopClassUid ? { Value: [o.sopClassUid] } : {}) },
      "00081155": { vr: "UI", ...(o.sopUid ? { Value: [o.sopUid] } : {}) },
    };
    if (o.status === "failed") {
      ref["00081197"] = { vr: "US", Value: [o.failureReason ?? 0x0110] };
      failed.push(ref);
      notes.push(`part ${o.index + 1}${o.sopUid ? ` (${o.sopUid})` : ""}: ${o.reason}`);
      continue;
    }
    studies.add(o.studyUid!);
    ref["00081190"] = {
      vr: "UR",
      Value: [
        `${deps.dicomwebBase}/studies/${o.studyUid}/series/${o.seriesUid}/instances/${o.sopUid}`,
      ],
    };
    if (o.warnings.length) {
      ref["00081196"] = { vr: "US", Value: [WARNING_COERCED] };
      notes.push(
        `part ${o.index + 1} (${o.sopUid}): stored with warnings: ${o.warnings.join("; ")}`,
      );
    }
    referenced.push(ref);
  }
  const body: DicomJson = {};
  if (studies.size === 1) {
    body["00081190"] = { vr: "UR", Value: [`${deps.dicomwebBase}/studies/${[...studies][0]}`] };
  }
  if (failed.length) body["00081198"] = { vr: "SQ", Value: failed };
  if (referenced.length) body["00081199"] = { vr: "SQ", Value: referenced };
  const warned = outcomes.some((o) => o.status !== "failed" && o.warnings.length);
  const down = outcomes.flatMap((o) => o.unavailable ? [o.unavailable.status] : []);
  const status = !referenced.length
    ? (down.length ? (down.includes(507) ? 507 : 503) : 409)
    : failed.length || warned
    ? 202
    : 200;
  return { status, body, notes, outcomes };
}
