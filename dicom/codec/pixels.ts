/**
 * @module Pixel data decoding for rendering and analysis: one frame of an instance as modality
 * values (rescale slope and intercept applied) for greyscale, or RGB samples for colour. Native
 * (little and big endian, deflated), RLE Lossless (own decoder, PS3.5 Annex G), JPEG Baseline
 * (jpeg-js) and JPEG Lossless (jpeg-lossless-decoder-js); any other syntax is refused by name.
 */
import dicomParser, { type DataSet } from "dicom-parser";
import jpeg from "jpeg-js";
import { Decoder as LosslessDecoder } from "jpeg-lossless-decoder-js";

export class PixelDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PixelDecodeError";
  }
}

export interface PixelInfo {
  rows: number;
  cols: number;
  samples: number;
  bitsAllocated: number;
  bitsStored: number;
  signed: boolean;
  photometric: string;
  planar: boolean;
  frames: number;
  slope: number;
  intercept: number;
  /** First VOI window of the file, if any. */
  window?: { center: number; width: number };
  transferSyntax: string;
}

export const SYNTAX_NAMES: Record<string, string> = {
  "1.2.840.10008.1.2": "Implicit VR Little Endian",
  "1.2.840.10008.1.2.1": "Explicit VR Little Endian",
  "1.2.840.10008.1.2.1.99": "Deflated Explicit VR Little Endian",
  "1.2.840.10008.1.2.2": "Explicit VR Big Endian",
  "1.2.840.10008.1.2.5": "RLE Lossless",
  "1.2.840.10008.1.2.4.50": "JPEG Baseline",
  "1.2.840.10008.1.2.4.51": "JPEG Extended",
  "1.2.840.10008.1.2.4.57": "JPEG Lossless",
  "1.2.840.10008.1.2.4.70": "JPEG Lossless SV1",
  "1.2.840.10008.1.2.4.80": "JPEG-LS Lossless",
  "1.2.840.10008.1.2.4.81": "JPEG-LS Near-Lossless",
  "1.2.840.10008.1.2.4.90": "JPEG 2000 Lossless",
  "1.2.840.10008.1.2.4.91": "JPEG 2000",
};
const NATIVE = new Set([
  "1.2.840.10008.1.2",
  "1.2.840.10008.1.2.1",
  "1.2.840.10008.1.2.1.99",
  "1.2.840.10008.1.2.2",
]);

export function pixelInfo(ds: DataSet): PixelInfo {
  const num = (tag: string) => {
    const v = ds.string(tag);
    const n = v === undefined ? NaN : Number(v.split("\\")[0]);
    return Number.isFinite(n) ? n : undefined;
  };
  const rows = ds.uint16("x00280010") ?? 0;
  const cols = ds.uint16("x00280011") ?? 0;
  if (!rows || !cols || !ds.elements.x7fe00010) {
    throw new PixelDecodeError("The instance has no image pixel data");
  }
  const center = num("x00281050");
  const width = num("x00281051");
  const bitsAllocated = ds.uint16("x00280100") ?? 16;
  return {
    rows,
    cols,
    samples: ds.uint16("x00280002") ?? 1,
    bitsAllocated,
    bitsStored: ds.uint16("x00280101") ?? bitsAllocated,
    signed: ds.uint16("x00280103") === 1,
    photometric: (ds.string("x00280004") ?? "MONOCHROME2").trim().toUpperCase(),
    planar: ds.uint16("x00280006") === 1,
    frames: Math.max(1, num("x00280008") ?? 1),
    slope: num("x00281053") ?? 1,
    intercept: num("x00281052") ?? 0,
    window: center !== undefined && width !== undefined && width > 0
      ? { center, width }
      : undefined,
    transferSyntax: (ds.string("x00020010") ?? "").replace(/\0/g, "").trim(),
  };
}

/**
 * The stored sample values of one frame, before the sign of `BitsStored` < `BitsAllocated` is
 * fixed and before rescale: a typed array of at least rows × cols × samples values (native
 * little-endian 8/16-bit data is a view on the instance's bytes, not a copy).
 */
