/**
 * @module A study's pixels as one volume: the series the model wants is chosen with QIDO-RS (the
 * one of the model's modality with the most instances), its instances are streamed with WADO-RS,
 * decoded to modality values (HU for CT) one at a time, and sorted by ImagePositionPatient along
 * the slice normal (InstanceNumber when positions are missing). The volume keeps the DICOM
 * geometry (origin, directions, spacing) so that voxels map to patient coordinates (LPS, mm).
 */
import type { DataSet } from "dicom-parser";
import { parseDataSet, patientStudyAttributes } from "../dicom/codec/dataset.ts";
import { parseMediaType, readMultipart } from "../dicom/codec/multipart.ts";
import { decodeFrame, decodeStored, PixelDecodeError, pixelInfo } from "../dicom/codec/pixels.ts";
import { type ApiClient, ApiError } from "./api_client.ts";
import { fatal } from "./errors.ts";
import type { SliceSampler } from "./preprocess.ts";

export type Vec3 = [number, number, number];

export interface Volume {
  /**
   * One plane per slice, `[z][row][column]`: modality values (HU for CT) at the series' size
   * (`values` "modality"), or, when the builder had a sampler, the model's input planes
   * (`values` "model-input", windowed and resized to `plane`).
   */
  data: Float32Array;
  values: "modality" | "model-input";
  /** The size of each plane of `data`: the series' rows × columns unless sampled. */
  plane: { height: number; width: number };
  /** The series' voxel grid (columns, rows, slices), whatever `data` holds. */
  dims: { x: number; y: number; z: number };
  /** mm: x between columns, y between rows, z between slices. */
  spacing: { x: number; y: number; z: number };
  /** ImagePositionPatient of slice 0: the centre of its first voxel (LPS, mm). */
  origin: Vec3;
  /** Unit vector of increasing column index (ImageOrientationPatient 1–3). */
  rowDirection: Vec3;
  /** Unit vector of increasing row index (ImageOrientationPatient 4–6). */
  columnDirection: Vec3;
  /** From one slice's position to the next's (mm). */
  sliceStep: Vec3;
  sopInstanceUids: string[];
  instanceNumbers: number[];
  studyInstanceUid: string;
  seriesInstanceUid: string;
  modality: string;
  bodyPart?: string;
  /** StudyDate and StudyTime as a FHIR dateTime, when present. */
  studyDateTime?: string;
  frameOfReferenceUid?: string;
  /** ImagePositionPatient of each slice, in slice order (computed where the series has none). */
  positions: Vec3[];
  /** SOP Class of the images (CT Image Storage…), for references to them. */
  sopClassUid: string;
  /** SliceThickness (mm), when the series gives it. */
  sliceThickness?: number;
  /**
   * The Patient and General Study attributes of the series (naturalized keywords, decoded with
   * its character set), for the DICOM results written into the same study. Type 2 attributes
   * the series lacks are empty strings.
   */
  patientStudy: Record<string, string>;
  /** What was noticed and worked around (uneven spacing, dropped slices). */
  warnings: string[];
}

interface Slice {
  sopInstanceUid: string;
  instanceNumber: number;
  position?: Vec3;
  orientation?: number[];
  rows: number;
  cols: number;
  pixelSpacing?: [number, number];
  /** Modality values, or the sampler's plane. */
  plane: Float32Array;
}

/** Collects instances (Part 10 bytes) of one series and assembles them into a Volume. */
export interface VolumeBuilder {
  add(bytes: Uint8Array): void;
  /** Instances added that hold an image. */
  readonly count: number;
  finish(): Volume;
}

/**
 * `seriesInstanceUid`: instances of other series are skipped. `sampler`: each slice is mapped to
 * the model's plane as it arrives (window + resize in one pass over the stored values), so the
 * full-size modality volume is never held.
 */
