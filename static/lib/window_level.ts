/**
 * @module Window and level: the CT presets, dragging (horizontal: width, vertical: level), and
 * mapping stored pixel values through the rescale and the window to grey levels, as a lookup table
 * over every stored value so a 512 × 512 slice is one pass of table reads.
 */

export interface Window {
  center: number;
  width: number;
}

export const PRESETS: Record<string, Window & { label: string; key: string }> = {
  lung: { label: "Lung", key: "1", center: -600, width: 1500 },
  mediastinum: { label: "Mediastinum", key: "2", center: 40, width: 400 },
  bone: { label: "Bone", key: "3", center: 400, width: 1800 },
};

/** The window after a drag of (dx, dy) screen pixels from `start`. */
export function dragWindow(start: Window, dx: number, dy: number): Window {
  const scale = Math.max(1, start.width / 256);
  return {
    center: Math.round(start.center + dy * scale),
    width: Math.max(1, Math.round(start.width + dx * scale * 2)),
  };
}

/** The stored-value range of a pixel format. */
export function storedRange(bits: number, signed: boolean): [number, number] {
  return signed ? [-(2 ** (bits - 1)), 2 ** (bits - 1) - 1] : [0, 2 ** bits - 1];
}

/**
 * A table from stored value (offset by `min`) to grey 0–255: linear window per PS3.3 C.11.2.1.2
 * on the modality value `stored * slope + intercept`; inverted for MONOCHROME1.
 */
export function windowTable(
  min: number,
  max: number,
  slope: number,
  intercept: number,
  w: Window,
  invert = false,
): Uint8Array {
  const table = new Uint8Array(max - min + 1);
  const c = w.center - 0.5, width = Math.max(1, w.width) - 1;
  for (let s = min; s <= max; s++) {
    const v = s * slope + intercept;
    let y: number;
    if (v <= c - width / 2) y = 0;
    else if (v > c + width / 2) y = 255;
    else y = ((v - c) / width + 0.5) * 255;
    y = Math.round(y);
    table[s - min] = invert ? 255 - y : y;
  }
  return table;
}

/** Writes grey RGBA pixels of `stored` through `table` (offset `min`) into `rgba`. */
export function applyTable(
  stored: ArrayLike<number>,
  table: Uint8Array,
  min: number,
  rgba: Uint8ClampedArray,
): void {
  const last = table.length - 1;
  for (let i = 0, o = 0; i < stored.length; i++, o += 4) {
    let idx = stored[i] - min;
    if (idx < 0) idx = 0;
    else if (idx > last) idx = last;
    const g = table[idx];
    rgba[o] = g;
    rgba[o + 1] = g;
    rgba[o + 2] = g;
    rgba[o + 3] = 255;
  }
}
