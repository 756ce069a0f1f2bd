/**
 * @module A DICOM Segmentation (binary SEG, PS3.3 A.51) as the viewer draws it: parsed with
 * dicom-parser, each frame placed on a slice of the shown series (by the SOP Instance UID its
 * Derivation Image Sequence names, else by its plane position on the same grid) and tied to its
 * segment; frames unpacked from the 1-bit stream (PS3.5 8.1.1: frames back to back, so one may
 * start mid-byte) and outlined along pixel edges, each slice once, on demand.
 */
import dicomParser, { type DataSet, type Element } from "dicom-parser";
import { inflateSync } from "fflate";
import type { Resource } from "./fhir_types.ts";
import type { SliceInfo } from "./series.ts";

export const SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4";

export interface SegSegment {
  number: number;
  label?: string;
  trackingId?: string;
}

export interface SegFrame {
  /** ReferencedSegmentNumber (0 when the frame names none). */
  segment: number;
  /** The source images (Derivation Image Sequence → Source Image Sequence). */
  sources: string[];
  /** ImagePositionPatient (LPS mm). */
  position?: [number, number, number];
}

export interface Segmentation {
  sopInstanceUid: string;
  rows: number;
  columns: number;
  segments: SegSegment[];
  frames: SegFrame[];
  /** ImageOrientationPatient (row direction, then column direction). */
  orientation?: number[];
  /** mm between rows, then between columns. */
  pixelSpacing?: [number, number];
  /** The frames' bits, back to back. */
  pixels: Uint8Array;
}

/** Sequences read here: typed for implicit-VR files, whose sequences are otherwise opaque. */
const SEQUENCES = new Set([
  "x00620002", // SegmentSequence
  "x52009229", // SharedFunctionalGroupsSequence
  "x52009230", // PerFrameFunctionalGroupsSequence
  "x0062000a", // SegmentIdentificationSequence
  "x00209113", // PlanePositionSequence
  "x00209116", // PlaneOrientationSequence
  "x00289110", // PixelMeasuresSequence
  "x00089124", // DerivationImageSequence
  "x00082112", // SourceImageSequence
]);

const OPTIONS = {
  vrCallback: (tag: string) => SEQUENCES.has(tag) ? "SQ" : undefined,
  inflater(bytes: Uint8Array, position: number): Uint8Array {
    const inflated = inflateSync(bytes.subarray(position));
    const full = new Uint8Array(position + inflated.length);
    full.set(bytes.subarray(0, position));
    full.set(inflated, position);
    return full;
  },
} as unknown as dicomParser.ParseDicomOptions;

const NATIVE = new Set(["1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.1.99"]);

const items = (ds: DataSet | undefined, tag: string): DataSet[] =>
  (ds?.elements[tag]?.items ?? []).map((i: Element) => i.dataSet).filter((d) => d !== undefined);

const numbers = (ds: DataSet | undefined, tag: string): number[] => {
  const n = ds?.numStringValues(tag) ?? 0;
  return Array.from({ length: n }, (_, i) => ds!.floatString(tag, i)!);
};

/** The first value of `tag` in the per-frame item, else in the shared one. */
function fromGroups<T>(
  frame: DataSet | undefined,
  shared: DataSet | undefined,
  read: (group: DataSet) => T | undefined,
): T | undefined {
  return (frame && read(frame)) ?? (shared && read(shared));
}

/**
 * A binary Segmentation from its Part 10 bytes. Throws an Error for anything else (another SOP
 * Class, a fractional or compressed one, pixel data shorter than its frames).
 */
