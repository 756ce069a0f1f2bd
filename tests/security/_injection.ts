// deno-lint-ignore-file no-explicit-any
/**
 * @module Helpers of the injection sweeps (tests/security/injection_*_test.ts), not a test file
 * itself: the hostile values sent everywhere (SQL metacharacters, control characters, NUL
 * included, unicode, very long values), probes and the sweep that runs them BATCH at a time and
 * collects every 5xx or body of the wrong shape, a GET over a raw socket for URLs past 64 KiB,
 * requests to FHIR paths, and the check that the audit trail still writes.
 */
import assert from "node:assert/strict";
import type { TestContext } from "../_harness.ts";

export const enc = encodeURIComponent;
export const TYPES = [
  "Patient",
  "Observation",
  "ImagingStudy",
  "DiagnosticReport",
  "Task",
] as const;
const BATCH = 16;

/** A value as the client sends it: text (percent-encoded here) or raw query text (sent as is). */
export type Hostile = string | { raw: string };

export const LONG_10K = "x".repeat(10_000);
/** Close to the longest URL a client (and Deno's HTTP server) takes: about 64 KiB. */
const LONG_60K = "y".repeat(60_000);
/** Past it: sent in a form body (POST _search) and, on a raw socket, as a GET. */
export const LONG_100K = "'".repeat(50_000) + "y".repeat(50_000);

/** Values sent to every parameter, whatever its type. */
export const GENERIC: Hostile[] = [
  "",
  "'",
  "''",
  "' OR '1'='1",
  "'; DROP TABLE resource; --",
  "\\",
  "%",
  "_",
  "$$",
  "$1",
  "\u0000",
  "a\u0000b",
  { raw: "%00" },
  "\u0001\u0002\u0007\b\u000b\f\u001b\u001f",
  "\t\r\n",
  "\u007f\u0085\u009f",
  '"',
  "*",
  "(",
  ")",
  ";",
  "--",
  "/*",
  "😀🩻",
  "\u202eevil\u202c\u200f\u200e",
  "\ufeff\ufffd\uffff",
  "|",
  "||",
  "|x|y",
  "'|'",
  ",,,",
  "$",
  "a$b$c",
  "/",
  { raw: "%" },
  { raw: "%zz" },
  { raw: "%FF%FE" },
  { raw: "%ED%A0%80" },
  LONG_10K,
  LONG_60K,
  "'".repeat(10_000),
  "😀".repeat(4_000),
  ",".repeat(5_000),
  "\\".repeat(10_001),
];

/** A sample of GENERIC, where every value on every key would add time and no coverage. */
export const SAMPLE: Hostile[] = [
  "",
  "'",
  "' OR '1'='1",
  "'; DROP TABLE resource; --",
  "\\",
  "%",
  "_",
  "$1",
  "\u0000",
  "\u0001\u001f",
  "😀🩻",
  "|'",
  ",,,",
  LONG_10K,
];

export function pair(key: string, v: Hostile): string {
  return `${enc(key)}=${typeof v === "string" ? enc(v) : v.raw}`;
}

/** Every request leaves an AuditEvent: the hostile ones too, and the trail still writes. */
export async function assertAuditWrites(ctx: TestContext): Promise<void> {
  await ctx.services.audit.flush();
  assert.equal(ctx.services.audit.pending, 0, "audit events are all written");
}

export interface Probe {
  label: string;
  run: () => Promise<Response>;
  /**
   * How to check the answer: a searchset Bundle (FHIR search) or a DICOM JSON array (QIDO) when
   * 2xx, an OperationOutcome when 4xx; `any` (other FHIR and WADO-RS paths) and `raw` (a raw
   * socket, where Deno's HTTP server may answer a bare 400) check only that it is below 500.
   */
  kind: "fhir" | "qido" | "any" | "raw";
}

/**
 * GET over a raw socket, for URLs longer than fetch() sends (64 KiB): the status, and the body as
 * received (possibly chunked).
 */
export async function rawGet(origin: string, target: string): Promise<Response> {
  const { hostname, port } = new URL(origin);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  try {
    const head = `GET ${target} HTTP/1.1\r\nHost: ${hostname}\r\nAccept: */*\r\n` +
      "Connection: close\r\n\r\n";
    await conn.write(new TextEncoder().encode(head));
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(65536);
    for (;;) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
    }
    const bytes = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of chunks) (bytes.set(c, at), at += c.length);
    const text = new TextDecoder().decode(bytes);
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
    if (!status) throw new Error(`no status line: ${text.slice(0, 100)}`);
    return new Response(text.slice(text.indexOf("\r\n\r\n") + 4), { status });
  } finally {
    try {
      conn.close();
    } catch { /* closed by the server */ }
  }
}

/**
 * Runs every probe, BATCH at a time; returns the failures (a 5xx, or a body of the wrong shape).
 * Each response body is read whole, so nothing is left streaming.
 */
export async function sweep(probes: Probe[]): Promise<string[]> {
  const failures: string[] = [];
  const short = (s: string) => (s.length > 300 ? `${s.slice(0, 300)}…` : s);
  const one = async (p: Probe) => {
    const label = short(p.label);
    let res: Response;
    try {
      res = await p.run();
    } catch (e) {
      failures.push(`${label}: request failed: ${short(String(e))}`);
      return;
    }
    const text = await res.text();
    if (res.status >= 500) {
      failures.push(`${label} → ${res.status} ${short(text)}`);
      return;
    }
    let body: any;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = undefined;
    }
    if (p.kind === "any" || p.kind === "raw") return;
    if (res.status >= 400) {
      // Every client error of this API is an OperationOutcome.
      if (body?.resourceType !== "OperationOutcome") {
        failures.push(`${label} → ${res.status} without an OperationOutcome: ${short(text)}`);
      }
      return;
    }
    if (p.kind === "fhir" && (body?.resourceType !== "Bundle" || body.type !== "searchset")) {
      failures.push(`${label} → ${res.status} not a searchset: ${short(text)}`);
    }
    if (p.kind === "qido" && !Array.isArray(body)) {
      failures.push(`${label} → ${res.status} not a DICOM JSON array: ${short(text)}`);
    }
  };
  for (let i = 0; i < probes.length; i += BATCH) {
    await Promise.all(probes.slice(i, i + BATCH).map(one));
  }
  return failures;
}

export function assertNoFailures(failures: string[], total: number, what: string): void {
  assert.equal(
    failures.length,
    0,
    `${failures.length} of ${total} ${what} failed:\n${failures.slice(0, 40).join("\n")}`,
  );
}

/** A request to a FHIR path (a JSON body for PUT and PATCH) where only "below 500" is asked. */
export function pathProbe(ctx: TestContext, method: string, path: string): Probe {
  const body = method === "PUT"
    ? JSON.stringify({ resourceType: path.split("/")[0], id: "x" })
    : method === "PATCH"
    ? JSON.stringify([{ op: "replace", path: "/active", value: true }])
    : undefined;
  const type = method === "PATCH" ? "application/json-patch+json" : "application/fhir+json";
  return {
    label: `${method} ${path}`,
    kind: "any",
    run: () =>
      ctx.fetch(path, {
        method,
        headers: { accept: "application/fhir+json", ...(body ? { "content-type": type } : {}) },
        body,
      }),
  };
}
