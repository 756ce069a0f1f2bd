/**
 * @module The model's preprocessing: HU window onto a range, bilinear resize to the model's input
 * size, neighbouring slices stacked as channels (2.5D), and batches in NCHW order; and the way
 * back: an output's probability map (activation applied) resized to the image.
 */
import type { ModelManifest } from "./manifest.ts";

/** `lo + (hi − lo) · clamp((hu − (center − width/2)) / width, 0, 1)` for every value. */
export function applyWindow(
  hu: ArrayLike<number>,
  window: { center: number; width: number },
  rescale: readonly [number, number] = [0, 1],
  out = new Float32Array(hu.length),
): Float32Array {
  const low = window.center - window.width / 2;
  const [lo, hi] = rescale;
  const scale = (hi - lo) / window.width;
  for (let i = 0; i < hu.length; i++) {
    const t = hu[i] - low;
    out[i] = t <= 0 ? lo : t >= window.width ? hi : lo + t * scale;
  }
  return out;
}

/**
 * Resizes a `srcH × srcW` image (row-major) to `dstH × dstW`: bilinear with half-pixel centres
 * (PyTorch `interpolate(align_corners=False)`, OpenCV `INTER_LINEAR`), or nearest neighbour.
 */
export function resize2d(
  src: ArrayLike<number>,
  srcH: number,
  srcW: number,
  dstH: number,
  dstW: number,
  interpolation: "bilinear" | "nearest" = "bilinear",
  out = new Float32Array(dstH * dstW),
): Float32Array {
  if (srcH === dstH && srcW === dstW) {
    for (let i = 0; i < out.length; i++) out[i] = src[i];
    return out;
  }
  const sy = srcH / dstH, sx = srcW / dstW;
  if (interpolation === "nearest") {
    for (let y = 0; y < dstH; y++) {
      const yy = Math.min(srcH - 1, Math.floor((y + 0.5) * sy));
      for (let x = 0; x < dstW; x++) {
        out[y * dstW + x] = src[yy * srcW + Math.min(srcW - 1, Math.floor((x + 0.5) * sx))];
      }
    }
    return out;
  }
  const { x0, x1, fx } = bilinearTaps(srcW, dstW);
  for (let y = 0; y < dstH; y++) {
    const p = Math.max(0, (y + 0.5) * sy - 0.5);
    const r0 = Math.min(srcH - 1, Math.floor(p)) * srcW;
    const r1 = Math.min(srcH - 1, Math.floor(p) + 1) * srcW;
    const fy = p - Math.floor(p);
    for (let x = 0; x < dstW; x++) {
      const top = src[r0 + x0[x]] + (src[r0 + x1[x]] - src[r0 + x0[x]]) * fx[x];
      const bottom = src[r1 + x0[x]] + (src[r1 + x1[x]] - src[r1 + x0[x]]) * fx[x];
      out[y * dstW + x] = top + (bottom - top) * fy;
    }
  }
  return out;
}

/** How stored sample values become modality values (the pixel module's attributes). */
export interface StoredValues {
  signed: boolean;
  bitsStored: number;
  bitsAllocated: number;
  slope: number;
  intercept: number;
}

/**
 * A table from every 16-bit stored value (indexed by `value & 0xffff`) to the windowed value the
 * model reads: sign of `BitsStored` fixed, rescale slope and intercept applied (as float32, as
 * `decodeFrame` does), then `applyWindow`. Looking a value up is the whole per-pixel cost.
 */
export function windowTable(
  px: StoredValues,
  window: { center: number; width: number },
  rescale: readonly [number, number] = [0, 1],
): Float32Array {
  const shift = 32 - px.bitsStored;
  const fix = px.signed && px.bitsStored < px.bitsAllocated;
  const hu = new Float32Array(65536);
  for (let u = 0; u < 65536; u++) {
    let v = px.signed && px.bitsAllocated > 8 ? (u << 16) >> 16 : u;
    if (px.signed && px.bitsAllocated <= 8) v = (u << 24) >> 24;
    if (fix) v = (v << shift) >> shift;
    hu[u] = v * px.slope + px.intercept;
  }
  return applyWindow(hu, window, rescale, hu);
}

/**
 * Windows stored values through `table` and resizes them from `rows × cols` to `height × width`
 * in one pass, with the same arithmetic as `applyWindow` + `resize2d` (so the same float32
 * result), but without a full-size intermediate: each source row is windowed once, when the
 * first output row that needs it is made.
 */
