/**
 * @module Helpers of the DICOM robustness and client tests: real DICOM files (Debian's pydicom test
 * files), a seeded PRNG, fresh UIDs written into a file in place, seeded mutations (byte flips,
 * truncations, header flips, zeroed ranges, length fields), STOW-RS multipart bodies, and the
 * store invariant (every row has its object and every object its row).
 */
import dicomParser from "dicom-parser";
import { deflateSync, inflateSync } from "fflate";
import type { TestContext } from "../_harness.ts";

/** Where Debian's python3-pydicom keeps its test files. */
export const PYDICOM_DIR = "/usr/lib/python3/dist-packages/pydicom/data/test_files";

/** The files the fuzzing starts from: several transfer syntaxes, SR, RT, deflate, JPEG 2000, RLE. */
export const FUZZ_FILES = [
  "CT_small.dcm",
  "MR_small.dcm",
  "MR_small_implicit.dcm",
  "MR_small_bigendian.dcm",
  "rtdose.dcm",
  "test-SR.dcm",
  "image_dfl.dcm",
  "JPEG2000.dcm",
  "SC_rgb_rle.dcm",
] as const;

export function readTestFile(name: string): Uint8Array {
  return Deno.readFileSync(`${PYDICOM_DIR}/${name}`);
}

/** A seeded PRNG (mulberry32): floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let s = seed | 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Rng {
  (): number;
  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number;
}

export function createRng(seed: number): Rng {
  const next = mulberry32(seed) as Rng;
  next.int = (lo, hi) => lo + Math.floor(next() * (hi - lo + 1));
  return next;
}

/**
 * Nine digits unique to this run that begin every fresh UID, so that runs never share UIDs (a
 * shared S3 bucket keeps every run's objects). DICOM_FUZZ_SALT gives a run's salt again, to
 * reproduce its variants byte for byte.
 */
export const RUN_SALT = Deno.env.get("DICOM_FUZZ_SALT") ??
  String(100_000_000 + (crypto.getRandomValues(new Uint32Array(1))[0] % 900_000_000));

/** A syntactically valid UID of exactly `length` characters: `2.25.`, the salt, seeded digits. */
export function randomUid(rng: Rng, length: number, salt = RUN_SALT): string {
  let uid = `2.25.${salt}`;
  while (uid.length < length) uid += String(rng.int(0, 9));
  return uid.slice(0, Math.max(length, 6));
}

const DEFLATED = "1.2.840.10008.1.2.1.99";
const UID_TAGS = ["x0020000d", "x0020000e", "x00080018"] as const;

/** Where the data set starts (after the File Meta Information) and its transfer syntax. */
function metaEnd(bytes: Uint8Array): { end: number; syntax: string } {
  const meta = dicomParser.readPart10Header(bytes);
  const syntax = meta.string("x00020010")?.replace(/\0/g, "").trim() ?? "";
  const groupLength = meta.uint32("x00020000");
  const first = meta.elements.x00020000 ?? Object.values(meta.elements)[0];
  const end = groupLength !== undefined
    ? first.dataOffset + first.length + groupLength
    : Math.max(...Object.values(meta.elements).map((e) => e.dataOffset + e.length));
  return { end, syntax };
}

/**
 * A copy of a Part 10 file with new Study, Series and SOP Instance UIDs (and Media Storage SOP
 * Instance UID), each of the same length as the one it replaces, written in place (a deflated data
 * set is inflated, patched and deflated again). Returns the bytes and the new UIDs.
 */
export function withFreshUids(
  bytes: Uint8Array,
  rng: Rng,
  salt = RUN_SALT,
): { bytes: Uint8Array; studyUid: string; seriesUid: string; sopUid: string } {
  const { end, syntax } = metaEnd(bytes);
  const out = bytes.slice();
  let body = syntax === DEFLATED ? inflateSync(bytes.subarray(end)) : out.subarray(end);
  const full = syntax === DEFLATED ? concat(out.subarray(0, end), body) : out;
  // The data set is inflated already: the parser's inflater has nothing left to do.
  const ds = dicomParser.parseDicom(full, {
    inflater: (b: Uint8Array) => b,
  } as unknown as dicomParser.ParseDicomOptions);
  const fresh: string[] = [];
  for (const tag of UID_TAGS) {
    const el = ds.elements[tag];
    const old = ds.string(tag)!;
    const uid = randomUid(rng, old.length, salt);
    fresh.push(uid);
    full.set(new TextEncoder().encode(uid.padEnd(el.length, "\0")), el.dataOffset);
  }
  const meta = ds.elements.x00020003;
  if (meta) {
    full.set(new TextEncoder().encode(fresh[2].padEnd(meta.length, "\0")), meta.dataOffset);
  }
  let result = full;
  if (syntax === DEFLATED) {
    body = deflateSync(full.subarray(end));
    result = concat(full.subarray(0, end), body);
  }
  return { bytes: result, studyUid: fresh[0], seriesUid: fresh[1], sopUid: fresh[2] };
}

