/**
 * @module HTTP for the rendered and thumbnail resources of DICOMweb (PS3.18 10.4.1.1.3-4), mounted
 * by `dicomweb.ts` on its app (its access checks apply): `…/rendered` of a study, series, instance
 * and frame list, `…/thumbnail` of a study, series, instance and frame. The media type comes from
 * `acceptRendered` (the `accept` query parameter first); the work is in `dicom/`.
 */
import type { Context, Hono } from "hono";
import type { AppEnv } from "./env.ts";
import { DicomwebError } from "../dicom/errors.ts";
import { newBoundary, type OutgoingPart, writeMultipart } from "../dicom/codec/multipart.ts";
import { acceptRendered, type RenderedType, renderParams } from "../dicom/rendered.ts";
import type { DicomService } from "../dicom/service.ts";
import type { Target } from "../dicom/wado.ts";

/** Route paths of the resources, with their parameters (`:study`, `:series`, `:instance`). */
export interface RenderedPaths {
  study: string;
  series: string;
  instance: string;
}

/**
 * Derived images are private (access is checked per caller); those of one instance change only
 * when it is replaced, those of a study or series whenever an instance arrives.
 */
const CACHE_INSTANCE = "private, max-age=3600";
const CACHE_GROUP = "private, max-age=300";

export function renderedRoutes(app: Hono<AppEnv>, dicom: DicomService, paths: RenderedPaths) {
  const target = (c: Context<AppEnv>): Target => ({
    studyUid: c.req.param("study")!,
    seriesUid: c.req.param("series"),
    sopUid: c.req.param("instance"),
  });
  const query = (c: Context<AppEnv>) => new URL(c.req.url).searchParams;
  const negotiate = (c: Context<AppEnv>, single: boolean) => {
    const accept = acceptRendered(query(c), c.req.header("accept"), single);
    return { accept, params: renderParams(query(c), accept.type) };
  };
  const image = (c: Context<AppEnv>, body: Uint8Array, type: RenderedType, cache: string) =>
    c.body(body as Uint8Array<ArrayBuffer>, 200, {
      "Content-Type": type,
      "Cache-Control": cache,
      Vary: "Accept",
    });
  const multipart = (
    c: Context<AppEnv>,
    parts: AsyncIterable<OutgoingPart>,
    type: RenderedType,
    cache: string,
    notes: string[] = [],
  ) => {
    const boundary = newBoundary();
    const headers: Record<string, string> = {
      "Content-Type": `multipart/related; type="${type}"; boundary=${boundary}`,
      "Cache-Control": cache,
      Vary: "Accept",
    };
    if (notes.length) headers.Warning = warning(notes);
    // Instances left out (no pixel data, not decodable, bytes missing): a partial answer.
    return c.body(writeMultipart(parts, boundary), notes.length ? 206 : 200, headers);
  };

  // Rendered study and series: multipart/related of every frame of every image instance.
  const group = async (c: Context<AppEnv>) => {
    const { accept, params } = negotiate(c, false);
    const { parts, notes } = await dicom.renderedParts(target(c), params);
    return multipart(c, parts, accept.type, CACHE_GROUP, notes);
  };
  app.get(`${paths.study}/rendered`, group);
  app.get(`${paths.series}/rendered`, group);
  // Rendered instance: its first frame as one image, or every frame as multipart/related.
  app.get(`${paths.instance}/rendered`, async (c) => {
    const { accept, params } = negotiate(c, true);
    if (!accept.multipart) {
      const t = target(c) as Required<Target>;
      return image(c, await dicom.rendered(t, 1, params), accept.type, CACHE_INSTANCE);
    }
    const { parts, notes } = await dicom.renderedParts(target(c), params);
    return multipart(c, parts, accept.type, CACHE_INSTANCE, notes);
  });
  // Rendered frames: one frame as one image (or a multipart of it); a list as multipart only.
  app.get(`${paths.instance}/frames/:frames/rendered`, async (c) => {
    const frames = frameList(c.req.param("frames"));
    const { accept, params } = negotiate(c, frames.length === 1);
    if (!accept.multipart) {
      const t = target(c) as Required<Target>;
      return image(c, await dicom.rendered(t, frames[0], params), accept.type, CACHE_INSTANCE);
    }
    const { parts, notes } = await dicom.renderedParts(target(c), params, frames);
    return multipart(c, parts, accept.type, CACHE_INSTANCE, notes);
  });

  // Thumbnails: one image of the representative frame (dicom/thumbnail.ts).
  const thumbnail = async (c: Context<AppEnv>, frame: number | undefined, cache: string) => {
    const { accept, params } = negotiate(c, true);
    const body = await dicom.thumbnail(target(c), frame, params);
    if (!accept.multipart) return image(c, body, accept.type, cache);
    return multipart(c, one({ contentType: accept.type, body }), accept.type, cache);
  };
  app.get(`${paths.study}/thumbnail`, (c) => thumbnail(c, undefined, CACHE_GROUP));
  app.get(`${paths.series}/thumbnail`, (c) => thumbnail(c, undefined, CACHE_GROUP));
  app.get(`${paths.instance}/thumbnail`, (c) => thumbnail(c, undefined, CACHE_INSTANCE));
  app.get(`${paths.instance}/frames/:frames/thumbnail`, (c) => {
    const frames = frameList(c.req.param("frames"));
    if (frames.length !== 1) {
      throw new DicomwebError(400, `A thumbnail is of one frame, not "${c.req.param("frames")}"`);
    }
    return thumbnail(c, frames[0], CACHE_INSTANCE);
  });
}

/** A frame list `1,3,5` as numbers; 400 unless every one is a positive integer. */
function frameList(text: string): number[] {
  const numbers = text.split(",").map((s) => s.trim());
  if (!numbers.length || !numbers.every((n) => /^[1-9]\d{0,8}$/.test(n))) {
    throw new DicomwebError(400, `Frame numbers must be positive integers, got "${text}"`);
  }
  return numbers.map(Number);
}

async function* one(part: OutgoingPart): AsyncGenerator<OutgoingPart> {
  yield part;
}

/** A Warning header of server-written notes (ASCII; UIDs and transfer syntax names). */
function warning(notes: string[]): string {
  const shown = notes.slice(0, 20).map((n) =>
    `299 - "${n.replace(/["\\\r\n]/g, " ").replace(/[^\x20-\x7e]/g, "?").slice(0, 300)}"`
  );
  if (notes.length > 20) shown.push(`299 - "and ${notes.length - 20} more"`);
  return shown.join(", ");
}