export function parseSegmentation(bytes: Uint8Array): Segmentation {
  let ds: DataSet;
  try {
    ds = dicomParser.parseDicom(bytes, OPTIONS);
  } catch (e) {
    // dicom-parser throws strings, or objects with the reason in `exception`.
    const why = e instanceof Error
      ? e.message
      : (e as { exception?: string })?.exception ?? String(e);
    throw new Error(`not a readable DICOM file: ${why}`);
  }
  const sopClass = ds.string("x00080016");
  if (sopClass !== SEGMENTATION_STORAGE) {
    throw new Error(`SOP Class ${sopClass ?? "(none)"} is not a Segmentation`);
  }
  const syntax = ds.string("x00020010") ?? "1.2.840.10008.1.2";
  if (!NATIVE.has(syntax)) throw new Error(`transfer syntax ${syntax} is not read here`);
  const type = ds.string("x00620001");
  const bits = ds.uint16("x00280100");
  if (type !== "BINARY" || bits !== 1) {
    throw new Error(`a ${type ?? "?"} Segmentation of ${bits ?? "?"} bits is not read here`);
  }
  const rows = ds.uint16("x00280010") ?? 0, columns = ds.uint16("x00280011") ?? 0;
  const count = ds.intString("x00280008") ?? 1;
  const pixelData = ds.elements.x7fe00010;
  if (!rows || !columns || !pixelData || pixelData.encapsulatedPixelData) {
    throw new Error("the Segmentation has no native pixel data");
  }
  const pixels = new Uint8Array(
    ds.byteArray.buffer,
    ds.byteArray.byteOffset + pixelData.dataOffset,
    pixelData.length,
  );
  if (pixels.length * 8 < count * rows * columns) {
    throw new Error(
      `${pixels.length} bytes of pixel data for ${count} frames of ${rows}×${columns}`,
    );
  }
  const shared = items(ds, "x52009229")[0];
  const perFrame = items(ds, "x52009230");
  const frames: SegFrame[] = Array.from({ length: count }, (_, i) => {
    const f = perFrame[i];
    const segment = fromGroups(f, shared, (g) => items(g, "x0062000a")[0]?.uint16("x0062000b"));
    const sources = items(f, "x00089124").flatMap((d) => items(d, "x00082112"))
      .map((s) => s.string("x00081155")).filter((u) => u !== undefined);
    const position = fromGroups(f, shared, (g) => {
      const p = numbers(items(g, "x00209113")[0], "x00200032");
      return p.length === 3 ? p as [number, number, number] : undefined;
    });
    return { segment: segment ?? 0, sources, position };
  });
  const orientation = fromGroups(perFrame[0], shared, (g) => {
    const o = numbers(items(g, "x00209116")[0], "x00200037");
    return o.length === 6 ? o : undefined;
  });
  const pixelSpacing = fromGroups(perFrame[0], shared, (g) => {
    const s = numbers(items(g, "x00289110")[0], "x00280030");
    return s.length === 2 ? [s[0], s[1]] as [number, number] : undefined;
  });
  const segments = items(ds, "x00620002").map((s) => ({
    number: s.uint16("x00620004") ?? 0,
    label: s.string("x00620005"),
    trackingId: s.string("x00620020"),
  }));
  return {
    sopInstanceUid: ds.string("x00080018") ?? "",
    rows,
    columns,
    segments,
    frames,
    orientation,
    pixelSpacing,
    pixels,
  };
}

/** Frame `index` (0-based) of a 1-bit stream as one byte per pixel (0 or 1), row by row. */
export function unpackFrame(
  pixels: Uint8Array,
  index: number,
  rows: number,
  columns: number,
): Uint8Array {
  const n = rows * columns;
  const out = new Uint8Array(n);
  let bit = index * n;
  for (let i = 0; i < n; i++, bit++) out[i] = (pixels[bit >> 3] >> (bit & 7)) & 1;
  return out;
}

type Grid = Pick<
  SliceInfo,
  "sopInstanceUid" | "rows" | "columns" | "position" | "orientation" | "pixelSpacing"
>;

const near = (a: number[] | undefined, b: number[] | undefined, tolerance: number) =>
  !a || !b || (a.length === b.length && a.every((v, i) => Math.abs(v - b[i]) <= tolerance));

