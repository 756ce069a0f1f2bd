// deno-lint-ignore-file no-explicit-any
/**
 * @module Forwarding to DICOM destinations (DICOM_DESTINATIONS): what a STOW-RS stores of the kinds
 * a destination wants (SEG and SR by default) is sent to it over STOW-RS with its credentials, once;
 * transient failures are retried with backoff, refusals and exhausted retries are dead-lettered,
 * an admin sees the log and queues dead deliveries again. Against a scripted destination here;
 * tests/dicom/forward_orthanc_test.ts sends an analysis's SEG and SR to a real Orthanc.
 */
import assert from "node:assert/strict";
import { generateStudy } from "../../dicom/synth/ct.ts";
import { stowInstances } from "../../dicom/synth/stow.ts";
import { uidFrom } from "../../dicom/codec/part10.ts";
import {
  COMPREHENSIVE_3D_SR_STORAGE,
  writeMeasurementReport,
} from "../../dicom/codec/sr_writer.ts";
import { loadConfig } from "../../platform/config.ts";
import { parseDestinations } from "../../platform/dicom_destinations.ts";
import { type Backend, startContext, type TestContext } from "../_harness.ts";
import { type Destination, startDestination, stowAnswer } from "./_destination.ts";

const DATABASE_URL = Deno.env.get("DATABASE_URL") ?? "";
const FAST = { backoffBaseMs: 30, backoffMaxMs: 120, pollMs: 50, maxAttempts: 3 };

/** A standalone TID 1500 SR (no finding) in a study of its own. */
function report(tag: string): { bytes: Uint8Array; sop: string; study: string } {
  const study = uidFrom(`forward:${tag}:study`);
  const sop = uidFrom(`forward:${tag}:sr`);
  const bytes = writeMeasurementReport({
    source: {
      patientStudy: {
        PatientName: "FORWARD^TEST",
        PatientID: `FWD-${tag}`,
        StudyDate: "20261206",
        StudyTime: "120000",
        StudyID: "1",
        AccessionNumber: "",
        ReferringPhysicianName: "",
        PatientBirthDate: "",
        PatientSex: "",
      },
      studyInstanceUid: study,
      seriesInstanceUid: uidFrom(`forward:${tag}:ct-series`),
      sopClassUid: "1.2.840.10008.5.1.4.1.1.2",
    },
    findings: [],
    device: {
      name: "forward-test",
      version: "1.0.0",
      manufacturer: "imaging-ai tests",
      modelName: "forward-test",
      uid: uidFrom("forward-test@1.0.0"),
    },
    conclusion: "No finding.",
    seriesInstanceUid: uidFrom(`forward:${tag}:sr-series`),
    sopInstanceUid: sop,
    seriesNumber: 9002,
    seriesDescription: "forward test (SR)",
  });
  return { bytes, sop, study };
}

async function withStack(
  backend: Backend,
  destinations: (Record<string, unknown> & { d: Destination })[],
  fn: (ctx: TestContext) => Promise<void>,
  env: Record<string, string> = {},
) {
  const config = destinations.map(({ d, ...rest }) => ({ url: d.url, ...rest }));
  const ctx = await startContext(backend, { DICOM_DESTINATIONS: JSON.stringify(config), ...env }, {
    forwarding: FAST,
  });
  try {
    await fn(ctx);
  } finally {
    await ctx.close();
    for (const { d } of destinations) await d.close();
  }
}

async function admin(ctx: TestContext, path: string, method = "GET"): Promise<any> {
  const res = await fetch(`${ctx.origin}/admin/${path}`, { method });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  return body;
}

function test(name: string, fn: (backend: Backend) => Promise<void>) {
  for (const backend of ["pglite", "postgres"] as const) {
    Deno.test({
      name: `${name} [${backend}]`,
      ignore: backend === "postgres" && !DATABASE_URL,
      sanitizeOps: false,
      sanitizeResources: false,
      fn: () => fn(backend),
    });
  }
}

test("an SR stored here is sent to the destination once, with its bearer token; the CT is not", async (backend) => {
  const pacs = startDestination();
  await withStack(backend, [{ d: pacs, name: "pacs", token: "s3cret-token" }], async (ctx) => {
    const ct = generateStudy({ seed: 77, slices: 3, rows: 32, cols: 32, lesions: 0 });
    const sr = report("once");
    const stowed = await stowInstances(`${ctx.origin}/dicomweb`, [...ct.instances, sr.bytes]);
    assert.equal(stowed.stored, 4, JSON.stringify(stowed));
    await ctx.services.forwarding.idle();
    assert.equal(pacs.received.length, 1, JSON.stringify(pacs.received));
    const [got] = pacs.received;
    assert.equal(got.method, "POST");
    assert.equal(got.path, `/dicom-web/studies/${sr.study}`);
    assert.equal(got.authorization, "Bearer s3cret-token");
    assert.match(got.contentType, /^multipart\/related; type="application\/dicom"; boundary=/);
    assert.deepEqual(got.sopUids, [sr.sop]);
    // The same instance sent here again is not sent there again.
    await stowInstances(`${ctx.origin}/dicomweb`, [sr.bytes]);
    await ctx.services.forwarding.idle();
    assert.equal(pacs.received.length, 1);
    const body = await admin(ctx, "forwarding");
    assert.deepEqual(body.destinations, [{
      name: "pacs",
      url: pacs.url,
      authentication: "bearer",
      send: ["SEG", "SR"],
      deliveries: { pending: 0, delivered: 1, dead: 0, cancelled: 0 },
    }]);
    assert.equal(JSON.stringify(body).includes("s3cret-token"), false, "no secret in the answer");
    const [entry] = body.deliveries;
    assert.equal(entry.sopUid, sr.sop);
    assert.equal(entry.sopClass, COMPREHENSIVE_3D_SR_STORAGE);
    assert.equal(entry.state, "delivered");
    assert.equal(entry.lastStatus, 200);
    assert.ok(entry.deliveredAt);
  });
});

