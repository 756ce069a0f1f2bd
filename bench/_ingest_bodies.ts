/** @module The ingest benchmark's data: synthetic CT instances and the STOW-RS bodies built from them. */
import { generateStudy } from "../dicom/synth/ct.ts";

/** One pre-built STOW-RS request body. */
export interface StowBody {
  bytes: Uint8Array<ArrayBuffer>;
  /** Number of DICOM instances (parts) in it. */
  instances: number;
}

/** The request bodies, byte-identical for every server, and their shared Content-Type. */
export interface StowBodies {
  contentType: string;
  bodies: StowBody[];
  /** Instances in all bodies. */
  instances: number;
  /** Bytes of the instances alone (DICOM Part 10 files). */
  instanceBytes: number;
  /** Bytes of all request bodies (instances plus multipart framing). */
  bodyBytes: number;
  /** Seconds spent generating the instances (not part of any measurement). */
  generateSeconds: number;
}

export interface BodyOptions {
  studies: number;
  slices: number;
  size: number;
  batch: number;
}

const encoder = new TextEncoder();

/**
 * Generates `studies` seeded synthetic CT studies (`slices` slices of `size`×`size`) and packs
 * their instances, study after study, into multipart/related bodies of `batch` instances each.
 * A batch may span two studies, as a modality's sender would.
 */
export function buildBodies(
  opts: BodyOptions,
  progress: (done: number) => void = () => {},
): StowBodies {
  const t0 = performance.now();
  const instances: Uint8Array[] = [];
  for (let s = 0; s < opts.studies; s++) {
    const study = generateStudy({
      seed: 7000 + s,
      slices: opts.slices,
      rows: opts.size,
      cols: opts.size,
    });
    instances.push(...study.instances);
    progress(s + 1);
  }
  const generateSeconds = (performance.now() - t0) / 1000;
  // Fixed, so that every run (and every server) gets the same bytes; 40 characters of a seeded
  // pattern that no DICOM file here contains.
  const boundary = "bench-ingest-7f3a9c2e5b8d41f6a0c3e9b7d2f5";
  const bodies: StowBody[] = [];
  for (let i = 0; i < instances.length; i += opts.batch) {
    bodies.push({
      bytes: multipart(instances.slice(i, i + opts.batch), boundary),
      instances: Math.min(opts.batch, instances.length - i),
    });
  }
  return {
    contentType: `multipart/related; type="application/dicom"; boundary=${boundary}`,
    bodies,
    instances: instances.length,
    instanceBytes: instances.reduce((n, b) => n + b.byteLength, 0),
    bodyBytes: bodies.reduce((n, b) => n + b.bytes.byteLength, 0),
    generateSeconds,
  };
}

/** One multipart/related body (RFC 2046 framing, CRLF line ends) holding `parts`. */
export function multipart(parts: Uint8Array[], boundary: string): Uint8Array<ArrayBuffer> {
  const head = encoder.encode(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`);
  const between = encoder.encode(`\r\n`);
  const close = encoder.encode(`--${boundary}--\r\n`);
  const size = parts.reduce((n, p) => n + head.byteLength + p.byteLength + between.byteLength, 0) +
    close.byteLength;
  const out = new Uint8Array(size);
  let at = 0;
  const put = (b: Uint8Array) => {
    out.set(b, at);
    at += b.byteLength;
  };
  for (const part of parts) {
    put(head);
    put(part);
    put(between);
  }
  put(close);
  return out;
}
