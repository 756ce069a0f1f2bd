/**
 * @module A series' slices from its WADO-RS metadata (DICOM JSON): what is needed to decode and
 * show each frame, sorted along the slice normal as the analysis sorts them.
 */
import type { Json } from "./fhir_types.ts";

export interface SliceInfo {
  sopInstanceUid: string;
  instanceNumber?: number;
  rows: number;
  columns: number;
  bitsAllocated: number;
  signed: boolean;
  slope: number;
  intercept: number;
  photometric: string;
  samplesPerPixel: number;
  pixelSpacing?: [number, number];
  position?: [number, number, number];
  orientation?: number[];
  window?: { center: number; width: number };
}

const value = (ds: Json, tag: string) => ds?.[tag]?.Value as Json[] | undefined;
const first = (ds: Json, tag: string) => value(ds, tag)?.[0];
const numeric = (v: Json) => (v === undefined || v === null || v === "" ? undefined : Number(v));

/** One instance's DICOM JSON as a slice. */
export function sliceInfo(ds: Json): SliceInfo {
  const pos = value(ds, "00200032")?.map(Number);
  const spacing = value(ds, "00280030")?.map(Number);
  const wc = numeric(first(ds, "00281050"));
  const ww = numeric(first(ds, "00281051"));
  return {
    sopInstanceUid: String(first(ds, "00080018") ?? ""),
    instanceNumber: numeric(first(ds, "00200013")),
    rows: Number(first(ds, "00280010") ?? 0),
    columns: Number(first(ds, "00280011") ?? 0),
    bitsAllocated: Number(first(ds, "00280100") ?? 16),
    signed: Number(first(ds, "00280103") ?? 0) === 1,
    slope: numeric(first(ds, "00281053")) ?? 1,
    intercept: numeric(first(ds, "00281052")) ?? 0,
    photometric: String(first(ds, "00280004") ?? "MONOCHROME2"),
    samplesPerPixel: Number(first(ds, "00280002") ?? 1),
    pixelSpacing: spacing?.length === 2 ? [spacing[0], spacing[1]] : undefined,
    position: pos?.length === 3 ? [pos[0], pos[1], pos[2]] : undefined,
    orientation: value(ds, "00200037")?.map(Number),
    window: wc !== undefined && ww !== undefined && ww >= 1 ? { center: wc, width: ww } : undefined,
  };
}

/**
 * The slices of a series in spatial order: by position along the normal (else by instance
 * number), turned so that instance numbers increase.
 */
export function sortSlices(slices: SliceInfo[]): SliceInfo[] {
  const o = slices.find((s) => s.orientation?.length === 6)?.orientation;
  const normal = o
    ? [o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5], o[0] * o[4] - o[1] * o[3]]
    : undefined;
  const along = (s: SliceInfo) =>
    normal && s.position
      ? s.position[0] * normal[0] + s.position[1] * normal[1] + s.position[2] * normal[2]
      : undefined;
  const sorted = slices.slice().sort((a, b) => {
    const pa = along(a), pb = along(b);
    if (pa !== undefined && pb !== undefined && pa !== pb) return pa - pb;
    return (a.instanceNumber ?? 0) - (b.instanceNumber ?? 0);
  });
  // Read in the direction the instance numbers count (usually head first), as viewers do.
  const first = sorted[0]?.instanceNumber, last = sorted[sorted.length - 1]?.instanceNumber;
  return first !== undefined && last !== undefined && first > last ? sorted.reverse() : sorted;
}

/**
 * The index in `slices` of the analysis' slice `k`, given the SOP Instance UID the analysis
 * names for slice `centreK`: the same order, or reversed when the centre is found mirrored.
 */
export function sliceIndexMapper(
  slices: SliceInfo[],
  centreK: number | undefined,
  centreSop: string | undefined,
): (k: number) => number {
  const at = centreSop ? slices.findIndex((s) => s.sopInstanceUid === centreSop) : -1;
  if (at < 0 || centreK === undefined || at === centreK) return (k) => k;
  if (at === slices.length - 1 - centreK) return (k) => slices.length - 1 - k;
  return (k) => k + (at - centreK);
}