export function createVolumeBuilder(
  expect?: { seriesInstanceUid?: string; sampler?: SliceSampler },
): VolumeBuilder {
  const slices: Slice[] = [];
  const warnings: string[] = [];
  let first: DataSet | undefined;
  let index = 0;
  return {
    get count() {
      return slices.length;
    },
    add(bytes) {
      const n = index++;
      let ds: DataSet;
      try {
        ds = parseDataSet(bytes);
      } catch (e) {
        throw fatal(`Instance ${n + 1} of the series is not readable DICOM: ${describe(e)}`);
      }
      const series = text(ds, "x0020000e");
      if (expect?.seriesInstanceUid && series !== expect.seriesInstanceUid) return;
      if (!ds.elements.x7fe00010) return; // not an image (a report, a presentation state)
      const sop = text(ds, "x00080018") ?? `instance ${n + 1}`;
      let info: ReturnType<typeof pixelInfo>;
      try {
        info = pixelInfo(ds);
      } catch (e) {
        if (e instanceof PixelDecodeError) throw fatal(`Instance ${sop}: ${e.message}`);
        throw e;
      }
      if (info.samples !== 1) {
        throw fatal(
          `Instance ${
            text(ds, "x00080018")
          } is colour (${info.photometric}); the model reads greyscale`,
        );
      }
      if (info.frames > 1) {
        throw fatal(
          `Instance ${
            text(ds, "x00080018")
          } has ${info.frames} frames; multi-frame series are not supported yet`,
        );
      }
      let plane: Float32Array;
      try {
        plane = expect?.sampler
          ? expect.sampler.sample(decodeStored(ds, info, 0), info)
          : decodeFrame(ds, info, 0);
      } catch (e) {
        if (e instanceof PixelDecodeError) throw fatal(`Instance ${sop}: ${e.message}`);
        throw e;
      }
      first ??= ds;
      const spacing = numbers(ds, "x00280030");
      slices.push({
        sopInstanceUid: sop,
        instanceNumber: numbers(ds, "x00200013")?.[0] ?? n + 1,
        position: vec3(numbers(ds, "x00200032")),
        orientation: numbers(ds, "x00200037")?.length === 6 ? numbers(ds, "x00200037") : undefined,
        rows: info.rows,
        cols: info.cols,
        pixelSpacing: spacing?.length === 2 && spacing.every((v) => v > 0)
          ? [spacing[0], spacing[1]]
          : undefined,
        plane,
      });
    },
    finish() {
      if (!first || !slices.length) throw fatal("The series holds no images");
      const sampler = expect?.sampler;
      return assemble(slices, first, warnings, sampler && { ...sampler });
    },
  };
}

