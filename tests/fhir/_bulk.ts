// deno-lint-ignore-file no-explicit-any
/**
 * @module A Bulk Data `$export` client for the tests, following the spec's flow with fetch: the
 * kick-off (`Prefer: respond-async`, 202 with Content-Location), polling the status URL as
 * `Retry-After` says while it answers 202 (X-Progress), the manifest, then each file with the same
 * bearer token (`requiresAccessToken`), its NDJSON lines parsed and counted against the manifest.
 */
import assert from "node:assert/strict";

export interface KickOffOptions {
  method?: "GET" | "POST";
  token?: string;
  headers?: Record<string, string>;
  /** A POST's Parameters resource. */
  body?: unknown;
}

export function auth(token: string | undefined): Record<string, string> {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/** The kick-off request (`url`: absolute, with its query). */
export async function kickOff(url: string, o: KickOffOptions = {}): Promise<Response> {
  return await fetch(url, {
    method: o.method ?? "GET",
    headers: {
      Accept: "application/fhir+json",
      Prefer: "respond-async",
      ...(o.body ? { "Content-Type": "application/fhir+json" } : {}),
      ...auth(o.token),
      ...o.headers,
    },
    body: o.body ? JSON.stringify(o.body) : undefined,
  });
}

export interface Completed {
  manifest: any;
  statusUrl: string;
  /** The X-Progress headers seen while polling. */
  progress: string[];
  expires: string | null;
}

/** Polls the status URL as Retry-After says until the manifest (200) or a failure (throws). */
export async function poll(statusUrl: string, token?: string): Promise<Completed> {
  const progress: string[] = [];
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const res = await fetch(statusUrl, { headers: { Accept: "application/json", ...auth(token) } });
    if (res.status === 202) {
      await res.body?.cancel();
      const p = res.headers.get("x-progress");
      if (p) progress.push(p);
      const wait = Number(res.headers.get("retry-after") ?? "1");
      assert.ok(Number.isFinite(wait) && wait > 0, "Retry-After in seconds");
      await new Promise((r) => setTimeout(r, wait * 1000));
      continue;
    }
    const body = await res.json();
    assert.equal(res.status, 200, `status ${res.status}: ${JSON.stringify(body)}`);
    assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
    return { manifest: body, statusUrl, progress, expires: res.headers.get("expires") };
  }
  throw new Error(`export ${statusUrl} did not finish in time`);
}

/** One file's resources (its lines parsed), checked to be NDJSON of `type`. */
export async function readFile(url: string, type: string, token?: string): Promise<any[]> {
  const res = await fetch(url, { headers: { Accept: "application/fhir+ndjson", ...auth(token) } });
  const text = await res.text();
  assert.equal(res.status, 200, `${url}: ${text.slice(0, 200)}`);
  assert.equal(res.headers.get("content-type"), "application/fhir+ndjson");
  assert.ok(text.endsWith("\n"), "NDJSON ends with a newline");
  const lines = text.slice(0, -1).split("\n");
  return lines.map((line) => {
    const resource = JSON.parse(line);
    assert.equal(resource.resourceType, type, `a ${type} file holds ${type} resources`);
    return resource;
  });
}

/** Every output file read, by type; each file's count checked against its lines. */
export async function download(manifest: any, token?: string): Promise<Map<string, any[]>> {
  const byType = new Map<string, any[]>();
  for (const file of manifest.output) {
    const resources = await readFile(file.url, file.type, token);
    assert.equal(resources.length, file.count, `${file.url}: count matches the lines`);
    byType.set(file.type, [...byType.get(file.type) ?? [], ...resources]);
  }
  return byType;
}

/** Kick-off, poll and download: the manifest and the resources by type. */
export async function bulkExport(
  url: string,
  o: KickOffOptions = {},
): Promise<Completed & { files: Map<string, any[]> }> {
  const res = await kickOff(url, o);
  const text = await res.text();
  assert.equal(res.status, 202, `kick-off ${url}: ${text}`);
  const statusUrl = res.headers.get("content-location");
  assert.ok(statusUrl, "Content-Location names the status URL");
  const done = await poll(statusUrl, o.token);
  assert.equal(done.manifest.requiresAccessToken, true);
  assert.ok(!Number.isNaN(Date.parse(done.manifest.transactionTime)));
  const files = await download(done.manifest, o.token);
  for (const resources of files.values()) {
    const ids = resources.map((r) => `${r.resourceType}/${r.id}`);
    assert.equal(new Set(ids).size, ids.length, "no resource is exported twice");
  }
  return { ...done, files };
}

/** `{ Type: n }` of the exported resources. */
export function counts(files: Map<string, any[]>): Record<string, number> {
  return Object.fromEntries([...files].map(([type, list]) => [type, list.length]).sort());
}

/** The sorted ids of the exported resources of `type`. */
export function idsOf(files: Map<string, any[]>, type: string): string[] {
  return (files.get(type) ?? []).map((r) => r.id).sort();
}