export function decodeStored(ds: DataSet, info: PixelInfo, frame: number): ArrayLike<number> {
  const ts = info.transferSyntax;
  const pixel = ds.elements.x7fe00010;
  const count = info.rows * info.cols * info.samples;
  let stored: ArrayLike<number>;
  if (NATIVE.has(ts)) {
    stored = nativeFrame(ds, info, frame);
  } else if (!pixel.encapsulatedPixelData) {
    throw new PixelDecodeError(`Pixel data of ${ts} should be encapsulated`);
  } else {
    const bytes = encapsulatedFrame(ds, info, frame);
    if (ts === "1.2.840.10008.1.2.5") stored = rleFrame(bytes, info);
    else if (ts === "1.2.840.10008.1.2.4.50" || ts === "1.2.840.10008.1.2.4.51") {
      const img = jpeg.decode(bytes, {
        useTArray: true,
        formatAsRGBA: false,
        colorTransform: info.samples === 3 ? undefined : false,
      });
      stored = info.samples === 1
        ? everyNth(img.data, img.data.length / (img.width * img.height))
        : img.data;
    } else if (ts === "1.2.840.10008.1.2.4.57" || ts === "1.2.840.10008.1.2.4.70") {
      const decoded = new LosslessDecoder().decode(
        bytes.buffer as ArrayBuffer,
        bytes.byteOffset,
        bytes.byteLength,
      );
      stored = info.bitsAllocated > 8
        ? (info.signed ? new Int16Array(decoded) : new Uint16Array(decoded))
        : new Uint8Array(decoded);
    } else {
      throw new PixelDecodeError(
        `Decoding ${
          SYNTAX_NAMES[ts] ?? ts
        } (${ts}) is not supported; supported: native, RLE Lossless, JPEG Baseline, JPEG Lossless`,
      );
    }
  }
  if (stored.length < count) {
    throw new PixelDecodeError(
      `Frame ${frame + 1} holds ${stored.length} samples, expected ${count}`,
    );
  }
  return stored;
}

/**
 * One frame (0-based) as values in the modality's units (HU for CT) for greyscale, or RGB samples
 * (interleaved, 0–255 or 0–65535) for colour images.
 */
export function decodeFrame(ds: DataSet, info: PixelInfo, frame: number): Float32Array {
  const stored = decodeStored(ds, info, frame);
  const count = info.rows * info.cols * info.samples;
  const out = new Float32Array(count);
  const mono = info.samples === 1;
  const { slope, intercept } = info;
  const shift = 32 - info.bitsStored;
  const needsSignFix = info.signed && info.bitsStored < info.bitsAllocated;
  for (let i = 0; i < count; i++) {
    let v = stored[i];
    if (needsSignFix) v = (v << shift) >> shift;
    out[i] = mono ? v * slope + intercept : v;
  }
  if (!mono && info.planar) return interleave(out, info.rows * info.cols, info.samples);
  return out;
}

function everyNth(data: ArrayLike<number>, n: number): Uint8Array {
  const out = new Uint8Array(Math.floor(data.length / n));
  for (let i = 0; i < out.length; i++) out[i] = data[i * n];
  return out;
}

function interleave(planar: Float32Array, pixels: number, samples: number): Float32Array {
  const out = new Float32Array(planar.length);
  for (let s = 0; s < samples; s++) {
    for (let p = 0; p < pixels; p++) out[p * samples + s] = planar[s * pixels + p];
  }
  return out;
}

function nativeFrame(ds: DataSet, info: PixelInfo, frame: number): ArrayLike<number> {
  const pixel = ds.elements.x7fe00010;
  const subsampled = info.photometric === "YBR_FULL_422" && info.samples === 3;
  // YBR_FULL_422 keeps two luma and one pair of chroma samples per two pixels (PS3.3 C.7.6.3.1.2).
  const count = info.rows * info.cols * (subsampled ? 2 : info.samples);
  const bytesPer = info.bitsAllocated / 8;
  if (info.bitsAllocated === 1 || !Number.isInteger(bytesPer)) {
    throw new PixelDecodeError(`${info.bitsAllocated}-bit pixel data is not supported`);
  }
  const start = pixel.dataOffset + frame * count * bytesPer;
  const end = start + count * bytesPer;
  if (end > ds.byteArray.length || end > pixel.dataOffset + pixel.length) {
    throw new PixelDecodeError(`Frame ${frame + 1} lies beyond the pixel data`);
  }
  const little = info.transferSyntax !== "1.2.840.10008.1.2.2";
  if (!subsampled && (bytesPer === 1 || (bytesPer === 2 && little))) {
    return nativeView(ds.byteArray, start, count, bytesPer, info.signed);
  }
  const view = new DataView(ds.byteArray.buffer, ds.byteArray.byteOffset + start, count * bytesPer);
  const out = info.bitsAllocated === 32 ? new Float64Array(count) : new Int32Array(count);
  for (let i = 0; i < count; i++) {
    if (bytesPer === 1) out[i] = info.signed ? view.getInt8(i) : view.getUint8(i);
    else if (bytesPer === 2) {
      out[i] = info.signed ? view.getInt16(i * 2, little) : view.getUint16(i * 2, little);
    } else out[i] = info.signed ? view.getInt32(i * 4, little) : view.getUint32(i * 4, little);
  }
  return subsampled ? expand422(out) : out;
}