export function concat(...arrays: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(arrays.reduce((n, a) => n + a.length, 0));
  let offset = 0;
  for (const a of arrays) {
    out.set(a, offset);
    offset += a.length;
  }
  return out;
}

/** Where an element's length field is: its offset and its size (2 or 4 bytes). */
export interface LengthField {
  offset: number;
  size: 2 | 4;
}

const LONG_VRS = new Set([
  "OB",
  "OD",
  "OF",
  "OL",
  "OV",
  "OW",
  "SQ",
  "SV",
  "UC",
  "UN",
  "UR",
  "UT",
  "UV",
]);

/** The length fields of every element (nested ones too) of a file that is not deflated. */
export function lengthFields(bytes: Uint8Array): LengthField[] {
  let ds: dicomParser.DataSet;
  try {
    ds = dicomParser.parseDicom(bytes);
  } catch {
    return [];
  }
  const syntax = ds.string("x00020010")?.replace(/\0/g, "").trim();
  if (syntax === DEFLATED) return [];
  const implicit = syntax === "1.2.840.10008.1.2";
  const fields: LengthField[] = [];
  const visit = (set: dicomParser.DataSet, meta: boolean) => {
    for (const el of Object.values(set.elements)) {
      const isMeta = meta && el.tag.startsWith("x0002");
      const explicit = isMeta || !implicit;
      const long = !explicit || LONG_VRS.has(el.vr ?? "") || !!el.items;
      if (el.hadUndefinedLength || el.dataOffset < 8) continue;
      fields.push(
        long ? { offset: el.dataOffset - 4, size: 4 } : { offset: el.dataOffset - 2, size: 2 },
      );
      for (const item of el.items ?? []) if (item.dataSet) visit(item.dataSet, false);
    }
  };
  visit(ds, true);
  return fields;
}

export type MutationKind = "flip" | "truncate" | "header" | "zero" | "length-max" | "length-random";
export const MUTATIONS: readonly MutationKind[] = [
  "flip",
  "truncate",
  "header",
  "zero",
  "length-max",
  "length-random",
];

export interface Variant {
  bytes: Uint8Array;
  /** What was done, to reproduce or read a failure. */
  description: string;
}

/** One seeded mutation of `source` (whose length fields are `fields`, when not deflated). */
export function mutate(
  source: Uint8Array,
  fields: LengthField[],
  rng: Rng,
  kind: MutationKind = MUTATIONS[rng.int(0, MUTATIONS.length - 1)],
): Variant {
  const bytes = source.slice();
  const len = bytes.length;
  switch (kind) {
    case "flip":
    case "header": {
      const n = kind === "flip" ? rng.int(1, 16) : rng.int(1, 8);
      const hi = kind === "flip" ? len - 1 : Math.min(len - 1, rng.int(1024, 2048));
      const at: number[] = [];
      for (let i = 0; i < n; i++) {
        const p = rng.int(kind === "flip" ? 0 : 128, hi);
        bytes[p] ^= rng.int(1, 255);
        at.push(p);
      }
      return { bytes, description: `${kind} at ${at.join(",")}` };
    }
    case "truncate": {
      const cut = rng.int(0, len - 1);
      return { bytes: bytes.slice(0, cut), description: `truncate to ${cut}` };
    }
    case "zero": {
      const start = rng.int(0, len - 1);
      const n = rng.int(1, 512);
      bytes.fill(0, start, start + n);
      return { bytes, description: `zero ${start}+${n}` };
    }
    case "length-max":
    case "length-random": {
      if (!fields.length) return mutate(source, fields, rng, "flip");
      const f = fields[rng.int(0, fields.length - 1)];
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const max = f.size === 4 ? 0xffffffff : 0xffff;
      const value = kind === "length-max" ? max : rng.int(0, Math.min(max, len * 2));
      // Little-endian (a big-endian data set gets some other large value: just as good).
      if (f.size === 4) view.setUint32(f.offset, value, true);
      else view.setUint16(f.offset, value, true);
      return { bytes, description: `${kind} ${value} at ${f.offset}` };
    }
  }
}