export function sampleStoredPlane(
  stored: ArrayLike<number>,
  rows: number,
  cols: number,
  table: Float32Array,
  height: number,
  width: number,
  interpolation: "bilinear" | "nearest",
  out: Float32Array,
): Float32Array {
  if (interpolation === "nearest" || (rows === height && cols === width)) {
    const sy = rows / height, sx = cols / width;
    for (let y = 0; y < height; y++) {
      const r = Math.min(rows - 1, Math.floor((y + 0.5) * sy)) * cols;
      for (let x = 0; x < width; x++) {
        out[y * width + x] =
          table[stored[r + Math.min(cols - 1, Math.floor((x + 0.5) * sx))] & 0xffff];
      }
    }
    return out;
  }
  const { x0, x1, fx } = bilinearTaps(cols, width);
  const sy = rows / height;
  const windowed = [new Float32Array(cols), new Float32Array(cols)];
  const held = [-1, -1];
  const row = (r: number): Float32Array => {
    if (held[0] === r) return windowed[0];
    if (held[1] === r) return windowed[1];
    // Replace the row that is not the other one needed (rows only move forward).
    const slot = held[0] < held[1] ? 0 : 1;
    const dst = windowed[slot];
    const base = r * cols;
    for (let x = 0; x < cols; x++) dst[x] = table[stored[base + x] & 0xffff];
    held[slot] = r;
    return dst;
  };
  for (let y = 0; y < height; y++) {
    const p = Math.max(0, (y + 0.5) * sy - 0.5);
    const r0 = Math.min(rows - 1, Math.floor(p));
    const r1 = Math.min(rows - 1, Math.floor(p) + 1);
    const fy = p - Math.floor(p);
    const a = row(r0);
    const b = r1 === r0 ? a : row(r1);
    const o = y * width;
    for (let x = 0; x < width; x++) {
      const top = a[x0[x]] + (a[x1[x]] - a[x0[x]]) * fx[x];
      const bottom = b[x0[x]] + (b[x1[x]] - b[x0[x]]) * fx[x];
      out[o + x] = top + (bottom - top) * fy;
    }
  }
  return out;
}

/** The source columns and weights of a bilinear resize from `src` to `dst` (half-pixel centres). */
export function bilinearTaps(
  src: number,
  dst: number,
): { x0: Int32Array; x1: Int32Array; fx: Float32Array } {
  const s = src / dst;
  const x0 = new Int32Array(dst), x1 = new Int32Array(dst), fx = new Float32Array(dst);
  for (let x = 0; x < dst; x++) {
    const p = Math.max(0, (x + 0.5) * s - 0.5);
    x0[x] = Math.min(src - 1, Math.floor(p));
    x1[x] = Math.min(src - 1, x0[x] + 1);
    fx[x] = p - Math.floor(p);
  }
  return { x0, x1, fx };
}

/**
 * Maps one decoded greyscale frame straight to the model's input plane (window, then resize),
 * for the volume builder: slices are kept at the model's size, never as full-size HU planes.
 */
export interface SliceSampler {
  height: number;
  width: number;
  sample(
    stored: ArrayLike<number>,
    px: StoredValues & { rows: number; cols: number },
  ): Float32Array;
}

/** The sampler of a model's preprocessing; window tables are cached per pixel encoding. */
export function modelSampler(manifest: ModelManifest): SliceSampler {
  const { height, width } = manifest.input;
  const { window, rescale, resize } = manifest.preprocessing;
  const interpolation = resize?.interpolation ?? "bilinear";
  const tables = new Map<string, Float32Array>();
  return {
    height,
    width,
    sample(stored, px) {
      const out = new Float32Array(height * width);
      if (px.bitsAllocated > 16) {
        // Not a 16-bit domain: modality values, then the two steps apart.
        const hu = new Float32Array(px.rows * px.cols);
        const shift = 32 - px.bitsStored;
        const fix = px.signed && px.bitsStored < px.bitsAllocated;
        for (let i = 0; i < hu.length; i++) {
          const v = fix ? (stored[i] << shift) >> shift : stored[i];
          hu[i] = v * px.slope + px.intercept;
        }
        applyWindow(hu, window, rescale, hu);
        return resize2d(hu, px.rows, px.cols, height, width, interpolation, out);
      }
      const key = `${px.signed}:${px.bitsStored}:${px.bitsAllocated}:${px.slope}:${px.intercept}`;
      let table = tables.get(key);
      if (!table) {
        table = windowTable(px, window, rescale);
        if (tables.size > 16) tables.clear();
        tables.set(key, table);
      }
      return sampleStoredPlane(stored, px.rows, px.cols, table, height, width, interpolation, out);
    },
  };
}

/** Slices windowed and resized to the model's plane: `depth` planes of `height × width`. */
export interface PreparedSlices {
  data: Float32Array;
  depth: number;
  height: number;
  width: number;
}

/** Windows and resizes every slice of a `[z][y][x]` HU volume for `manifest`. */
export function prepareSlices(
  hu: Float32Array,
  dims: { x: number; y: number; z: number },
  manifest: ModelManifest,
): PreparedSlices {
  const { height, width } = manifest.input;
  const { window, rescale, resize } = manifest.preprocessing;
  const plane = dims.x * dims.y;
  const data = new Float32Array(dims.z * height * width);
  const scratch = new Float32Array(plane);
  for (let z = 0; z < dims.z; z++) {
    applyWindow(hu.subarray(z * plane, (z + 1) * plane), window, rescale, scratch);
    resize2d(
      scratch,
      dims.y,
      dims.x,
      height,
      width,
      resize?.interpolation ?? "bilinear",
      data.subarray(z * height * width, (z + 1) * height * width),
    );
  }
  return { data, depth: dims.z, height, width };
}

