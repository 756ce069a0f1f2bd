/**
 * @module Loads a series' slices for the viewer: native frames from WADO-RS `…/frames/1`
 * (decoded here, so window and level change without asking the server again), or, for
 * compressed or colour frames, `…/rendered` PNGs windowed by the server. Keeps the recent slices
 * and prefetches the neighbours of the one shown, a few requests at a time.
 */
import { api, ok } from "./api.ts";
import { boundaryOf, parseMultipart } from "./multipart.ts";
import type { SliceInfo } from "./series.ts";
import { storedRange, type Window } from "./window_level.ts";

export type SliceImage =
  | { kind: "raw"; stored: Int16Array | Uint16Array | Uint8Array; min: number; max: number }
  | { kind: "bitmap"; bitmap: ImageBitmap; window: string };

const CACHE_LIMIT = 600;
const PREFETCH = 8;
const PARALLEL = 4;

export class SliceLoader {
  #cache = new Map<string, Promise<SliceImage>>();
  #queue: number[] = [];
  #running = 0;
  #rawOk = true;
  #window: Window | undefined;

  constructor(
    readonly studyUid: string,
    readonly seriesUid: string,
    readonly slices: SliceInfo[],
  ) {}

  #base(i: number) {
    return `/dicomweb/studies/${this.studyUid}/series/${this.seriesUid}/instances/${
      this.slices[i].sopInstanceUid
    }`;
  }

  #key(i: number) {
    return this.#rawOk ? `raw:${i}` : `png:${i}:${this.#windowParam()}`;
  }

  #windowParam() {
    const w = this.#window;
    return w ? `${Math.round(w.center)},${Math.round(w.width)}` : "";
  }

  /** The window the server renders with when frames cannot be decoded here. */
  setWindow(w: Window): void {
    this.#window = w;
  }

  /** Whether slices are decoded here (window changes need no new request). */
  get decodesLocally(): boolean {
    return this.#rawOk;
  }

  /** The slice at `i` (cached). */
  get(i: number): Promise<SliceImage> {
    const key = this.#key(i);
    let p = this.#cache.get(key);
    if (!p) {
      p = this.#load(i).catch((e) => {
        this.#cache.delete(key);
        throw e;
      });
      this.#cache.set(key, p);
      if (this.#cache.size > CACHE_LIMIT) {
        this.#cache.delete(this.#cache.keys().next().value!);
      }
    }
    return p;
  }

  /** Queues the neighbours of `i`, nearest first. */
  prefetch(i: number): void {
    const order: number[] = [];
    for (let d = 1; d <= PREFETCH; d++) order.push(i + d, i - d);
    this.#queue = order.filter((k) =>
      k >= 0 && k < this.slices.length && !this.#cache.has(this.#key(k))
    );
    this.#pump();
  }

  #pump() {
    while (this.#running < PARALLEL && this.#queue.length) {
      const k = this.#queue.shift()!;
      if (this.#cache.has(this.#key(k))) continue;
      this.#running++;
      this.get(k).catch(() => {}).finally(() => {
        this.#running--;
        this.#pump();
      });
    }
  }

  async #load(i: number): Promise<SliceImage> {
    const info = this.slices[i];
    if (this.#rawOk && info.samplesPerPixel === 1) {
      const raw = await this.#raw(i, info);
      if (raw) return raw;
      this.#rawOk = false; // encapsulated: the server renders from now on
    }
    return await this.#rendered(i);
  }

  async #raw(i: number, info: SliceInfo): Promise<SliceImage | undefined> {
    const res = await ok(
      await api(`${this.#base(i)}/frames/1`, {
        headers: { Accept: 'multipart/related; type="application/octet-stream"' },
      }),
    );
    const type = res.headers.get("content-type") ?? "";
    const boundary = boundaryOf(type);
    if (!boundary) return undefined;
    const part = parseMultipart(new Uint8Array(await res.arrayBuffer()), boundary)[0];
    const partType = part?.headers["content-type"] ?? "application/octet-stream";
    if (!part || !partType.startsWith("application/octet-stream")) return undefined;
    const n = info.rows * info.columns;
    const bytes = part.body.slice(); // aligned copy
    let stored: Int16Array | Uint16Array | Uint8Array;
    if (info.bitsAllocated === 16 && bytes.length >= n * 2) {
      stored = info.signed
        ? new Int16Array(bytes.buffer, 0, n)
        : new Uint16Array(bytes.buffer, 0, n);
    } else if (info.bitsAllocated === 8 && bytes.length >= n) {
      stored = bytes.subarray(0, n);
    } else return undefined;
    const [min, max] = storedRange(info.bitsAllocated, info.signed);
    return { kind: "raw", stored, min, max };
  }

  async #rendered(i: number): Promise<SliceImage> {
    const window = this.#windowParam();
    const q = window ? `?window=${window}` : "";
    const res = await ok(
      await api(`${this.#base(i)}/rendered${q}`, { headers: { Accept: "image/png" } }),
    );
    return { kind: "bitmap", bitmap: await createImageBitmap(await res.blob()), window };
  }
}
