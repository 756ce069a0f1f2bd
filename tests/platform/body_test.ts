/**
 * @module Bounded request bodies (platform/body.ts): a declared Content-Length over the limit is
 * refused before a byte is read, a chunked body is cut off as soon as it passes the limit, and the
 * routes that read bodies whole answer 413 with an OperationOutcome and write nothing.
 */
import assert from "node:assert/strict";
import { createApp } from "../../app.ts";
import { readBounded, readBoundedText } from "../../platform/body.ts";
import { loadConfig } from "../../platform/config.ts";
import { HttpError } from "../../platform/http_error.ts";
import { createServices } from "../../services.ts";

/** A stream of `chunks` chunks of `size` bytes that counts how many were pulled. */
function counted(chunks: number, size: number) {
  const state = { pulled: 0, cancelled: false };
  const stream = new ReadableStream<Uint8Array>({
    pull(c) {
      if (state.pulled === chunks) return c.close();
      state.pulled++;
      c.enqueue(new Uint8Array(size).fill(state.pulled));
    },
    cancel() {
      state.cancelled = true;
    },
  }, { highWaterMark: 0 });
  return { stream, state };
}

Deno.test("a declared Content-Length over the limit is a 413 before any byte is read", async () => {
  const { stream, state } = counted(100, 1000);
  const request = new Request("http://x/", {
    method: "POST",
    body: stream,
    headers: { "content-length": "100000" },
  });
  const e = await readBounded(request, 4096).catch((e) => e);
  assert.ok(e instanceof HttpError && e.status === 413, String(e));
  assert.match(e.message, /100000 bytes; the limit is 4096/);
  assert.equal(state.pulled, 0);
});

Deno.test("a chunked body is cut off as soon as it passes the limit, and cancelled", async () => {
  const { stream, state } = counted(1000, 1000);
  const e = await readBounded(stream, 4500, "The file").catch((e) => e);
  assert.ok(e instanceof HttpError && e.status === 413, String(e));
  assert.match(e.message, /^The file is over 4500 bytes/);
  assert.equal(state.pulled, 5, "read one chunk past the limit, no more");
  assert.equal(state.cancelled, true);
});

Deno.test("a body of exactly the limit is read whole; none is empty", async () => {
  const { stream } = counted(4, 1000);
  const bytes = await readBounded(stream, 4000);
  assert.equal(bytes.length, 4000);
  assert.deepEqual([bytes[0], bytes[1999], bytes[3999]], [1, 2, 4]);
  assert.equal((await readBounded(null, 10)).length, 0);
  const text = await readBoundedText(
    new Request("http://x/", { method: "POST", body: "héllo" }),
    10,
  );
  assert.equal(text, "héllo");
});

Deno.test("FHIR, NIfTI upload and single-part STOW routes answer a body over their limit with 413 and write nothing", async () => {
  const dir = await Deno.makeTempDir();
  const services = await createServices(loadConfig({
    PGLITE_DIR: "memory",
    OBJECT_DIR: dir,
    LOG_LEVEL: "error",
    AUTH: "off",
    FHIR_MAX_BODY_BYTES: "2048",
    DICOM_MAX_INSTANCE_BYTES: "4096",
  }));
  try {
    const app = createApp(services);
    const family = "x".repeat(4000);
    const patient = JSON.stringify({ resourceType: "Patient", name: [{ family }] });
    // Declared length and chunked (no Content-Length): both refused.
    for (const chunked of [false, true]) {
      const body = chunked ? new Blob([patient]).stream() : patient;
      const res = await app.request("/fhir/Patient", {
        method: "POST",
        headers: { "content-type": "application/fhir+json" },
        body,
      });
      assert.equal(res.status, 413, `chunked: ${chunked}`);
      const oo = await res.json();
      assert.equal(oo.resourceType, "OperationOutcome");
      assert.equal(oo.issue[0].code, "too-long");
    }
    const search = await app.request("/fhir/Patient?_summary=count");
    assert.equal((await search.json()).total, 0, "nothing was created");
    // Under the limit, the same route works.
    const ok = await app.request("/fhir/Patient", {
      method: "POST",
      headers: { "content-type": "application/fhir+json" },
      body: JSON.stringify({ resourceType: "Patient", name: [{ family: "small" }] }),
    });
    assert.equal(ok.status, 201);
    await ok.body?.cancel();
    // A NIfTI upload past DICOM_MAX_INSTANCE_BYTES, sent chunked.
    const nifti = await app.request("/uploads/nifti?patient=Patient/1", {
      method: "POST",
      headers: { "content-type": "application/octet-stream" },
      body: new Blob([new Uint8Array(10_000)]).stream(),
    });
    assert.equal(nifti.status, 413);
    assert.match((await nifti.json()).issue[0].diagnostics, /The file is over 4096 bytes/);
    // A single-part STOW-RS past the instance limit, sent chunked.
    const stow = await app.request("/dicomweb/studies", {
      method: "POST",
      headers: { "content-type": "application/dicom", accept: "application/dicom+json" },
      body: new Blob([new Uint8Array(10_000)]).stream(),
    });
    assert.equal(stow.status, 413);
    assert.match((await stow.json()).issue[0].diagnostics, /The instance is over 4096 bytes/);
  } finally {
    await services.close();
    await Deno.remove(dir, { recursive: true });
  }
});