/** One model call's input: one sample per slice of `slices`, NCHW. */
export interface Batch {
  /** The slice (z) each sample is for. */
  slices: number[];
  data: Float32Array;
  dims: [number, number, number, number];
}

/**
 * Batches of up to `batch` samples for the slices `indices` (default: all); the sample for slice
 * z holds slices z + offsets[c] as its channels (e.g. −1, 0, 1), clamped to the series, so the
 * first and last slices repeat themselves. A fractional offset (neighbours spaced in mm) is the
 * linear interpolation of the two slices around it.
 */
export function* makeBatches(
  prepared: PreparedSlices,
  offsets: readonly number[],
  batch: number,
  indices: readonly number[] = Array.from({ length: prepared.depth }, (_, z) => z),
): Generator<Batch> {
  const { data, depth, height, width } = prepared;
  const plane = height * width;
  const channels = offsets.length;
  const slice = (z: number) => data.subarray(z * plane, (z + 1) * plane);
  for (let first = 0; first < indices.length; first += batch) {
    const slices = indices.slice(first, first + batch);
    const out = new Float32Array(slices.length * channels * plane);
    slices.forEach((zc, s) => {
      for (let c = 0; c < channels; c++) {
        const at = Math.min(depth - 1, Math.max(0, zc + offsets[c]));
        const z0 = Math.floor(at), t = at - z0;
        const dst = out.subarray((s * channels + c) * plane, (s * channels + c + 1) * plane);
        if (t < 1e-6 || z0 + 1 >= depth) {
          dst.set(slice(z0));
          continue;
        }
        const a = slice(z0), b = slice(z0 + 1);
        for (let i = 0; i < plane; i++) dst[i] = a[i] + (b[i] - a[i]) * t;
      }
    });
    yield { slices, data: out, dims: [slices.length, channels, height, width] };
  }
}

/** Slice offsets of the channels: as given, or from mm steps and the series' slice spacing. */
export function sliceOffsets(
  input: { offsets: readonly number[]; neighbourSpacingMm?: number },
  sliceMm: number,
): number[] {
  if (!input.neighbourSpacingMm || !(sliceMm > 0)) return [...input.offsets];
  return input.offsets.map((o) => (o * input.neighbourSpacingMm!) / sliceMm);
}

/** The slices a stride runs: 0, stride, 2·stride, … and always the last. */
export function strideIndices(depth: number, stride: number): number[] {
  const out: number[] = [];
  for (let z = 0; z < depth; z += Math.max(1, stride)) out.push(z);
  if (out[out.length - 1] !== depth - 1) out.push(depth - 1);
  return out;
}

/** Mirrors every row of `width` values of `data` left-right (the last axis), into a copy. */
export function flipPlanes(data: Float32Array, width: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let row = 0; row < data.length; row += width) {
    for (let x = 0; x < width; x++) out[row + x] = data[row + width - 1 - x];
  }
  return out;
}

/**
 * The probability plane in output channel `channel` for sample `s` of a model output `[N, C, H,
 * W]` (or `[N, H, W]`), with the manifest's activation applied: sigmoid per value, or softmax
 * across channels.
 */
export function probabilityPlane(
  output: Float32Array,
  dims: readonly number[],
  s: number,
  manifest: ModelManifest,
  channel: number,
): Float32Array {
  const channels = dims.length === 4 ? dims[1] : 1;
  const plane = dims[dims.length - 2] * dims[dims.length - 1];
  if (channel >= channels) {
    throw new Error(`The output has ${channels} channel(s); channel ${channel} is not one`);
  }
  const at = (c: number) =>
    output.subarray((s * channels + c) * plane, (s * channels + c + 1) * plane);
  const out = new Float32Array(plane);
  const { kind, activation } = manifest.output;
  const values = at(channel);
  if (kind === "probability" || activation === "none") {
    for (let i = 0; i < plane; i++) out[i] = Math.min(1, Math.max(0, values[i]));
  } else if (activation === "sigmoid" || channels === 1) {
    for (let i = 0; i < plane; i++) out[i] = 1 / (1 + Math.exp(-values[i]));
  } else {
    const all = Array.from({ length: channels }, (_, c) => at(c));
    for (let i = 0; i < plane; i++) {
      let max = -Infinity;
      for (const a of all) max = Math.max(max, a[i]);
      let sum = 0;
      for (const a of all) sum += Math.exp(a[i] - max);
      out[i] = Math.exp(values[i] - max) / sum;
    }
  }
  return out;
}