/** A fuzzing source: a real file with fresh UIDs, and where its length fields are. */
export interface FuzzSource {
  file: string;
  bytes: Uint8Array;
  fields: LengthField[];
}

export interface FuzzVariant extends Variant {
  index: number;
  file: string;
}

/**
 * `count` seeded variants of the FUZZ_FILES (each given fresh UIDs first, with the run's salt),
 * round robin. With `freshUids` (0–1) that share of the variants is cut from a copy with its own
 * fresh UIDs, so that those that still parse are new instances that the server really stores.
 * The same seed always gives the same variants, in the same order.
 */
export function* fuzzVariants(
  seed: number,
  count: number,
  options: { freshUids?: number; salt?: string } = {},
): Generator<FuzzVariant> {
  const rng = createRng(seed);
  const salt = options.salt ?? RUN_SALT;
  const sources: FuzzSource[] = FUZZ_FILES.map((file) => {
    const bytes = withFreshUids(readTestFile(file), rng, salt).bytes;
    return { file, bytes, fields: lengthFields(bytes) };
  });
  for (let index = 0; index < count; index++) {
    const source = sources[index % sources.length];
    const fresh = rng() < (options.freshUids ?? 0);
    // Same-length UIDs leave every offset, so the source's length fields still apply.
    const bytes = fresh ? withFreshUids(source.bytes, rng, salt).bytes : source.bytes;
    const variant = mutate(bytes, source.fields, rng);
    yield {
      index,
      file: source.file,
      bytes: variant.bytes,
      description: `${source.file}${fresh ? " (fresh UIDs)" : ""}: ${variant.description}`,
    };
  }
}

const encoder = new TextEncoder();