/**
 * The index in `slices` of each frame's slice, or -1: the slice its source SOP Instance UID
 * names, else (no source known here) the slice at its plane position on the same grid (rows,
 * columns, orientation and spacing alike, the position within a tenth of a pixel).
 */
export function frameSlices(seg: Segmentation, slices: Grid[]): number[] {
  const bySop = new Map(slices.map((s, i) => [s.sopInstanceUid, i]));
  const sameGrid = (s: Grid) =>
    s.rows === seg.rows && s.columns === seg.columns &&
    near(s.orientation, seg.orientation, 1e-3) &&
    near(s.pixelSpacing, seg.pixelSpacing, 1e-3);
  const tolerance = 0.1 * Math.min(...(seg.pixelSpacing ?? [1]));
  return seg.frames.map((f) => {
    for (const uid of f.sources) {
      const i = bySop.get(uid);
      if (i !== undefined) return sameGrid(slices[i]) ? i : -1;
    }
    if (!f.position) return -1;
    return slices.findIndex((s) =>
      !!s.position && sameGrid(s) && Math.hypot(...s.position.map((v, k) => v - f.position![k])) <=
        tolerance
    );
  });
}

/** A closed outline: its corners as x, y pairs in image coordinates (pixel corners). */
export type Loop = number[];

// Directions east, south, west, north (image coordinates: y grows downwards).
const DX = [1, 0, -1, 0], DY = [0, 1, 0, -1];

/**
 * The outlines of the pixels set in `mask` (`rows` × `columns`, row by row) along pixel edges:
 * one closed loop per boundary, the set pixels on its right (outer boundaries clockwise on
 * screen, holes anticlockwise), pixels that touch only at a corner apart (4-connected), each loop
 * starting at its top-left corner, corners only. Loops come in the order of their first corner.
 */
export function outline(mask: Uint8Array, rows: number, columns: number): Loop[] {
  const w = columns + 1;
  const edge = new Uint8Array(w * (rows + 1) * 4); // 1: a boundary edge from vertex v, direction d
  const set = (x: number, y: number) =>
    x >= 0 && y >= 0 && x < columns && y < rows && mask[y * columns + x] !== 0;
  for (let y = 0; y < rows; y++) {
    for (let x = 0; x < columns; x++) {
      if (!mask[y * columns + x]) continue;
      if (!set(x, y - 1)) edge[(y * w + x) * 4 + 0] = 1; // top edge, eastwards
      if (!set(x + 1, y)) edge[(y * w + x + 1) * 4 + 1] = 1; // right edge, southwards
      if (!set(x, y + 1)) edge[((y + 1) * w + x + 1) * 4 + 2] = 1; // bottom edge, westwards
      if (!set(x - 1, y)) edge[((y + 1) * w + x) * 4 + 3] = 1; // left edge, northwards
    }
  }
  const loops: Loop[] = [];
  for (let e0 = 0; e0 < edge.length; e0++) {
    if (edge[e0] !== 1) continue;
    const v0 = e0 >> 2;
    const loop: Loop = [v0 % w, Math.floor(v0 / w)];
    let v = v0, d = e0 & 3;
    for (;;) {
      edge[v * 4 + d] = 2; // traced
      v += DX[d] + DY[d] * w;
      // Where two boundaries meet at a corner, turn right: the set pixel's own boundary goes on.
      const right = (d + 1) & 3, left = (d + 3) & 3;
      const next = edge[v * 4 + right] ? right : edge[v * 4 + d] ? d : left;
      if (v === v0 && next === (e0 & 3)) break;
      if (next !== d) loop.push(v % w, Math.floor(v / w));
      d = next;
    }
    loops.push(loop);
  }
  return loops;
}

/** Whether image point (x, y) lies inside `loops` (even-odd: a hole's inside is out). */
export function insideLoops(loops: Loop[], x: number, y: number): boolean {
  let inside = false;
  for (const l of loops) {
    for (let i = 0, j = l.length - 2; i < l.length; j = i, i += 2) {
      const xi = l[i], yi = l[i + 1], xj = l[j], yj = l[j + 1];
      if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
    }
  }
  return inside;
}

