/**
 * @module Robustness of the DICOM layer at the request size limit, on a server of its own with
 * DICOM_MAX_REQUEST_BYTES=100000: STOW-RS answers 413 with an OperationOutcome for a
 * Content-Length over the limit, and for chunked multipart and application/dicom bodies that grow
 * past it, with objects and rows in step; a non-Error thrown by a handler still answers 500 with
 * an OperationOutcome. The last test closes that server.
 */
import assert from "node:assert/strict";
import { createApp } from "../../app.ts";
import { loadConfig } from "../../platform/config.ts";
import { createServices, type Services } from "../../services.ts";
import {
  createRng,
  multipartBody,
  readTestFile,
  STOW_CONTENT_TYPE,
  withFreshUids,
} from "./_dicom_helpers.ts";
import { assertOutcome } from "./_robustness.ts";

const LIMIT = 100_000;

interface OwnServer {
  origin: string;
  services: Services;
  close(): Promise<void>;
}

async function ownServer(env: Record<string, string>): Promise<OwnServer> {
  const dir = await Deno.makeTempDir({ prefix: "objects-limit-" });
  const services = await createServices(loadConfig({
    PGLITE_DIR: "memory",
    OBJECT_DIR: dir,
    LOG_LEVEL: "error",
    DICOM_STABLE_SECONDS: "1",
    AUTH: "off",
    ...env,
  }));
  const app = createApp(services);
  app.get("/__test/throw-string", () => {
    throw "a string, not an Error";
  });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
  return {
    origin: `http://127.0.0.1:${server.addr.port}`,
    services,
    async close() {
      await server.shutdown();
      await services.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

let limited: Promise<OwnServer> | undefined;
const limitedServer = () => (limited ??= ownServer({ DICOM_MAX_REQUEST_BYTES: String(LIMIT) }));

/** A pull stream of `bytes` in chunks of `chunk` bytes; `stats` counts what was pulled. */
function streamOf(bytes: Uint8Array, chunk = 8192) {
  const stats = { sent: 0, cancelled: false };
  const stream = new ReadableStream<Uint8Array>({
    pull(c) {
      if (stats.sent >= bytes.length) return c.close();
      c.enqueue(bytes.slice(stats.sent, stats.sent + chunk));
      stats.sent += chunk;
    },
    cancel() {
      stats.cancelled = true;
    },
  });
  return { stream, stats };
}

/** Every row has its object and every object its row (a server of our own: the whole store). */
async function assertInStep(s: OwnServer): Promise<{ rows: number; objects: number }> {
  const rows = await s.services.db.query<{ object_key: string }>(
    `SELECT object_key FROM dicom_instance`,
  );
  const keys = new Set(rows.map((r) => r.object_key));
  const objects = (await Array.fromAsync(s.services.store.list("dicom/"))).map((o) => o.key);
  assert.deepEqual(objects.filter((k) => !keys.has(k)), [], "objects without a row");
  assert.deepEqual([...keys].filter((k) => !objects.includes(k)), [], "rows without an object");
  return { rows: rows.length, objects: objects.length };
}

function fiveParts(seed: number): Uint8Array[] {
  const rng = createRng(seed);
  return Array.from({ length: 5 }, () => withFreshUids(readTestFile("CT_small.dcm"), rng).bytes);
}

Deno.test({
  name: "STOW-RS answers 413 with an OperationOutcome for a Content-Length over the limit",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const s = await limitedServer();
    const body = multipartBody(fiveParts(10), "lim1");
    assert.ok(body.length > LIMIT);
    const res = await fetch(`${s.origin}/dicomweb/studies`, {
      method: "POST",
      headers: { "content-type": STOW_CONTENT_TYPE("lim1") },
      body: body as Uint8Array<ArrayBuffer>,
    });
    await assertOutcome(res, 413, "Content-Length over the limit");
    assert.deepEqual(await assertInStep(s), { rows: 0, objects: 0 });
  },
});

Deno.test({
  name: "STOW-RS answers 413 for a chunked multipart body that grows past the limit",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const s = await limitedServer();
    const before = await assertInStep(s);
    const body = multipartBody(fiveParts(11), "lim2");
    const { stream, stats } = streamOf(body);
    let res: Response;
    try {
      res = await fetch(`${s.origin}/dicomweb/studies`, {
        method: "POST",
        headers: { "content-type": STOW_CONTENT_TYPE("lim2") },
        body: stream,
      });
    } catch (e) {
      // The server may close the connection once it has answered; then there is no response.
      assert.fail(`no response (${e}); ${stats.sent} bytes sent`);
    }
    const outcome = await assertOutcome(res, 413, "chunked body past the limit");
    const after = await assertInStep(s);
    // Observed: the complete parts before the limit (2 of CT_small's 39 KB) are stored, and the
    // 413's diagnostics say so.
    console.log(
      `413 after ${stats.sent} bytes: ${after.rows - before.rows} parts stored;`,
      outcome.issue[0].diagnostics,
    );
  },
});

Deno.test({
  name: "STOW-RS answers 413 for a chunked application/dicom body that grows past the limit",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    // Regression (fixed): the route reads a single application/dicom body whole (c.req.arrayBuffer())
    // and checks it against DICOM_MAX_INSTANCE_BYTES only; without a Content-Length,
    // DICOM_MAX_REQUEST_BYTES is never applied and any size is buffered in memory.
    const s = await limitedServer();
    const total = 32 * 2 ** 20;
    const stats = { sent: 0 };
    const stream = new ReadableStream<Uint8Array>({
      pull(c) {
        if (stats.sent >= total) return c.close();
        c.enqueue(new Uint8Array(65536));
        stats.sent += 65536;
      },
    });
    const res = await fetch(`${s.origin}/dicomweb/studies`, {
      method: "POST",
      headers: { "content-type": "application/dicom" },
      body: stream,
    });
    await assertOutcome(res, 413, `a ${total}-byte chunked application/dicom body`);
    // The answer comes before the client has sent it all (a server that reads every byte first
    // answers only at the end).
    assert.ok(stats.sent < total, `the server read all ${total} bytes before answering`);
  },
});

Deno.test({
  name: "a non-Error thrown by a handler still answers 500 with an OperationOutcome",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    // Regression (fixed): app.ts's onError only sees Error instances (Hono rethrows anything else), so a
    // thrown string reaches Deno.serve's default handler: text/plain "Internal Server Error",
    // no OperationOutcome, no request id.
    const s = await limitedServer();
    const res = await fetch(`${s.origin}/__test/throw-string`);
    await assertOutcome(res, 500, "a thrown string");
  },
});

Deno.test({
  name: "(closes the size-limit server)",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    if (limited) await (await limited).close();
  },
});