function assemble(
  all: Slice[],
  ds: DataSet,
  warnings: string[],
  sampled?: { height: number; width: number },
): Volume {
  // Keep the largest group of one size and orientation (drops localizers and odd images).
  const key = (s: Slice) =>
    `${s.rows}x${s.cols}:${s.orientation?.map((v) => v.toFixed(3)).join(",") ?? "-"}`;
  const groups = new Map<string, Slice[]>();
  for (const s of all) groups.set(key(s), [...(groups.get(key(s)) ?? []), s]);
  const slices = [...groups.values()].sort((a, b) => b.length - a.length)[0];
  if (slices.length < all.length) {
    warnings.push(
      `${
        all.length - slices.length
      } of ${all.length} images differ in size or orientation and were left out`,
    );
  }
  const s0 = slices[0];
  const orientation = s0.orientation ?? [1, 0, 0, 0, 1, 0];
  const rowDirection = unit([orientation[0], orientation[1], orientation[2]]);
  const columnDirection = unit([orientation[3], orientation[4], orientation[5]]);
  const normal = unit(cross(rowDirection, columnDirection));
  const [rowSpacing, colSpacing] = s0.pixelSpacing ?? [1, 1];
  if (!s0.pixelSpacing) warnings.push("PixelSpacing is missing: 1 mm assumed");

  const positioned = slices.every((s) => s.position);
  if (positioned) {
    slices.sort((a, b) => dot(a.position!, normal) - dot(b.position!, normal));
    // Keep the scanner's numbering direction (instance 1 first) when it runs against the normal.
    const n = slices.length;
    if (n > 1 && slices[0].instanceNumber > slices[n - 1].instanceNumber) slices.reverse();
  } else {
    slices.sort((a, b) => a.instanceNumber - b.instanceNumber);
    warnings.push("ImagePositionPatient is missing: slices sorted by InstanceNumber");
  }

  let sliceStep: Vec3;
  let zSpacing: number;
  if (positioned && slices.length > 1) {
    const gaps = slices.slice(1).map((s, i) =>
      Math.abs(dot(s.position!, normal) - dot(slices[i].position!, normal))
    );
    zSpacing = median(gaps);
    if (zSpacing <= 0) throw fatal("Every slice of the series lies at the same position");
    if (gaps.some((g) => Math.abs(g - zSpacing) > 0.1 * zSpacing)) {
      warnings.push(
        `Slice gaps vary from ${Math.min(...gaps).toFixed(2)} to ${
          Math.max(...gaps).toFixed(2)
        } mm: volumes use the median ${zSpacing.toFixed(2)} mm`,
      );
    }
    const last = slices[slices.length - 1].position!;
    const firstPos = slices[0].position!;
    const k = slices.length - 1;
    sliceStep = [
      (last[0] - firstPos[0]) / k,
      (last[1] - firstPos[1]) / k,
      (last[2] - firstPos[2]) / k,
    ];
  } else {
    zSpacing = numbers(ds, "x00180088")?.[0] ?? numbers(ds, "x00180050")?.[0] ?? 1;
    sliceStep = [normal[0] * zSpacing, normal[1] * zSpacing, normal[2] * zSpacing];
  }

  const plane = sampled
    ? { height: sampled.height, width: sampled.width }
    : { height: s0.rows, width: s0.cols };
  const size = plane.height * plane.width;
  const data = new Float32Array(size * slices.length);
  slices.forEach((s, z) => data.set(s.plane, z * size));
  const date = text(ds, "x00080020");
  return {
    data,
    values: sampled ? "model-input" : "modality",
    plane,
    dims: { x: s0.cols, y: s0.rows, z: slices.length },
    spacing: { x: colSpacing, y: rowSpacing, z: zSpacing },
    origin: slices[0].position ?? [0, 0, 0],
    rowDirection,
    columnDirection,
    sliceStep,
    sopInstanceUids: slices.map((s) => s.sopInstanceUid),
    instanceNumbers: slices.map((s) => s.instanceNumber),
    studyInstanceUid: text(ds, "x0020000d") ?? "",
    seriesInstanceUid: text(ds, "x0020000e") ?? "",
    modality: text(ds, "x00080060") ?? "",
    bodyPart: text(ds, "x00180015"),
    studyDateTime: date
      ? dicomDateTime(date, text(ds, "x00080030"), text(ds, "x00080201"))
      : undefined,
    frameOfReferenceUid: text(ds, "x00200052"),
    positions: slices.map((s, z) =>
      s.position ?? [
        (slices[0].position ?? [0, 0, 0])[0] + z * sliceStep[0],
        (slices[0].position ?? [0, 0, 0])[1] + z * sliceStep[1],
        (slices[0].position ?? [0, 0, 0])[2] + z * sliceStep[2],
      ]
    ),
    sopClassUid: text(ds, "x00080016") ?? "",
    sliceThickness: numbers(ds, "x00180050")?.[0],
    patientStudy: patientStudyAttributes(ds),
    warnings,
  };
}

type Placement = Pick<
  Volume,
  "origin" | "spacing" | "rowDirection" | "columnDirection" | "sliceStep"
>;

