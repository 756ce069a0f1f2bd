/**
 * @module Thumbnail resources (PS3.18 10.4.1.1.4, 10.4.3.3.4): one rendered image standing for a
 * study, a series, an instance or a frame, without annotations (no patient information is drawn).
 * The representative frame: of a study, that of its image series with the most instances (series
 * of SEG, SR, KO, PR, DOC, RT objects and the like only when there is no other); of a series, its
 * middle instance by Instance Number; of a multi-frame instance, its middle frame (the lower one
 * of an even count). Rendering is `rendered.ts`'s, with the instance's own VOI window (or one from
 * the pixel range); without an asked viewport the image shrinks to fit 256×256, never grows.
 */
import { parseDataSet } from "./codec/dataset.ts";
import * as repo from "../db/dicom_repo.ts";
import type { InstanceRow } from "../db/dicom_repo.ts";
import type { DicomContext } from "./context.ts";
import { DicomwebError } from "./errors.ts";
import { renderFrame, type RenderParams } from "./rendered.ts";
import { unrenderable } from "./rendered_parts.ts";
import * as wado from "./wado.ts";
import { seriesWithImages } from "./thumbnail_repo.ts";

/** The box a thumbnail fits in when the request names no viewport. */
export const THUMBNAIL_BOX = 256;

/** Modalities whose series are chosen for a study's thumbnail only when no other has images. */
const NOT_REPRESENTATIVE = new Set([
  "SEG",
  "SR",
  "KO",
  "PR",
  "DOC",
  "RTSTRUCT",
  "RTPLAN",
  "RTRECORD",
  "RTDOSE",
  "REG",
  "PLAN",
]);

/** A study tries this many series (best first) when the representative cannot be rendered. */
const STUDY_ATTEMPTS = 3;

export interface Representative {
  row: InstanceRow;
  /** 1-based. */
  frame: number;
}

/** The thumbnail of `t` (a study, series or instance; `frame` only with an instance). */
export async function thumbnail(
  deps: DicomContext,
  t: wado.Target,
  frame: number | undefined,
  params: RenderParams,
): Promise<Uint8Array> {
  const p: RenderParams = params.viewport
    ? params
    : { ...params, viewport: { width: THUMBNAIL_BOX, height: THUMBNAIL_BOX }, shrinkOnly: true };
  const candidates = await representatives(deps, t, frame);
  let failure: unknown;
  for (const c of candidates) {
    try {
      const bytes = await deps.store.get(c.row.object_key);
      if (!bytes) {
        throw new DicomwebError(404, `The bytes of instance ${c.row.sop_uid} are missing`);
      }
      return renderFrame(parseDataSet(bytes), c.frame - 1, p);
    } catch (e) {
      // Another series of the study may do; anything but "cannot render this one" is final.
      if (!(e instanceof DicomwebError && (e.status === 406 || e.status === 404))) throw e;
      failure ??= e;
    }
  }
  throw failure;
}

/** The representative frames of `t`, best first (several only for a study). */
export async function representatives(
  deps: DicomContext,
  t: wado.Target,
  frame?: number,
): Promise<Representative[]> {
  if (t.sopUid) {
    const [row] = await wado.instancesOf(deps, t);
    const why = unrenderable(row);
    if (why) throw new DicomwebError(406, `No thumbnail: ${why}`);
    if (frame !== undefined && frame > row.frames) {
      throw new DicomwebError(
        404,
        `Frame ${frame} does not exist (instance ${row.sop_uid} has ${row.frames})`,
      );
    }
    return [{ row, frame: frame ?? middle(row.frames) }];
  }
  if (t.seriesUid) {
    return [seriesRepresentative(await wado.instancesOf(deps, t), t.seriesUid)];
  }
  const series = await imageSeries(deps, t.studyUid);
  if (!series.length) {
    if (!(await repo.readStudy(deps.db, t.studyUid))) {
      throw new DicomwebError(404, `Study ${t.studyUid} not found`);
    }
    throw new DicomwebError(
      406,
      `No thumbnail: study ${t.studyUid} has no instance with pixel data`,
    );
  }
  const out: Representative[] = [];
  for (const s of series.slice(0, STUDY_ATTEMPTS)) {
    const rows = await wado.instancesOf(deps, { studyUid: t.studyUid, seriesUid: s.series_uid });
    out.push(seriesRepresentative(rows, s.series_uid));
  }
  return out;
}

/** The middle instance (by Instance Number) of the series' images, at its middle frame. */
function seriesRepresentative(rows: InstanceRow[], seriesUid: string): Representative {
  // The rows come ordered by Instance Number (then SOP Instance UID; no number last).
  const images = rows.filter((r) => r.frames > 0);
  if (!images.length) {
    const classes = [...new Set(rows.map((r) => r.sop_class))].join(", ");
    throw new DicomwebError(
      406,
      `No thumbnail: series ${seriesUid} has no instance with pixel data (SOP class ${classes})`,
    );
  }
  const row = images[middle(images.length) - 1];
  return { row, frame: middle(row.frames) };
}

/** 1-based middle of 1…n (the lower one of an even count). */
function middle(n: number): number {
  return Math.floor((n - 1) / 2) + 1;
}

/**
 * The study's series that hold images, best representative first: not of a NOT_REPRESENTATIVE
 * modality, then more instances with pixel data, then by Series Number.
 */
async function imageSeries(
  deps: DicomContext,
  studyUid: string,
): Promise<{ series_uid: string; modality: string | null; images: number | string }[]> {
  const rows = await seriesWithImages(deps.db, studyUid);
  const demoted = (m: string | null) => NOT_REPRESENTATIVE.has((m ?? "").trim().toUpperCase());
  return rows.sort((a, b) =>
    Number(demoted(a.modality)) - Number(demoted(b.modality)) ||
    Number(b.images) - Number(a.images) ||
    (a.series_number ?? Infinity) - (b.series_number ?? Infinity) ||
    (a.series_uid < b.series_uid ? -1 : 1)
  );
}