test("a destination that is down is retried with backoff until it takes the instance", async (backend) => {
  const pacs = startDestination();
  let calls = 0;
  pacs.answer = (r) =>
    ++calls < 3
      ? new Response("busy", { status: 503, headers: { "Retry-After": "0" } })
      : Response.json(stowAnswer(r.sopUids));
  const user = { username: "ai", password: "p@ss:word" };
  await withStack(backend, [{ d: pacs, name: "pacs", ...user, send: ["SR"] }], async (ctx) => {
    const sr = report("retry");
    await stowInstances(`${ctx.origin}/dicomweb`, [sr.bytes]);
    for (let i = 0; i < 100 && calls < 3; i++) await new Promise((r) => setTimeout(r, 50));
    await ctx.services.forwarding.idle();
    assert.equal(pacs.received.length, 3);
    assert.equal(pacs.received[0].authorization, `Basic ${btoa("ai:p@ss:word")}`);
    const [entry] = (await admin(ctx, "forwarding?destination=pacs")).deliveries;
    assert.equal(entry.state, "delivered");
    assert.equal(entry.attempts, 3);
  });
});

test("a refusal is dead at once; mended, an admin queues it again and it is delivered", async (backend) => {
  const pacs = startDestination();
  pacs.answer = () => new Response("no such user", { status: 401 });
  await withStack(backend, [{ d: pacs, name: "pacs", token: "wrong" }], async (ctx) => {
    const sr = report("refused");
    await stowInstances(`${ctx.origin}/dicomweb`, [sr.bytes]);
    await ctx.services.forwarding.idle();
    assert.equal(pacs.received.length, 1, "a 401 is not retried");
    let body = await admin(ctx, "forwarding?state=dead");
    assert.equal(body.deliveries.length, 1);
    assert.equal(body.deliveries[0].lastStatus, 401);
    assert.match(body.deliveries[0].lastError, /HTTP 401: no such user/);
    assert.equal(body.destinations[0].deliveries.dead, 1);

    pacs.answer = (r) => Response.json(stowAnswer(r.sopUids));
    assert.deepEqual(await admin(ctx, "forwarding/retry?destination=pacs", "POST"), {
      requeued: 1,
    });
    await ctx.services.forwarding.idle();
    assert.equal(pacs.received.length, 2);
    body = await admin(ctx, `forwarding?study=${sr.study}`);
    assert.equal(body.deliveries[0].state, "delivered");
    assert.deepEqual(await admin(ctx, "forwarding/retry", "POST"), { requeued: 0 });
  });
});

test("the answer's Failed SOP Sequence decides: a failure is dead, 0x0111 (held already) is delivered", async (backend) => {
  const refusing = startDestination();
  refusing.answer = (r) =>
    Response.json(stowAnswer([], r.sopUids.map((s) => [s, 0xa900])), { status: 409 });
  const holding = startDestination();
  holding.answer = (r) =>
    Response.json(stowAnswer([], r.sopUids.map((s) => [s, 0x0111])), { status: 409 });
  const partial = startDestination();
  partial.answer = (r) =>
    Response.json(stowAnswer([], r.sopUids.map((s) => [s, 0xc000])), { status: 202 });
  await withStack(backend, [
    { d: refusing, name: "refusing" },
    { d: holding, name: "holding" },
    { d: partial, name: "partial" },
  ], async (ctx) => {
    await stowInstances(`${ctx.origin}/dicomweb`, [report("reasons").bytes]);
    await ctx.services.forwarding.idle();
    const { deliveries } = await admin(ctx, "forwarding");
    const by = new Map<string, any>(deliveries.map((d: any) => [d.destination, d]));
    assert.equal(by.get("refusing").state, "dead");
    assert.match(by.get("refusing").lastError, /failure reason 0xa900/);
    assert.equal(by.get("holding").state, "delivered");
    assert.match(by.get("holding").lastError, /held already/);
    assert.equal(by.get("partial").state, "dead", "202 naming the instance as failed");
    for (const d of [refusing, holding, partial]) assert.equal(d.received.length, 1);
  });
});