/** A multipart/related body of application/dicom parts; CRLF line ends, no preamble. */
export function multipartBody(parts: Uint8Array[], boundary: string, close = true): Uint8Array {
  const chunks: Uint8Array[] = [];
  for (const part of parts) {
    chunks.push(encoder.encode(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`), part);
    chunks.push(encoder.encode("\r\n"));
  }
  if (close) chunks.push(encoder.encode(`--${boundary}--\r\n`));
  return concat(...chunks);
}

export const STOW_CONTENT_TYPE = (boundary: string) =>
  `multipart/related; type="application/dicom"; boundary=${boundary}`;

// deno-lint-ignore no-explicit-any
export type DicomJsonBody = any;

/** POSTs parts to `/dicomweb/studies`; status, headers and the parsed body (or text). */
export async function stow(
  origin: string,
  parts: Uint8Array[],
  boundary = `b${crypto.randomUUID().replaceAll("-", "")}`,
): Promise<{ status: number; headers: Headers; body: DicomJsonBody; text: string }> {
  const res = await fetch(`${origin}/dicomweb/studies`, {
    method: "POST",
    headers: { "content-type": STOW_CONTENT_TYPE(boundary), accept: "application/dicom+json" },
    body: multipartBody(parts, boundary) as Uint8Array<ArrayBuffer>,
  });
  const text = await res.text();
  let body: DicomJsonBody = undefined;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  return { status: res.status, headers: res.headers, body, text };
}

/** The SOP Instance UIDs of the items of a STOW response's sequence (00081199 or 00081198). */
export function sequenceUids(body: DicomJsonBody, tag: "00081199" | "00081198"): string[] {
  return ((body?.[tag]?.Value ?? []) as DicomJsonBody[]).map((item) =>
    item?.["00081155"]?.Value?.[0] ?? ""
  );
}

export interface InvariantReport {
  rows: number;
  objects: number;
  /** Rows whose object is not in the store. */
  rowsWithoutObject: string[];
  /** Objects no row points at. */
  objectsWithoutRow: string[];
  /** Whether every object under `dicom/` was listed, or only those under `studyPrefixes`. */
  scope: "all" | "studies";
}

/**
 * Checks the store invariant over every `dicom_instance` row of the context's database and every
 * object under `dicom/` (a folder store belongs to this test file alone). A shared S3 bucket holds
 * other test files' and runs' objects too, so there only the prefixes of `studies` are listed.
 */
export async function storeInvariant(
  ctx: TestContext,
  studies: Iterable<string> = [],
): Promise<InvariantReport> {
  const rows = await ctx.services.db.query<{ object_key: string; study_uid: string }>(
    `SELECT object_key, study_uid FROM dicom_instance`,
  );
  const keys = new Set(rows.map((r) => r.object_key));
  const rowsWithoutObject: string[] = [];
  await Promise.all(rows.map(async (r) => {
    if (!(await ctx.services.store.head(r.object_key))) rowsWithoutObject.push(r.object_key);
  }));
  const store = ctx.services.store;
  const scope = store.description.startsWith("folder") ? "all" : "studies";
  const prefixes = scope === "all" ? ["dicom/"] : [...new Set(studies)].map((s) => `dicom/${s}/`);
  const objectsWithoutRow: string[] = [];
  let objects = 0;
  let next = 0;
  const lister = async () => {
    while (next < prefixes.length) {
      for await (const o of store.list(prefixes[next++])) {
        objects++;
        if (!keys.has(o.key)) objectsWithoutRow.push(o.key);
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, lister));
  return { rows: rows.length, objects, rowsWithoutObject, objectsWithoutRow, scope };
}

/** Resolves once `check` returns true, polling; false after `ms`. */
export async function eventually(check: () => Promise<boolean>, ms = 5000): Promise<boolean> {
  const until = Date.now() + ms;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * A copy of a Part 10 file (not deflated) with the value of a top-level element overwritten by
 * `value` (latin-1, padded with spaces to the element's length, or cut to it): what a corrupted
 * but well-formed file looks like.
 */
export function patchValue(bytes: Uint8Array, tag: string, value: string): Uint8Array {
  const ds = dicomParser.parseDicom(bytes);
  const el = ds.elements[`x${tag.toLowerCase()}`];
  if (!el) throw new Error(`no element ${tag}`);
  const out = bytes.slice();
  const text = value.padEnd(el.length, " ").slice(0, el.length);
  out.set(Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff), el.dataOffset);
  return out;
}

/** A server of its own in a child process: a crash of the server does not end the test run. */
export interface ChildServer {
  origin: string;
  /** Whether the server still answers. */
  alive(): Promise<boolean>;
  /** Stops it (if it still runs); resolves to what it wrote on stderr. */
  close(): Promise<string>;
}

/** Starts this module as a server (PGlite in memory, a temporary folder store) in a child. */
export async function spawnServer(): Promise<ChildServer> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--config",
      new URL("../../deno.json", import.meta.url).pathname,
      new URL(import.meta.url).pathname,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  const deadline = Date.now() + 60_000;
  while (!/PORT (\d+)\n/.test(out)) {
    const { value, done } = await reader.read();
    if (done || Date.now() > deadline) {
      child.kill();
      throw new Error(`the child server did not start: ${out} ${await stderr}`);
    }
    out += value;
  }
  reader.releaseLock();
  child.stdout.cancel().catch(() => {});
  const origin = `http://127.0.0.1:${/PORT (\d+)\n/.exec(out)![1]}`;
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  return {
    origin,
    async alive() {
      if (exited) return false;
      try {
        const res = await fetch(`${origin}/health/live`);
        await res.body?.cancel();
        return res.status === 200;
      } catch {
        return false;
      }
    },
    async close() {
      if (!exited) child.kill("SIGTERM");
      await status;
      return await stderr;
    },
  };
}

if (import.meta.main) {
  const { createApp } = await import("../../app.ts");
  const { loadConfig } = await import("../../platform/config.ts");
  const { createServices } = await import("../../services.ts");
  const services = await createServices(loadConfig({
    PGLITE_DIR: "memory",
    OBJECT_DIR: await Deno.makeTempDir({ prefix: "objects-child-" }),
    LOG_LEVEL: "error",
    DICOM_STABLE_SECONDS: "1",
    AUTH: "off",
  }));
  Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: ({ port }) => console.log(`PORT ${port}`) },
    createApp(services).fetch,
  );
}
