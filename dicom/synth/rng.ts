/**
 * @module Seeded, deterministic randomness for the synthetic generator: a 128-bit string hash
 * (cyrb128), a small fast PRNG (sfc32) on top of it, and `2.25.` UIDs derived from the hash.
 *
 * Everything here is pure: the same seed and label always give the same numbers on every machine.
 */

/** A seeded pseudo-random number stream. */
export interface Rng {
  /** A float in [0, 1). */
  next(): number;
  /** An integer in [min, max] (both inclusive). */
  int(min: number, max: number): number;
  /** A float in [min, max). */
  range(min: number, max: number): number;
  /** One element of a non-empty list. */
  pick<T>(items: readonly T[]): T;
  /** A standard normal deviate (Box–Muller). */
  normal(): number;
}

/** cyrb128: hashes a string to four 32-bit words (128 bits), well mixed. */
export function hash128(text: string): [number, number, number, number] {
  let h1 = 1779033703, h2 = 3144134277, h3 = 1013904242, h4 = 2773480762;
  for (let i = 0; i < text.length; i++) {
    const k = text.charCodeAt(i);
    h1 = h2 ^ Math.imul(h1 ^ k, 597399067);
    h2 = h3 ^ Math.imul(h2 ^ k, 2869860233);
    h3 = h4 ^ Math.imul(h3 ^ k, 951274213);
    h4 = h1 ^ Math.imul(h4 ^ k, 2716044179);
  }
  h1 = Math.imul(h3 ^ (h1 >>> 18), 597399067);
  h2 = Math.imul(h4 ^ (h2 >>> 22), 2869860233);
  h3 = Math.imul(h1 ^ (h3 >>> 17), 951274213);
  h4 = Math.imul(h2 ^ (h4 >>> 19), 2716044179);
  h1 ^= h2 ^ h3 ^ h4;
  h2 ^= h1;
  h3 ^= h1;
  h4 ^= h1;
  return [h1 >>> 0, h2 >>> 0, h3 >>> 0, h4 >>> 0];
}

/** A 32-bit seed derived from a label (for per-slice noise streams and the like). */
export function hash32(text: string): number {
  return hash128(text)[0];
}

/** An sfc32 stream seeded from `hash128(label)`. */
export function createRng(label: string): Rng {
  let [a, b, c, d] = hash128(label);
  const next = (): number => {
    a |= 0;
    b |= 0;
    c |= 0;
    d |= 0;
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let i = 0; i < 12; i++) next(); // warm up the state
  return {
    next,
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    range: (min, max) => min + next() * (max - min),
    pick: (items) => items[Math.floor(next() * items.length)],
    normal: () => {
      const u = 1 - next(); // (0, 1]
      return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next());
    },
  };
}

/**
 * A UID under the `2.25` root (ISO/IEC 9834-8: a UUID-derived integer): `2.25.` followed by the
 * decimal value of a 128-bit hash of `label`. At most 44 characters, no leading zeros.
 */
export function uid225(label: string): string {
  const [h1, h2, h3, h4] = hash128(label);
  const value = (BigInt(h1) << 96n) | (BigInt(h2) << 64n) | (BigInt(h3) << 32n) | BigInt(h4);
  return `2.25.${value.toString(10)}`;
}

/** True when `uid` is a syntactically valid DICOM UID (PS3.5 §9.1). */
export function isValidUid(uid: string): boolean {
  return uid.length <= 64 && /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+$/.test(uid);
}
