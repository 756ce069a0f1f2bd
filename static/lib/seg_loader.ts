/**
 * @module Fetches a report's DICOM Segmentation over WADO-RS (the whole instance, as
 * `multipart/related; type="application/dicom"`) and parses it for the viewer.
 */
import { api, ok } from "./api.ts";
import { boundaryOf, parseMultipart } from "./multipart.ts";
import { parseSegmentation, type Segmentation } from "./seg.ts";

/** The Segmentation at `path` (a WADO-RS instance path), parsed; with the path it came from. */
export async function loadSegmentation(
  path: string,
  signal?: AbortSignal,
): Promise<Segmentation & { path: string }> {
  const res = await ok(
    await api(path, { headers: { Accept: 'multipart/related; type="application/dicom"' }, signal }),
  );
  const bytes = new Uint8Array(await res.arrayBuffer());
  const boundary = boundaryOf(res.headers.get("content-type") ?? "");
  const body = boundary ? parseMultipart(bytes, boundary)[0]?.body : bytes;
  if (!body) throw new Error("the answer holds no instance");
  return { ...parseSegmentation(body), path };
}
