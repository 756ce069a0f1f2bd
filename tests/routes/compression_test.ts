/**
 * @module JSON answers are gzip-compressed for clients that accept it (the CapabilityStatement,
 * searches, DICOM JSON), with `Vary: Accept-Encoding`; without Accept-Encoding, or for small
 * bodies, they go as they are; what decompresses is exactly what an uncompressed answer holds.
 */
import assert from "node:assert/strict";
import { get } from "node:http";
import type { IncomingHttpHeaders } from "node:http";
import { startContext } from "../_harness.ts";

function rawGet(
  url: string,
  headers: Record<string, string>,
): Promise<{ status: number; headers: IncomingHttpHeaders; body: Uint8Array<ArrayBuffer> }> {
  return new Promise((resolve, reject) => {
    get(url, { headers }, (res) => {
      const chunks: Uint8Array[] = [];
      res.on("data", (c: Uint8Array) => chunks.push(c));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: new Uint8Array(chunks.flatMap((c) => [...c])),
        }));
      res.on("error", reject);
    }).on("error", reject);
  });
}

Deno.test("JSON is gzip-compressed when the client accepts it, and only then", async () => {
  const ctx = await startContext("pglite", {});
  try {
    const plain = await fetch(`${ctx.base}/metadata`, {
      headers: { "Accept-Encoding": "identity" },
    });
    assert.equal(plain.headers.get("content-encoding"), null);
    const text = await plain.text();
    assert.ok(text.length > 100_000);

    // node:http, which (unlike fetch) hands over the bytes as they came.
    const gz = await rawGet(`${ctx.base}/metadata`, { "Accept-Encoding": "gzip" });
    assert.equal(gz.status, 200);
    assert.equal(gz.headers["content-encoding"], "gzip");
    assert.match(String(gz.headers["vary"]), /accept-encoding/i);
    const packed = gz.body;
    assert.ok(packed.length < text.length / 5, `${packed.length} of ${text.length}`);
    const unpacked = await new Response(
      new Blob([packed]).stream().pipeThrough(new DecompressionStream("gzip")),
    ).text();
    // The same CapabilityStatement but its date.
    const strip = (s: string) => JSON.stringify({ ...JSON.parse(s), date: undefined });
    assert.equal(strip(unpacked), strip(text));

    // A small answer is not worth it.
    const created = await fetch(`${ctx.base}/Patient`, {
      method: "POST",
      headers: { "Content-Type": "application/fhir+json" },
      body: JSON.stringify({ resourceType: "Patient", active: true }),
    });
    const { id } = await created.json();
    const small = await rawGet(`${ctx.base}/Patient/${id}`, { "Accept-Encoding": "gzip" });
    assert.equal(small.status, 200);
    assert.equal(small.headers["content-encoding"], undefined);
    assert.equal(JSON.parse(new TextDecoder().decode(small.body)).id, id);
  } finally {
    await ctx.close();
  }
});
