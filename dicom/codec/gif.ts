/**
 * @module A GIF89a encoder for rendered images (one frame, no animation): greyscale through a
 * 256-level grey palette (lossless for 8-bit grey), colour through a fixed 6×7×6 palette (nearest
 * level per channel, no dithering); the file itself written by gifenc (LZW, blocks).
 */
import gifenc from "gifenc";

const { GIFEncoder } = gifenc;

/** `data` is `width × height × channels` bytes, channels 1 (grey) or 3 (RGB, interleaved). */
export function encodeGif(
  { width, height, data, channels }: {
    width: number;
    height: number;
    data: Uint8Array;
    channels: 1 | 3;
  },
): Uint8Array {
  if (!(width >= 1 && width <= 65535 && height >= 1 && height <= 65535)) {
    throw new RangeError(`GIF dimensions must be 1–65535, got ${width}×${height}`);
  }
  const pixels = width * height;
  if (data.length < pixels * channels) throw new RangeError("Too few samples for the image");
  const palette = new Uint8Array(256 * 3);
  let indices: Uint8Array;
  if (channels === 1) {
    for (let i = 0; i < 256; i++) palette.fill(i, i * 3, i * 3 + 3);
    indices = data.subarray(0, pixels);
  } else {
    // 6 red × 7 green × 6 blue levels: 252 entries (the eye is most sensitive to green).
    for (let r = 0; r < 6; r++) {
      for (let g = 0; g < 7; g++) {
        for (let b = 0; b < 6; b++) {
          const at = (r * 42 + g * 6 + b) * 3;
          palette[at] = Math.round((r * 255) / 5);
          palette[at + 1] = Math.round((g * 255) / 6);
          palette[at + 2] = Math.round((b * 255) / 5);
        }
      }
    }
    indices = new Uint8Array(pixels);
    for (let i = 0; i < pixels; i++) {
      const r = Math.round((data[i * 3] * 5) / 255);
      const g = Math.round((data[i * 3 + 1] * 6) / 255);
      const b = Math.round((data[i * 3 + 2] * 5) / 255);
      indices[i] = r * 42 + g * 6 + b;
    }
  }
  // gifenc writes the file (LZW, blocks); the palette and the indices are ours.
  const gif = GIFEncoder();
  const colours: [number, number, number][] = [];
  for (let i = 0; i < 256; i++) {
    colours.push([palette[i * 3], palette[i * 3 + 1], palette[i * 3 + 2]]);
  }
  gif.writeFrame(indices, width, height, { palette: colours });
  gif.finish();
  return gif.bytes();
}