/** Patient coordinates (LPS, mm) of a (fractional) voxel index: i column, j row, k slice. */
export function voxelToPatient(v: Placement, i: number, j: number, k: number): Vec3 {
  const out: Vec3 = [0, 0, 0];
  for (let a = 0; a < 3; a++) {
    out[a] = v.origin[a] + i * v.spacing.x * v.rowDirection[a] +
      j * v.spacing.y * v.columnDirection[a] + k * v.sliceStep[a];
  }
  return out;
}

/** The (fractional) voxel index of a patient position: the inverse of `voxelToPatient`. */
export function patientToVoxel(v: Placement, p: readonly number[]): Vec3 {
  const d = [p[0] - v.origin[0], p[1] - v.origin[1], p[2] - v.origin[2]];
  const dot = (u: readonly number[]) => d[0] * u[0] + d[1] * u[1] + d[2] * u[2];
  const step = Math.hypot(...v.sliceStep) || 1;
  return [
    dot(v.rowDirection) / v.spacing.x,
    dot(v.columnDirection) / v.spacing.y,
    dot(v.sliceStep.map((s) => s / step)) / step,
  ];
}

/** The series of `studyUid` a model reads: its modality, the most instances. */
export async function chooseSeries(
  api: ApiClient,
  studyUid: string,
  modality: string,
  requestId?: string,
): Promise<{ seriesInstanceUid: string; instances: number }> {
  const path = `dicomweb/studies/${encodeURIComponent(studyUid)}/series`;
  const response = await api.request(path, {
    headers: { Accept: "application/dicom+json" },
    requestId,
  });
  if (response.status === 404 || response.status === 204) {
    await response.body?.cancel();
    throw fatal(`Study ${studyUid} is not stored (QIDO-RS found no series)`);
  }
  if (!response.ok) throw new ApiError(response.status, "GET", path, await response.text());
  const rows = (await response.json()) as Record<string, { Value?: unknown[] }>[];
  const series = rows.map((r) => ({
    uid: String(r["0020000E"]?.Value?.[0] ?? ""),
    modality: String(r["00080060"]?.Value?.[0] ?? ""),
    instances: Number(r["00201209"]?.Value?.[0] ?? 0),
  }));
  const fitting = series.filter((s) => s.uid && s.modality.toUpperCase() === modality.toUpperCase())
    .sort((a, b) => b.instances - a.instances);
  if (!fitting.length) {
    const found = series.map((s) => `${s.modality || "?"} (${s.instances} instances)`).join(", ");
    throw fatal(
      `Study ${studyUid} has no ${modality} series for the model${
        found ? `; it has ${found}` : ""
      }`,
    );
  }
  return { seriesInstanceUid: fitting[0].uid, instances: fitting[0].instances };
}

/**
 * Streams the series with WADO-RS into a VolumeBuilder and assembles the volume. With
 * `expectedInstances` (the count QIDO-RS reported), fewer parts than that is a fatal error: the
 * API leaves out an instance whose bytes are missing from the object store, and a volume with a
 * slice missing must not be analysed as if it were whole.
 */
