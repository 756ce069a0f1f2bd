// deno-lint-ignore-file no-explicit-any
/** @module `GET /events` (Server-Sent Events) over a real HTTP connection. */
import assert from "node:assert/strict";
import { backendTest, fhirJson, type TestContext, uniq } from "../_harness.ts";
import { create } from "../fhir/_util.ts";

interface SseEvent {
  event: string;
  id: string;
  data: any;
}

/** Connects to /events and parses the stream as it arrives. */
async function connect(ctx: TestContext, query = "", headers: Record<string, string> = {}) {
  const abort = new AbortController();
  const res = await fetch(`${ctx.origin}/events${query}`, { headers, signal: abort.signal });
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/event-stream/);
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  const events: SseEvent[] = [];
  let buffer = "";
  let waiting: (() => void) | undefined;
  const pump = (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const fields: Record<string, string> = {};
          for (const line of block.split("\n")) {
            if (!line || line.startsWith(":")) continue;
            const colon = line.indexOf(":");
            fields[line.slice(0, colon)] = line.slice(colon + 1).trimStart();
          }
          if (fields.data !== undefined) {
            events.push({ event: fields.event, id: fields.id, data: JSON.parse(fields.data) });
            waiting?.();
          }
        }
      }
    } catch { /* aborted */ }
  })();
  return {
    events,
    /** Waits until `n` events (optionally only those `where` accepts) have arrived. */
    async take(n: number, where: (e: SseEvent) => boolean = () => true, timeoutMs = 10_000) {
      const until = Date.now() + timeoutMs;
      while (events.filter(where).length < n) {
        if (Date.now() > until) {
          throw new Error(`expected ${n} events, got ${JSON.stringify(events.filter(where))}`);
        }
        await new Promise<void>((r) => {
          waiting = r;
          setTimeout(r, 50);
        });
      }
      return events.filter(where).slice(0, n);
    },
    async close() {
      // Cancelling the reader ends the body for sure (an abort alone may not, once it is piped).
      await reader.cancel().catch(() => {});
      abort.abort();
      await pump;
    },
  };
}

async function eventually(what: string, ok: () => boolean, timeoutMs = 5_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function task(status: string, extra: any = {}): any {
  return { resourceType: "Task", status, intent: "order", ...extra };
}

async function setStatus(ctx: TestContext, current: any, status: string, extra: any = {}) {
  const res = await fhirJson(ctx, "PUT", `Task/${current.id}`, { ...current, status, ...extra });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body;
}

backendTest("GET /events streams a Task's create and two status changes in order", async (ctx) => {
  const stream = await connect(ctx);
  try {
    const focus = `ImagingStudy/${uniq()}`;
    const t1 = await create(ctx, task("requested", { focus: { reference: focus } }));
    const t2 = await setStatus(ctx, t1, "in-progress");
    await setStatus(ctx, t2, "failed", { statusReason: { text: "model crashed" } });
    const got = await stream.take(3, (e) => e.data.id === t1.id);
    assert.deepEqual(got.map((e) => e.event), ["Task", "Task", "Task"]);
    assert.deepEqual(got.map((e) => e.data.status), ["requested", "in-progress", "failed"]);
    assert.deepEqual(got.map((e) => e.data.versionId), ["1", "2", "3"]);
    assert.deepEqual(got[2].data.statusReason, { text: "model crashed" });
    assert.equal(got[0].data.focus, focus);
    assert.equal(got[0].data.resourceType, "Task");
    assert.ok(!Number.isNaN(Date.parse(got[0].data.lastUpdated)));
    const ids = got.map((e) => Number(e.id));
    assert.ok(ids[0] < ids[1] && ids[1] < ids[2], `ids increase: ${ids}`);
  } finally {
    await stream.close();
  }
});

backendTest("GET /events?types= and ?focus= filter the events", async (ctx) => {
  const study = `ImagingStudy/${uniq()}`;
  const reports = await connect(ctx, "?types=DiagnosticReport");
  const focused = await connect(ctx, `?types=Task,DiagnosticReport&focus=${study}`);
  try {
    const other = await create(ctx, task("requested", { focus: { reference: "ImagingStudy/x" } }));
    const mine = await create(ctx, task("requested", { focus: { reference: study } }));
    const dr = await create(ctx, {
      resourceType: "DiagnosticReport",
      status: "final",
      code: { text: "AI" },
      imagingStudy: [{ reference: study }],
    });
    const [first] = await reports.take(1);
    assert.equal(first.event, "DiagnosticReport", "no Task event before the report's");
    assert.equal(first.data.id, dr.id);
    assert.equal(first.data.status, "final");
    const got = await focused.take(2);
    assert.deepEqual(got.map((e) => e.data.id), [mine.id, dr.id]);
    assert.ok(!focused.events.some((e) => e.data.id === other.id));
  } finally {
    await reports.close();
    await focused.close();
  }
  const bad = await fetch(`${ctx.origin}/events?types=Nope`);
  assert.equal(bad.status, 400);
  await bad.body?.cancel();
});

backendTest("GET /events with Last-Event-ID replays the missed changes, once each", async (ctx) => {
  const first = await connect(ctx);
  const t1 = await create(ctx, task("requested"));
  const [seen] = await first.take(1, (e) => e.data.id === t1.id);
  await first.close();

  const t2 = await setStatus(ctx, t1, "in-progress");
  await setStatus(ctx, t2, "completed");
  await ctx.services.changes.caughtUp();

  const resumed = await connect(ctx, "", { "Last-Event-ID": seen.id });
  try {
    const got = await resumed.take(2, (e) => e.data.id === t1.id);
    assert.deepEqual(got.map((e) => e.data.status), ["in-progress", "completed"]);
    assert.ok(got.every((e) => Number(e.id) > Number(seen.id)));
    // Live events continue after the replay, without repeats.
    const t3 = await create(ctx, task("draft"));
    await resumed.take(1, (e) => e.data.id === t3.id);
    const ids = resumed.events.map((e) => e.id);
    assert.equal(new Set(ids).size, ids.length, "no event twice");
  } finally {
    await resumed.close();
  }
});

backendTest("a client that disconnects leaves no change-feed listener behind", async (ctx) => {
  const events = ctx.services.events;
  await eventually("earlier streams to end", () => events.clients === 0);
  const stream = await connect(ctx);
  await eventually("the client to register", () => events.clients === 1);
  assert.equal(events.listening, true);
  await stream.close();
  await eventually("the client to go", () => events.clients === 0);
  assert.equal(events.listening, false, "the feed listener is removed with the last client");
});