test("after the last attempt a failing destination's delivery is dead", async (backend) => {
  const pacs = startDestination();
  pacs.answer = () => new Response("down", { status: 502 });
  await withStack(backend, [{ d: pacs, name: "pacs" }], async (ctx) => {
    await stowInstances(`${ctx.origin}/dicomweb`, [report("exhausted").bytes]);
    for (let i = 0; i < 100 && pacs.received.length < 3; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    await ctx.services.forwarding.idle();
    assert.equal(pacs.received.length, FAST.maxAttempts);
    const [entry] = (await admin(ctx, "forwarding")).deliveries;
    assert.equal(entry.state, "dead");
    assert.equal(entry.attempts, FAST.maxAttempts);
    assert.equal(entry.lastStatus, 502);
  });
});

test("the delivery log refuses filters that cannot match, with an OperationOutcome", async (backend) => {
  const pacs = startDestination();
  await withStack(backend, [{ d: pacs, name: "pacs" }], async (ctx) => {
    for (
      const q of ["destination=nope", "state=lost", "study=x;drop", "id=-1"]
    ) {
      const res = await fetch(`${ctx.origin}/admin/forwarding?${q}`);
      const body = await res.json();
      assert.equal(res.status, 400, q);
      assert.equal(body.resourceType, "OperationOutcome", q);
    }
  });
});

Deno.test("DICOM_DESTINATIONS: each problem is named, and the service refuses to start", () => {
  const problems: string[] = [];
  parseDestinations(
    JSON.stringify([
      { name: "a", url: "ftp://x" },
      { name: "b", url: "http://u:p@x/dicom-web" },
      { name: "c", url: "http://x", token: "t", username: "u", password: "p" },
      { name: "d", url: "http://x", send: ["MG-ish"] },
      { name: "e", url: "http://x", tokenEnv: "NOT_SET" },
      { name: "f", url: "http://x", colour: "red" },
      { name: "g g", url: "http://x" },
      { name: "h", url: "http://x" },
      { name: "h", url: "http://y" },
    ]),
    {},
    problems,
  );
  assert.equal(problems.length, 8, problems.join("\n"));
  for (const [i, text] of problems.entries()) {
    assert.match(text, /^DICOM_DESTINATIONS\[\d\]: /, `${i}`);
  }
  assert.throws(() => loadConfig({ DICOM_DESTINATIONS: "{" }), /DICOM_DESTINATIONS: not JSON/);
  const ok = parseDestinations(
    JSON.stringify([{
      name: "p",
      url: "https://pacs/dicom-web/",
      tokenEnv: "T",
      send: ["SEG", "1.2.3"],
    }]),
    { T: "abc" },
    problems,
  );
  assert.deepEqual(ok, [{
    name: "p",
    url: "https://pacs/dicom-web",
    authorization: "Bearer abc",
    sopClasses: ["1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.5", "1.2.3"],
    send: ["SEG", "1.2.3"],
  }]);
});

test("a DIMSE destination gets the SR by C-STORE; while it is down the delivery waits and retries", async (backend) => {
  const which = await new Deno.Command("which", { args: ["storescp"], stdout: "null" }).output();
  if (!which.success) return; // DCMTK missing: tests/dicom/dimse_test.ts says so by name
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  const ctx = await startContext(backend, {
    DICOM_DESTINATIONS: JSON.stringify([{
      name: "modality-pacs",
      dimse: `STORESCP@127.0.0.1:${port}`,
    }]),
  }, { forwarding: { ...FAST, maxAttempts: 1000 } });
  const received = await Deno.makeTempDir({ prefix: "storescp-" });
  let scp: Deno.ChildProcess | undefined;
  try {
    // Down first: the first attempts fail and wait.
    const sr = report("dimse");
    await stowInstances(`${ctx.origin}/dicomweb`, [sr.bytes]);
    await new Promise((r) => setTimeout(r, 100));
    let [entry] = (await admin(ctx, "forwarding")).deliveries;
    assert.equal(entry.state, "pending", JSON.stringify(entry));
    assert.ok(entry.lastError, "the failed attempt says why");
    scp = new Deno.Command("storescp", {
      args: ["-aet", "STORESCP", "-od", received, String(port)],
      stdout: "null",
      stderr: "null",
    }).spawn();
    for (let i = 0; i < 100 && !(await Array.fromAsync(Deno.readDir(received))).length; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    await ctx.services.forwarding.idle();
    const files = await Array.fromAsync(Deno.readDir(received));
    assert.equal(files.length, 1, "storescp received the SR");
    [entry] = (await admin(ctx, "forwarding")).deliveries;
    assert.equal(entry.state, "delivered", JSON.stringify(entry));
    const summary = (await admin(ctx, "forwarding")).destinations[0];
    assert.equal(summary.url, `dimse://STORESCP@127.0.0.1:${port}`);
    assert.equal(summary.authentication, "none");
  } finally {
    scp?.kill();
    await scp?.status;
    await ctx.close();
  }
});