export async function loadSeriesVolume(
  api: ApiClient,
  studyUid: string,
  seriesUid: string,
  options: {
    requestId?: string;
    signal?: AbortSignal;
    expectedInstances?: number;
    sampler?: SliceSampler;
  } = {},
): Promise<Volume> {
  const path = `dicomweb/studies/${encodeURIComponent(studyUid)}/series/${
    encodeURIComponent(seriesUid)
  }`;
  const response = await api.request(path, {
    headers: { Accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' },
    requestId: options.requestId,
    signal: options.signal,
  });
  if (response.status === 404 || response.status === 410) {
    const body = await response.text();
    throw fatal(
      `WADO-RS cannot retrieve series ${seriesUid}: ${response.status} ${body.slice(0, 200)}`,
    );
  }
  if (!response.ok || !response.body) {
    throw new ApiError(response.status, "GET", path, await response.text());
  }
  if (response.status === 206) {
    // Some instances' bytes are missing from the store; the Warning header names them.
    await response.body.cancel();
    throw fatal(
      `WADO-RS returned only part of series ${seriesUid} (206 Partial Content): ${
        response.headers.get("warning") ?? "no Warning header"
      }`,
    );
  }
  const { params } = parseMediaType(response.headers.get("content-type") ?? "");
  if (!params.boundary) throw new Error(`WADO-RS answered without a multipart boundary`);
  const builder = createVolumeBuilder({ seriesInstanceUid: seriesUid, sampler: options.sampler });
  let parts = 0;
  for await (
    const part of readMultipart(response.body, params.boundary, {
      maxPartBytes: 2 ** 31,
      maxTotalBytes: Number.MAX_SAFE_INTEGER,
    })
  ) {
    options.signal?.throwIfAborted();
    builder.add(part.body);
    parts++;
  }
  const expected = options.expectedInstances;
  if (expected !== undefined && parts < expected) {
    throw fatal(
      `WADO-RS returned ${parts} of the ${expected} instances of series ${seriesUid}: ` +
        `the bytes of ${expected - parts} are missing from the store`,
    );
  }
  return builder.finish();
}

/** Chooses the series for `modality` and loads it. */
export async function loadStudyVolume(
  api: ApiClient,
  studyUid: string,
  modality: string,
  options: { requestId?: string; signal?: AbortSignal; sampler?: SliceSampler } = {},
): Promise<Volume> {
  const { seriesInstanceUid, instances } = await chooseSeries(
    api,
    studyUid,
    modality,
    options.requestId,
  );
  return await loadSeriesVolume(api, studyUid, seriesInstanceUid, {
    ...options,
    expectedInstances: instances,
  });
}

function text(ds: DataSet, tag: string): string | undefined {
  const v = ds.string(tag)?.replace(/\0/g, "").trim();
  return v || undefined;
}

function numbers(ds: DataSet, tag: string): number[] | undefined {
  const v = text(ds, tag);
  if (!v) return undefined;
  const out = v.split("\\").map((s) => Number(s.trim()));
  return out.every(Number.isFinite) ? out : undefined;
}

function vec3(v: number[] | undefined): Vec3 | undefined {
  return v && v.length === 3 ? [v[0], v[1], v[2]] : undefined;
}

/**
 * DICOM DA (+ TM and TimezoneOffsetFromUTC) as a FHIR dateTime. FHIR needs a zone with a time;
 * without one only the date is kept.
 */
export function dicomDateTime(da: string, tm?: string, tz?: string): string | undefined {
  const d = /^(\d{4})(\d{2})(\d{2})$/.exec(da.trim());
  if (!d) return undefined;
  const date = `${d[1]}-${d[2]}-${d[3]}`;
  const t = tm ? /^(\d{2})(\d{2})(\d{2})?/.exec(tm.trim()) : null;
  const z = tz ? /^([+-])(\d{2})(\d{2})$/.exec(tz.trim()) : null;
  if (!t || !z) return date;
  return `${date}T${t[1]}:${t[2]}:${t[3] ?? "00"}${z[1]}${z[2]}:${z[3]}`;
}

function describe(e: unknown): string {
  if (e instanceof Error) return e.message;
  if (typeof e === "string") return e;
  const o = e as { exception?: string };
  return o?.exception ?? JSON.stringify(e);
}

const dot = (a: Vec3, b: Vec3) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
const cross = (a: Vec3, b: Vec3): Vec3 => [
  a[1] * b[2] - a[2] * b[1],
  a[2] * b[0] - a[0] * b[2],
  a[0] * b[1] - a[1] * b[0],
];
function unit(v: Vec3): Vec3 {
  const n = Math.hypot(v[0], v[1], v[2]);
  if (!(n > 0)) throw new PixelDecodeError("ImageOrientationPatient is degenerate");
  return [v[0] / n, v[1] / n, v[2] / n];
}
function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
