/**
 * @module NIfTI-1 and NIfTI-2 headers (single-file `.nii`, optionally gzipped): dimensions, voxel
 * size, data type, scaling and orientation, read and checked so that a volume can be described in
 * FHIR and analysed later. Only the header is needed; a `.nii.gz` is inflated just far enough.
 */
import { Gunzip } from "fflate";

export class NiftiError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NiftiError";
  }
}

export interface NiftiHeader {
  version: 1 | 2;
  littleEndian: boolean;
  /** Voxels along i, j, k (and t, … when present). */
  dims: number[];
  /** Voxel size along each dimension (mm for space, by `spatialUnit`). */
  pixdim: number[];
  datatype: string;
  bitpix: number;
  voxOffset: number;
  sclSlope: number;
  sclInter: number;
  spatialUnit: "unknown" | "m" | "mm" | "um";
  description: string;
  qformCode: number;
  sformCode: number;
  /** Rows of the sform affine (voxel → world), when sform_code > 0. */
  srow?: [number[], number[], number[]];
}

const DATATYPES: Record<number, string> = {
  2: "uint8",
  4: "int16",
  8: "int32",
  16: "float32",
  64: "float64",
  128: "rgb24",
  256: "int8",
  512: "uint16",
  768: "uint32",
  1024: "int64",
  1280: "uint64",
};
const UNITS: Record<number, NiftiHeader["spatialUnit"]> = {
  0: "unknown",
  1: "m",
  2: "mm",
  3: "um",
};

export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** The first `n` bytes of the (possibly gzipped) file. */
export function leadingBytes(bytes: Uint8Array, n: number): Uint8Array {
  if (!isGzip(bytes)) return bytes.subarray(0, n);
  const chunks: Uint8Array[] = [];
  let size = 0;
  const gunzip = new Gunzip((chunk) => {
    if (size < n) {
      chunks.push(chunk);
      size += chunk.length;
    }
  });
  try {
    for (let i = 0; i < bytes.length && size < n; i += 65536) {
      gunzip.push(bytes.subarray(i, i + 65536), i + 65536 >= bytes.length);
    }
  } catch (e) {
    if (size < n) throw new NiftiError(`Cannot inflate the .nii.gz: ${(e as Error).message}`);
  }
  const out = new Uint8Array(Math.min(size, n));
  let offset = 0;
  for (const c of chunks) {
    out.set(c.subarray(0, out.length - offset), offset);
    offset += c.length;
    if (offset >= out.length) break;
  }
  return out;
}

/** Reads and checks the header; throws NiftiError with the reason. */
export function parseNiftiHeader(file: Uint8Array): NiftiHeader {
  const h = leadingBytes(file, 544);
  if (h.length < 348) throw new NiftiError(`Too short for a NIfTI header (${h.length} bytes)`);
  const view = new DataView(h.buffer, h.byteOffset, h.byteLength);
  let le = true;
  let size = view.getInt32(0, true);
  if (size !== 348 && size !== 540) {
    le = false;
    size = view.getInt32(0, false);
  }
  if (size === 348) return parseV1(view, le, h);
  if (size === 540) {
    if (h.length < 540) throw new NiftiError("Truncated NIfTI-2 header");
    return parseV2(view, le, h);
  }
  throw new NiftiError("Not a NIfTI file (sizeof_hdr is neither 348 nor 540)");
}

function text(h: Uint8Array, start: number, length: number): string {
  const bytes = h.subarray(start, start + length);
  const end = bytes.indexOf(0);
  return new TextDecoder("latin1").decode(end >= 0 ? bytes.subarray(0, end) : bytes).trim();
}

function parseV1(v: DataView, le: boolean, h: Uint8Array): NiftiHeader {
  const magic = text(h, 344, 4);
  if (magic !== "n+1" && magic !== "ni1") throw new NiftiError(`Bad NIfTI-1 magic "${magic}"`);
  if (magic === "ni1") {
    throw new NiftiError("A two-file NIfTI (.hdr/.img) cannot be uploaded; send a single .nii");
  }
  const rank = v.getInt16(40, le);
  const dims = Array.from({ length: rank }, (_, i) => v.getInt16(42 + i * 2, le));
  const pixdim = Array.from({ length: rank }, (_, i) => v.getFloat32(80 + i * 4, le));
  const sformCode = v.getInt16(254, le);
  const srow = (o: number) => [0, 1, 2, 3].map((i) => v.getFloat32(o + i * 4, le));
  return check({
    version: 1,
    littleEndian: le,
    dims,
    pixdim,
    datatype: DATATYPES[v.getInt16(70, le)] ?? `code ${v.getInt16(70, le)}`,
    bitpix: v.getInt16(72, le),
    voxOffset: v.getFloat32(108, le),
    sclSlope: v.getFloat32(112, le),
    sclInter: v.getFloat32(116, le),
    spatialUnit: UNITS[h[123] & 0x07] ?? "unknown",
    description: text(h, 148, 80),
    qformCode: v.getInt16(252, le),
    sformCode,
    ...(sformCode > 0
      ? { srow: [srow(280), srow(296), srow(312)] as [number[], number[], number[]] }
      : {}),
  }, rank);
}

