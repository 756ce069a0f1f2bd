/**
 * @module WADO-RS rendered resources (PS3.18 8.3.5 / 9.x): one frame as JPEG (jpeg-js), PNG
 * (fast-png) or GIF (codec/gif.ts), windowed with `window=center,width,function` (linear,
 * linear-exact, sigmoid per PS3.3 C.11.2.1.2) or the file's own VOI window, else the frame's range;
 * MONOCHROME1 inverted; `viewport=width,height` scales to fit, aspect kept; `quality` for JPEG.
 * The media type is negotiated here (`acceptRendered`): the `accept` query parameter, when given,
 * takes precedence over the Accept header (PS3.18 8.3.3.1).
 */
import type { DataSet } from "dicom-parser";
import { encode as encodePng } from "fast-png";
import jpeg from "jpeg-js";
import { DicomwebError } from "./errors.ts";
import { decodeFrame, PixelDecodeError, pixelInfo } from "./codec/pixels.ts";
import { encodeGif } from "./codec/gif.ts";
import { parseMediaType } from "./codec/multipart.ts";

export type RenderedType = "image/jpeg" | "image/png" | "image/gif";
/** The rendered media types produced here, the default (PS3.18 Table 8.7.4-1) first. */
export const RENDERED_TYPES: readonly RenderedType[] = ["image/jpeg", "image/png", "image/gif"];

export interface RenderParams {
  window?: { center: number; width: number; fn: "linear" | "linear-exact" | "sigmoid" };
  viewport?: { width: number; height: number };
  /** Scale down to fit the viewport, never up (thumbnails without an asked viewport). */
  shrinkOnly?: boolean;
  quality: number;
  type: RenderedType;
}

/** The negotiated answer: one image of `type`, or a multipart/related of them. */
export interface RenderedAccept {
  type: RenderedType;
  multipart: boolean;
}

/** Media types of DICOM (not rendered) representations, for the PS3.18 8.7.5 conflict check. */
const DICOM_TYPES = new Set([
  "application/dicom",
  "application/dicom+json",
  "application/dicom+xml",
  "application/octet-stream",
]);

/**
 * Chooses the rendered media type of a response. The Acceptable Media Types are those of the
 * `accept` query parameter when it is present (it takes precedence, PS3.18 8.3.3.1; a client such
 * as OHIF sends `?accept=image/jpeg` with a multipart Accept header), else of the Accept header,
 * else image/jpeg. Ranges are taken by q-value (0 excludes), then in the order listed. A resource
 * that is `single` image (instance, one frame, thumbnail) is answered with a bare image, or a
 * multipart/related of one when only that is acceptable; other resources (study, series, a list of
 * frames) are multipart/related only, so bare image types are ignored for them (PS3.18 10.4.4).
 * 406 when nothing acceptable can be produced; 400 when DICOM and rendered types are both listed
 * (PS3.18 8.7.5).
 */