/** One segment's outline on one slice, with its bounds (image coordinates). */
export interface SliceContour {
  segment: number;
  loops: Loop[];
  min: [number, number];
  max: [number, number];
}

/**
 * A Segmentation placed on the slices of one series: which segments it holds there, and each
 * slice's contours, outlined the first time the slice is asked for and kept.
 */
export class SegContours {
  readonly #frames = new Map<number, number[]>();
  readonly #cache = new Map<number, SliceContour[]>();
  /** The segments with at least one frame on these slices. */
  readonly segments: ReadonlySet<number>;

  constructor(readonly seg: Segmentation, slices: Grid[]) {
    const at = frameSlices(seg, slices);
    const segments = new Set<number>();
    at.forEach((k, i) => {
      if (k < 0 || !seg.frames[i].segment) return;
      segments.add(seg.frames[i].segment);
      const list = this.#frames.get(k) ?? [];
      list.push(i);
      this.#frames.set(k, list);
    });
    this.segments = segments;
  }

  /** The slice indices that carry a frame. */
  get slices(): number[] {
    return [...this.#frames.keys()].sort((a, b) => a - b);
  }

  /** The contours on slice `k`, by segment number (several frames of one segment merged). */
  at(k: number): SliceContour[] {
    const hit = this.#cache.get(k);
    if (hit) return hit;
    const { rows, columns, pixels } = this.seg;
    const masks = new Map<number, Uint8Array>();
    for (const i of this.#frames.get(k) ?? []) {
      const frame = unpackFrame(pixels, i, rows, columns);
      const segment = this.seg.frames[i].segment;
      const mask = masks.get(segment);
      if (mask) frame.forEach((v, p) => mask[p] |= v);
      else masks.set(segment, frame);
    }
    const out: SliceContour[] = [];
    for (const [segment, mask] of [...masks].sort((a, b) => a[0] - b[0])) {
      const loops = outline(mask, rows, columns);
      if (!loops.length) continue;
      const min: [number, number] = [Infinity, Infinity], max: [number, number] = [0, 0];
      for (const l of loops) {
        for (let i = 0; i < l.length; i += 2) {
          min[0] = Math.min(min[0], l[i]), min[1] = Math.min(min[1], l[i + 1]);
          max[0] = Math.max(max[0], l[i]), max[1] = Math.max(max[1], l[i + 1]);
        }
      }
      out.push({ segment, loops, min, max });
    }
    this.#cache.set(k, out);
    return out;
  }
}

/**
 * The WADO-RS path of a report's Segmentation (`presentedForm`, application/dicom, a
 * `…/dicomweb/studies/…/series/…/instances/…` URL whose title names a SEG), or undefined.
 */
export function segmentationPath(
  presentedForm: { contentType?: string; url?: string; title?: string }[] | undefined,
): string | undefined {
  for (const a of presentedForm ?? []) {
    if (a.contentType !== "application/dicom" || !/\bSEG\b|Segmentation/.test(a.title ?? "")) {
      continue;
    }
    const m = /\/dicomweb\/studies\/[^/?#]+\/series\/[^/?#]+\/instances\/[^/?#]+$/.exec(
      (a.url ?? "").replace(/[?#].*$/, ""),
    );
    if (m) return m[0];
  }
  return undefined;
}

/**
 * The segment number of a finding Observation: the number its analysis gave it (the suffix of its
 * `…#N` job identifier, which the SEG writer uses as the segment number), else `fallback`.
 */
export function segmentNumberOf(observation: Resource | undefined, fallback: number): number {
  for (const id of (observation?.identifier ?? []) as { value?: string }[]) {
    const m = /#(\d+)$/.exec(id.value ?? "");
    if (m) return Number(m[1]);
  }
  return fallback;
}