function parseV2(v: DataView, le: boolean, h: Uint8Array): NiftiHeader {
  const magic = text(h, 4, 4);
  if (magic !== "n+2") throw new NiftiError(`Bad NIfTI-2 magic "${magic}"`);
  const big = (o: number) => Number(v.getBigInt64(o, le));
  const rank = big(16);
  if (rank < 1 || rank > 7) throw new NiftiError(`dim[0] must be 1–7, got ${rank}`);
  const dims = Array.from({ length: rank }, (_, i) => big(24 + i * 8));
  const pixdim = Array.from({ length: rank }, (_, i) => v.getFloat64(112 + i * 8, le));
  const sformCode = v.getInt32(348, le);
  const srow = (o: number) => [0, 1, 2, 3].map((i) => v.getFloat64(o + i * 8, le));
  return check({
    version: 2,
    littleEndian: le,
    dims,
    pixdim,
    datatype: DATATYPES[v.getInt16(12, le)] ?? `code ${v.getInt16(12, le)}`,
    bitpix: v.getInt16(14, le),
    voxOffset: big(168),
    sclSlope: v.getFloat64(176, le),
    sclInter: v.getFloat64(184, le),
    spatialUnit: UNITS[v.getInt32(500, le) & 0x07] ?? "unknown",
    description: text(h, 240, 80),
    qformCode: v.getInt32(344, le),
    sformCode,
    ...(sformCode > 0
      ? { srow: [srow(400), srow(432), srow(464)] as [number[], number[], number[]] }
      : {}),
  }, rank);
}

function check(header: NiftiHeader, rank: number): NiftiHeader {
  if (rank < 1 || rank > 7) throw new NiftiError(`dim[0] must be 1–7, got ${rank}`);
  if (rank < 3) throw new NiftiError(`Expected a volume (3 or more dimensions), got ${rank}`);
  if (header.dims.some((d) => !(d >= 1))) {
    throw new NiftiError(`Invalid dimensions ${header.dims.join("×")}`);
  }
  if (header.datatype.startsWith("code ")) {
    throw new NiftiError(`Unsupported datatype ${header.datatype}`);
  }
  if (!(header.voxOffset >= (header.version === 1 ? 348 : 540))) {
    throw new NiftiError(`vox_offset ${header.voxOffset} is inside the header`);
  }
  if (header.pixdim.slice(0, 3).some((p) => !Number.isFinite(p))) {
    throw new NiftiError(`Invalid voxel size ${header.pixdim.slice(0, 3).join("×")}`);
  }
  return header;
}

/** Bytes of voxel data the header promises. */
export function expectedDataBytes(h: NiftiHeader): number {
  return h.dims.reduce((a, b) => a * b, 1) * (h.bitpix / 8);
}

/** Length of the file's content (inflated for `.nii.gz`, counted without keeping it). */
export function contentLength(bytes: Uint8Array): number {
  if (!isGzip(bytes)) return bytes.length;
  let size = 0;
  const gunzip = new Gunzip((chunk) => (size += chunk.length));
  try {
    for (let i = 0; i < bytes.length; i += 1 << 20) {
      gunzip.push(bytes.subarray(i, i + (1 << 20)), i + (1 << 20) >= bytes.length);
    }
  } catch (e) {
    throw new NiftiError(`The .nii.gz is damaged or truncated: ${(e as Error).message}`);
  }
  return size;
}

/** Checks the voxel data is all there. */
export function checkComplete(h: NiftiHeader, bytes: Uint8Array): void {
  const need = h.voxOffset + expectedDataBytes(h);
  const have = contentLength(bytes);
  if (have < need) {
    throw new NiftiError(`Truncated: the header promises ${need} bytes, the file holds ${have}`);
  }
}

/** One line a clinician or integrator can read: version, size, type, voxel size. */
export function describe(h: NiftiHeader): string {
  const unit = h.spatialUnit === "unknown" ? "" : ` ${h.spatialUnit}`;
  return `NIfTI-${h.version} volume ${h.dims.join("×")} ${h.datatype}, voxel ${
    h.pixdim.slice(0, 3).map((p) => Math.abs(p).toFixed(2)).join("×")
  }${unit}${h.description ? ` (${h.description})` : ""}`;
}