/** Little-endian 8/16-bit samples as a typed array on the bytes (copied only when misaligned). */
function nativeView(
  bytes: Uint8Array,
  start: number,
  count: number,
  bytesPer: 1 | 2,
  signed: boolean,
): ArrayLike<number> {
  let buffer = bytes.buffer as ArrayBuffer;
  let offset = bytes.byteOffset + start;
  if (offset % bytesPer !== 0) {
    buffer = bytes.slice(start, start + count * bytesPer).buffer;
    offset = 0;
  }
  if (bytesPer === 1) {
    return signed ? new Int8Array(buffer, offset, count) : new Uint8Array(buffer, offset, count);
  }
  return signed ? new Int16Array(buffer, offset, count) : new Uint16Array(buffer, offset, count);
}

/** Y0 Y1 Cb Cr → Y0 Cb Cr Y1 Cb Cr. */
function expand422(src: ArrayLike<number>): Int32Array {
  const out = new Int32Array((src.length / 4) * 6);
  for (let i = 0, o = 0; i + 3 < src.length; i += 4, o += 6) {
    out[o] = src[i];
    out[o + 3] = src[i + 1];
    out[o + 1] = out[o + 4] = src[i + 2];
    out[o + 2] = out[o + 5] = src[i + 3];
  }
  return out;
}

function encapsulatedFrame(ds: DataSet, info: PixelInfo, frame: number): Uint8Array {
  const pixel = ds.elements.x7fe00010;
  const fragments = pixel.fragments ?? [];
  if (frame >= info.frames) throw new PixelDecodeError(`No frame ${frame + 1}`);
  if (info.frames === 1) {
    return dicomParser.readEncapsulatedPixelDataFromFragments(
      ds,
      pixel,
      0,
      fragments.length,
    ) as Uint8Array;
  }
  if (pixel.basicOffsetTable?.length) {
    return dicomParser.readEncapsulatedImageFrame(ds, pixel, frame) as Uint8Array;
  }
  if (fragments.length === info.frames) {
    return dicomParser.readEncapsulatedPixelDataFromFragments(ds, pixel, frame, 1) as Uint8Array;
  }
  const table = dicomParser.createJPEGBasicOffsetTable(ds, pixel);
  return dicomParser.readEncapsulatedImageFrame(ds, pixel, frame, table) as Uint8Array;
}

/** RLE Lossless (PS3.5 Annex G): a 64-byte header of segment offsets, PackBits segments. */
function rleFrame(bytes: Uint8Array, info: PixelInfo): ArrayLike<number> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const segments = view.getUint32(0, true);
  const bytesPer = info.bitsAllocated / 8;
  if (segments !== info.samples * bytesPer || segments > 15) {
    throw new PixelDecodeError(
      `RLE frame has ${segments} segments; expected ${info.samples * bytesPer}`,
    );
  }
  const pixels = info.rows * info.cols;
  const planes = new Uint8Array(segments * pixels);
  for (let s = 0; s < segments; s++) {
    const start = view.getUint32(4 + s * 4, true);
    const end = s + 1 < segments ? view.getUint32(8 + s * 4, true) : bytes.length;
    unpackBits(bytes.subarray(start, end), planes.subarray(s * pixels, (s + 1) * pixels));
  }
  const out = info.bitsAllocated === 32
    ? new Float64Array(pixels * info.samples)
    : new Int32Array(pixels * info.samples);
  for (let sample = 0; sample < info.samples; sample++) {
    for (let p = 0; p < pixels; p++) {
      let v = 0;
      for (let b = 0; b < bytesPer; b++) v = v * 256 + planes[(sample * bytesPer + b) * pixels + p];
      if (info.signed) {
        const bits = info.bitsAllocated;
        if (v >= 2 ** (bits - 1)) v -= 2 ** bits;
      }
      out[p * info.samples + sample] = v;
    }
  }
  return out;
}

function unpackBits(src: Uint8Array, dst: Uint8Array): void {
  let i = 0;
  let o = 0;
  while (i < src.length && o < dst.length) {
    const n = (src[i++] << 24) >> 24;
    if (n >= 0) {
      const len = Math.min(n + 1, dst.length - o, src.length - i);
      dst.set(src.subarray(i, i + len), o);
      i += n + 1;
      o += len;
    } else if (n !== -128) {
      const len = Math.min(1 - n, dst.length - o);
      dst.fill(src[i++], o, o + len);
      o += len;
    }
  }
  if (o < dst.length) throw new PixelDecodeError("RLE segment is shorter than the frame");
}