export function acceptRendered(
  query: URLSearchParams,
  header: string | undefined,
  single: boolean,
): RenderedAccept {
  const fromQuery = query.getAll("accept").filter((v) => v.trim()).join(",");
  const list = fromQuery || header?.trim() || "";
  const source = fromQuery ? "accept query parameter" : "Accept header";
  if (!list) return { type: "image/jpeg", multipart: !single };
  const candidates: (RenderedAccept & { q: number })[] = [];
  let dicom = false;
  let rendered = false;
  for (const range of list.split(/,(?=(?:[^"]*"[^"]*")*[^"]*$)/)) {
    let media;
    try {
      media = parseMediaType(range.trim());
    } catch {
      continue; // not valid: ignored (PS3.18 8.7.7)
    }
    const q = media.params.q === undefined ? 1 : Number(media.params.q);
    if (!(q > 0 && q <= 1)) continue;
    const inner = media.type === "multipart/related"
      ? (media.params.type ?? "").toLowerCase().split(";")[0].trim()
      : undefined;
    if (DICOM_TYPES.has(media.type) || (inner && DICOM_TYPES.has(inner))) {
      dicom = true;
      continue;
    }
    if (inner !== undefined || media.type === "multipart/*") {
      // multipart/related with no type, or multipart/*: rendered images of the default type.
      const type = RENDERED_TYPES.find((t) => t === inner) ??
        (!inner || inner === "image/*" || inner === "*/*" ? "image/jpeg" : undefined);
      if (inner?.startsWith("image/")) rendered = true;
      if (type) candidates.push({ type, multipart: true, q });
      continue;
    }
    if (media.type.startsWith("image/") && media.type !== "image/*") rendered = true;
    const type = RENDERED_TYPES.find((t) => t === media.type) ??
      (media.type === "image/*" || media.type === "*/*" ? "image/jpeg" : undefined);
    if (!type) continue;
    if (single) candidates.push({ type, multipart: false, q });
    else if (media.type === "*/*") candidates.push({ type, multipart: true, q });
  }
  if (dicom && rendered) {
    throw new DicomwebError(
      400,
      `The ${source} "${list}" lists both DICOM and rendered media types; ask for one or the other (PS3.18 8.7.5)`,
    );
  }
  // Stable: equal q-values keep the order listed.
  const best = candidates.sort((a, b) => b.q - a.q)[0];
  if (best) return { type: best.type, multipart: best.multipart };
  const offer = RENDERED_TYPES.join(", ");
  throw new DicomwebError(
    406,
    single
      ? `Cannot answer the ${source} "${list}": this rendered resource is ${offer}, or multipart/related; type="<one of those>"`
      : `Cannot answer the ${source} "${list}": rendered studies, series and frame lists are multipart/related; type="image/jpeg" (or image/png, image/gif); a bare image type is for one image`,
  );
}

/** Reads `window`, `viewport` and `quality`; 400 for malformed values. */
export function renderParams(query: URLSearchParams, type: RenderedType): RenderParams {
  const params: RenderParams = { type, quality: 90 };
  const window = query.get("window");
  if (window) {
    const [c, w, fn = "linear"] = window.split(",").map((s) => s.trim());
    const center = Number(c);
    const width = Number(w);
    if (
      !Number.isFinite(center) || !(width >= 1) ||
      !["linear", "linear-exact", "sigmoid"].includes(fn.toLowerCase())
    ) {
      throw new DicomwebError(
        400,
        `window must be center,width[,linear|linear-exact|sigmoid] with width ≥ 1, got "${window}"`,
      );
    }
    params.window = { center, width, fn: fn.toLowerCase() as "linear" };
  }
  const viewport = query.get("viewport");
  if (viewport) {
    const [vw, vh] = viewport.split(",").map(Number);
    if (
      !(vw >= 1 && vw <= 8192 && vh >= 1 && vh <= 8192 && Number.isInteger(vw) &&
        Number.isInteger(vh))
    ) {
      throw new DicomwebError(400, `viewport must be width,height (1–8192), got "${viewport}"`);
    }
    params.viewport = { width: vw, height: vh };
  }
  const quality = query.get("quality");
  if (quality) {
    const q = Number(quality);
    if (!(Number.isInteger(q) && q >= 1 && q <= 100)) {
      throw new DicomwebError(400, `quality must be an integer from 1 to 100, got "${quality}"`);
    }
    params.quality = q;
  }
  return params;
}

/** Renders frame `frame` (0-based) of a parsed instance. */
export function renderFrame(ds: DataSet, frame: number, p: RenderParams): Uint8Array {
  let info;
  let values: Float32Array;
  try {
    info = pixelInfo(ds);
    if (frame >= info.frames) throw new DicomwebError(404, `Frame ${frame + 1} does not exist`);
    values = decodeFrame(ds, info, frame);
  } catch (e) {
    if (e instanceof PixelDecodeError) throw new DicomwebError(406, `Cannot render: ${e.message}`);
    throw e;
  }
  const channels = info.samples === 3 ? 3 : 1;
  const pixels = info.rows * info.cols;
  let gray: Uint8Array;
  if (channels === 1) {
    gray = new Uint8Array(pixels);
    const win = p.window ??
      (info.window ? { ...info.window, fn: "linear" as const } : autoWindow(values));
    const lut = windowFn(win.center, win.width, win.fn);
    const invert = info.photometric === "MONOCHROME1";
    for (let i = 0; i < pixels; i++) {
      const y = lut(values[i]);
      gray[i] = invert ? 255 - y : y;
    }
  } else {
    const max = info.bitsAllocated > 8 ? 65535 : 255;
    gray = new Uint8Array(pixels * 3);
    for (let i = 0; i < gray.length; i++) gray[i] = Math.round((values[i] / max) * 255);
    if (
      info.photometric.startsWith("YBR_FULL") && info.transferSyntax !== "1.2.840.10008.1.2.4.50"
    ) {
      ybrToRgb(gray);
    }
  }
  let width = info.cols;
  let height = info.rows;
  if (p.viewport) {
    let scale = Math.min(p.viewport.width / width, p.viewport.height / height);
    if (p.shrinkOnly) scale = Math.min(1, scale);
    const w = Math.max(1, Math.round(width * scale));
    const h = Math.max(1, Math.round(height * scale));
    if (w !== width || h !== height) gray = resize(gray, width, height, w, h, channels);
    width = w;
    height = h;
  }
  if (p.type === "image/png") {
    return encodePng({ width, height, data: gray, channels, depth: 8 });
  }
  if (p.type === "image/gif") return encodeGif({ width, height, data: gray, channels });
  const rgba = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    rgba[i * 4] = gray[i * channels];
    rgba[i * 4 + 1] = gray[i * channels + (channels === 3 ? 1 : 0)];
    rgba[i * 4 + 2] = gray[i * channels + (channels === 3 ? 2 : 0)];
    rgba[i * 4 + 3] = 255;
  }
  return jpeg.encode({ data: rgba, width, height }, p.quality).data;
}

function autoWindow(values: Float32Array) {
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const width = Math.max(1, max - min);
  return { center: min + width / 2, width, fn: "linear" as const };
}

/** PS3.3 C.11.2.1.2.1 (linear), C.11.2.1.3.2 (linear-exact), C.11.2.1.3.1 (sigmoid), to 0–255. */
export function windowFn(c: number, w: number, fn: "linear" | "linear-exact" | "sigmoid") {
  if (fn === "sigmoid") return (x: number) => Math.round(255 / (1 + Math.exp((-4 * (x - c)) / w)));
  if (fn === "linear-exact") {
    return (x: number) => {
      if (x <= c - w / 2) return 0;
      if (x > c + w / 2) return 255;
      return Math.round(((x - c) / w + 0.5) * 255);
    };
  }
  return (x: number) => {
    if (x <= c - 0.5 - (w - 1) / 2) return 0;
    if (x > c - 0.5 + (w - 1) / 2) return 255;
    return Math.round(((x - (c - 0.5)) / (w - 1) + 0.5) * 255);
  };
}

function ybrToRgb(px: Uint8Array): void {
  for (let i = 0; i < px.length; i += 3) {
    const y = px[i];
    const cb = px[i + 1] - 128;
    const cr = px[i + 2] - 128;
    px[i] = clamp(y + 1.402 * cr);
    px[i + 1] = clamp(y - 0.344136 * cb - 0.714136 * cr);
    px[i + 2] = clamp(y + 1.772 * cb);
  }
}

function clamp(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : Math.round(v);
}

/** Box-filtered downscale, nearest-neighbour upscale. */
function resize(
  src: Uint8Array,
  sw: number,
  sh: number,
  dw: number,
  dh: number,
  ch: number,
): Uint8Array {
  const out = new Uint8Array(dw * dh * ch);
  const fx = sw / dw;
  const fy = sh / dh;
  for (let y = 0; y < dh; y++) {
    const y0 = Math.floor(y * fy);
    const y1 = Math.max(y0 + 1, Math.min(sh, Math.floor((y + 1) * fy)));
    for (let x = 0; x < dw; x++) {
      const x0 = Math.floor(x * fx);
      const x1 = Math.max(x0 + 1, Math.min(sw, Math.floor((x + 1) * fx)));
      for (let c = 0; c < ch; c++) {
        let sum = 0;
        for (let yy = y0; yy < y1; yy++) {
          for (let xx = x0; xx < x1; xx++) sum += src[(yy * sw + xx) * ch + c];
        }
        out[(y * dw + x) * ch + c] = Math.round(sum / ((y1 - y0) * (x1 - x0)));
      }
    }
  }
  return out;
}
