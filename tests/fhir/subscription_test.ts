// deno-lint-ignore-file no-explicit-any
/**
 * @module FHIR R4 Subscriptions (rest-hook) end to end: a real HTTP receiver, Subscriptions and
 * resources written over HTTP, notifications followed through the change feed.
 */
import assert from "node:assert/strict";
import { ConfigError, loadConfig } from "../../platform/config.ts";
import { endpointAllowed, parseEndpointPatterns } from "../../platform/endpoint_patterns.ts";
import { createServices } from "../../services.ts";
import { backendTest, fhirJson, type TestContext, uniq } from "../_harness.ts";
import { create } from "./_util.ts";

interface Received {
  method: string;
  path: string;
  headers: Headers;
  body: string;
  at: number;
}

/** A local endpoint that records every request and answers with `status(n)` (n from 1). */
function receiver(status: (n: number) => number = () => 200) {
  const requests: Received[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    requests.push({
      method: req.method,
      path: new URL(req.url).pathname,
      headers: req.headers,
      body: await req.text(),
      at: performance.now(),
    });
    return new Response(null, { status: status(requests.length) });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    requests,
    async waitFor(n: number, timeoutMs = 10_000): Promise<void> {
      const until = Date.now() + timeoutMs;
      while (requests.length < n) {
        if (Date.now() > until) {
          throw new Error(`expected ${n} notifications, got ${requests.length} in ${timeoutMs} ms`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    close: () => server.shutdown(),
  };
}

/** Short retries for tests (the service's options may be changed at run time). */
function fastRetries(ctx: TestContext, maxAttempts = 3, backoffBaseMs = 300): void {
  Object.assign(ctx.services.subscriptions.options, {
    maxAttempts,
    backoffBaseMs,
    backoffMaxMs: 10_000,
    timeoutMs: 3_000,
    pollMs: 200,
  });
}

function subscription(criteria: string, endpoint: string, channel: any = {}): any {
  return {
    resourceType: "Subscription",
    status: "requested",
    reason: "test",
    criteria,
    channel: { type: "rest-hook", endpoint, ...channel },
  };
}

async function waitForStatus(
  ctx: TestContext,
  id: string,
  status: string,
  timeoutMs = 10_000,
): Promise<any> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const res = await fhirJson(ctx, "GET", `Subscription/${id}`);
    if (res.body?.status === status) return res.body;
    if (Date.now() > until) {
      throw new Error(
        `Subscription/${id} is ${res.body?.status}, not ${status}: ${res.body?.error}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Turns a test's Subscription off so that later tests' resources do not notify it. */
async function turnOff(ctx: TestContext, id: string): Promise<void> {
  const current = (await fhirJson(ctx, "GET", `Subscription/${id}`)).body;
  await fhirJson(ctx, "PUT", `Subscription/${id}`, { ...current, status: "off" });
}

function report(status: string, extra: any = {}): any {
  return { resourceType: "DiagnosticReport", status, code: { text: "CT chest AI" }, ...extra };
}

async function deliveries(ctx: TestContext, subscriptionId: string): Promise<any[]> {
  return await ctx.services.db.query(
    `SELECT resource_id, resource_version, state, attempts, last_status, last_error, delivered_at
     FROM subscription_delivery WHERE subscription_id = $1 ORDER BY id`,
    [subscriptionId],
  );
}

backendTest(
  "Subscription DiagnosticReport?status=final: active, then one empty POST with its headers per final version; none for preliminary or deletion",
  async (ctx) => {
    fastRetries(ctx);
    const hook = receiver();
    const sub = await create(
      ctx,
      subscription("DiagnosticReport?status=final", `${hook.url}/hook`, {
        header: ["Authorization: Bearer s3cret", "X-Tenant: radiology"],
      }),
    );
    try {
      const active = await waitForStatus(ctx, sub.id, "active");
      assert.equal(active.error, undefined);

      await create(ctx, report("preliminary"));
      await ctx.services.subscriptions.caughtUp();
      assert.equal(hook.requests.length, 0, "a preliminary report notifies nobody");

      const final = await create(ctx, report("final"));
      await hook.waitFor(1);
      await ctx.services.subscriptions.caughtUp();
      assert.equal(hook.requests.length, 1, "exactly one notification");
      const [n] = hook.requests;
      assert.equal(n.method, "POST");
      assert.equal(n.path, "/hook");
      assert.equal(n.body, "", "no payload: an empty POST (R4 rest-hook)");
      assert.equal(n.headers.get("authorization"), "Bearer s3cret");
      assert.equal(n.headers.get("x-tenant"), "radiology");
      const [d] = await deliveries(ctx, sub.id);
      assert.equal(d.resource_id, final.id);
      assert.equal(d.state, "delivered");
      assert.equal(Number(d.attempts), 1);
      assert.equal(Number(d.last_status), 200);
      assert.ok(d.delivered_at);

      // A new final version notifies again; a deletion does not.
      await fhirJson(ctx, "PUT", `DiagnosticReport/${final.id}`, { ...final, conclusion: "ok" });
      await hook.waitFor(2);
      await fhirJson(ctx, "DELETE", `DiagnosticReport/${final.id}`);
      await ctx.services.subscriptions.caughtUp();
      assert.equal(hook.requests.length, 2);
    } finally {
      await turnOff(ctx, sub.id);
      await hook.close();
    }
  },
);

backendTest(
  "Subscription with payload application/fhir+json: PUT [endpoint]/DiagnosticReport/{id} with the resource (R4 rest-hook)",
  async (ctx) => {
    fastRetries(ctx);
    const hook = receiver();
    const u = uniq();
    const sub = await create(
      ctx,
      subscription(`DiagnosticReport?status=final&identifier=urn:test|${u}`, `${hook.url}/ehr/`, {
        payload: "application/fhir+json",
        header: ["X-Token: abc"],
      }),
    );
    try {
      await waitForStatus(ctx, sub.id, "active");
      const dr = await create(
        ctx,
        report("final", { identifier: [{ system: "urn:test", value: u }] }),
      );
      await hook.waitFor(1);
      await ctx.services.subscriptions.caughtUp();
      assert.equal(hook.requests.length, 1);
      const [n] = hook.requests;
      assert.equal(n.method, "PUT");
      assert.equal(n.path, `/ehr/DiagnosticReport/${dr.id}`);
      assert.match(n.headers.get("content-type") ?? "", /^application\/fhir\+json/);
      assert.equal(n.headers.get("x-token"), "abc");
      const body = JSON.parse(n.body);
      assert.equal(body.resourceType, "DiagnosticReport");
      assert.equal(body.id, dr.id);
      assert.equal(body.status, "final");
      assert.equal(body.meta.versionId, "1");
    } finally {
      await turnOff(ctx, sub.id);
      await hook.close();
    }
  },
);

backendTest(
  "Subscription with bad criteria, an unsupported type or channel, or an end in the past: error or off",
  async (ctx) => {
    const endpoint = "http://127.0.0.1:9/hook";
    const bad = await create(ctx, subscription("DiagnosticReport?nonsense=1", endpoint));
    const badType = await create(ctx, subscription("Medication?code=x", endpoint));
    const badChannel = await create(
      ctx,
      subscription("DiagnosticReport?status=final", "ws://127.0.0.1:9/", { type: "websocket" }),
    );
    const badModifier = await create(
      ctx,
      subscription("DiagnosticReport?status:contains=fin", endpoint),
    );
    const ended = await create(ctx, {
      ...subscription("DiagnosticReport?status=final", endpoint),
      end: "2020-01-01T00:00:00Z",
    });
    const e1 = await waitForStatus(ctx, bad.id, "error");
    assert.match(e1.error, /nonsense/);
    const e2 = await waitForStatus(ctx, badType.id, "error");
    assert.match(e2.error, /Medication/);
    const e3 = await waitForStatus(ctx, badChannel.id, "error");
    assert.match(e3.error, /websocket/);
    const e4 = await waitForStatus(ctx, badModifier.id, "error");
    assert.match(e4.error, /contains/);
    await waitForStatus(ctx, ended.id, "off");

    // Fixed by the client (status requested again): active.
    await fhirJson(ctx, "PUT", `Subscription/${bad.id}`, {
      ...e1,
      status: "requested",
      criteria: "DiagnosticReport?status=final&identifier=urn:test|none",
    });
    await waitForStatus(ctx, bad.id, "active");
    await turnOff(ctx, bad.id);
  },
);

backendTest(
  "a receiver that fails twice is notified on the 3rd attempt, after backoffs of ~1× and ~2× the base",
  async (ctx) => {
    const base = 300;
    fastRetries(ctx, 4, base);
    const hook = receiver((n) => n <= 2 ? 503 : 204);
    const u = uniq();
    const sub = await create(
      ctx,
      subscription(`DiagnosticReport?identifier=urn:test|${u}`, `${hook.url}/flaky`),
    );
    try {
      await waitForStatus(ctx, sub.id, "active");
      await create(ctx, report("final", { identifier: [{ system: "urn:test", value: u }] }));
      await hook.waitFor(3);
      await ctx.services.subscriptions.caughtUp();
      assert.equal(hook.requests.length, 3);
      const [a, b, c] = hook.requests.map((r) => r.at);
      const gap1 = b - a, gap2 = c - b;
      assert.ok(gap1 >= base * 0.9 && gap1 < base + 1500, `1st backoff ${gap1.toFixed(0)} ms`);
      assert.ok(gap2 >= 2 * base * 0.9 && gap2 < 2 * base + 1500, `2nd ${gap2.toFixed(0)} ms`);
      const [d] = await deliveries(ctx, sub.id);
      assert.equal(d.state, "delivered");
      assert.equal(Number(d.attempts), 3);
      assert.equal(Number(d.last_status), 204);
      assert.equal((await fhirJson(ctx, "GET", `Subscription/${sub.id}`)).body.status, "active");
    } finally {
      await turnOff(ctx, sub.id);
      await hook.close();
    }
  },
);

backendTest(
  "a receiver that always fails: Subscription error after N attempts; a later success sets it active",
  async (ctx) => {
    fastRetries(ctx, 3, 100);
    let up = false;
    const hook = receiver(() => up ? 200 : 500);
    const u = uniq();
    const sub = await create(
      ctx,
      subscription(`DiagnosticReport?identifier=urn:test|${u}`, `${hook.url}/down`),
    );
    try {
      await waitForStatus(ctx, sub.id, "active");
      const dr = await create(
        ctx,
        report("final", { identifier: [{ system: "urn:test", value: u }] }),
      );
      const failed = await waitForStatus(ctx, sub.id, "error");
      assert.equal(hook.requests.length, 3, "3 attempts, then given up");
      assert.match(failed.error, /failed after 3 attempts: HTTP 500/);
      assert.match(failed.error, new RegExp(`DiagnosticReport/${dr.id}`));
      const [d] = await deliveries(ctx, sub.id);
      assert.equal(d.state, "failed");
      assert.equal(Number(d.attempts), 3);
      assert.equal(d.last_error, "HTTP 500");

      // The server keeps notifying a Subscription in error; the first success makes it active.
      up = true;
      await create(ctx, report("amended", { identifier: [{ system: "urn:test", value: u }] }));
      await waitForStatus(ctx, sub.id, "active");
      assert.equal(hook.requests.length, 4);
    } finally {
      await turnOff(ctx, sub.id);
      await hook.close();
    }
  },
);

backendTest(
  "criteria with a chained reference and a system|code token: only matching reports notify",
  async (ctx) => {
    fastRetries(ctx);
    const hook = receiver();
    const u = uniq();
    const patient = await create(ctx, {
      resourceType: "Patient",
      identifier: [{ system: "urn:mrn", value: u }],
    });
    const other = await create(ctx, { resourceType: "Patient", name: [{ family: u }] });
    const code = { coding: [{ system: "http://loinc.org", code: "24627-2" }] };
    const sub = await create(
      ctx,
      subscription(
        `DiagnosticReport?subject:Patient.identifier=urn:mrn|${u}&code=http://loinc.org|24627-2`,
        `${hook.url}/chain`,
      ),
    );
    try {
      await waitForStatus(ctx, sub.id, "active");
      await create(ctx, report("final", { code, subject: { reference: `Patient/${other.id}` } }));
      await create(ctx, report("final", { subject: { reference: `Patient/${patient.id}` } }));
      const hit = await create(
        ctx,
        report("final", { code, subject: { reference: `Patient/${patient.id}` } }),
      );
      await hook.waitFor(1);
      await ctx.services.subscriptions.caughtUp();
      assert.equal(hook.requests.length, 1);
      const rows = await deliveries(ctx, sub.id);
      assert.deepEqual(rows.map((r) => r.resource_id), [hit.id]);
    } finally {
      await turnOff(ctx, sub.id);
      await hook.close();
    }
  },
);

Deno.test({
  name:
    "a pending retry and changes made while no matcher ran are delivered after a restart [pglite]",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    let up = false;
    const hook = receiver(() => up ? 200 : 500);
    const config = loadConfig({
      PGLITE_DIR: await Deno.makeTempDir({ prefix: "pglite-sub-" }),
      OBJECT_DIR: await Deno.makeTempDir({ prefix: "objects-" }),
      CHANGE_FEED_INTERVAL_MS: "50",
      LOG_LEVEL: "error",
      AUTH: "off",
      OUTBOUND_PRIVATE_ADDRESSES: "allow", // the receiver listens on 127.0.0.1
    });
    const overrides = { subscriptions: { backoffBaseMs: 500, pollMs: 100, maxAttempts: 5 } };
    const write = (services: any, resource: any) =>
      services.fhir.interact({
        method: "POST",
        path: [resource.resourceType],
        query: [],
        body: resource,
      })
        .then((r: any) => r.body);
    const first = await createServices(config, overrides);
    let second;
    try {
      const sub = await write(first, subscription("DiagnosticReport?status=final", hook.url));
      await first.subscriptions.caughtUp();
      const active = await first.fhir.interact({
        method: "GET",
        path: ["Subscription", sub.id],
        query: [],
      });
      assert.equal((active.body as any).status, "active");
      const r1 = await write(first, report("final"));
      await first.subscriptions.caughtUp();
      assert.equal(hook.requests.length, 1, "the first attempt failed");
      await first.subscriptions.close(); // no matcher runs from here on
      const r2 = await write(first, report("final"));
      await first.close();

      up = true;
      second = await createServices(config, overrides);
      await hook.waitFor(3);
      await second.subscriptions.caughtUp();
      const rows = await deliveries({ services: second } as TestContext, sub.id);
      assert.deepEqual(
        rows.map((r) => [r.resource_id, r.state, Number(r.attempts)]),
        [[r1.id, "delivered", 2], [r2.id, "delivered", 1]],
      );
    } finally {
      await second?.close();
      await hook.close();
    }
  },
});

/** Sets SUBSCRIPTION_ENDPOINTS of the running service (read on every write and delivery). */
function allowEndpoints(ctx: TestContext, list: string): void {
  ctx.services.fhir.context.subscriptionEndpoints = parseEndpointPatterns(list);
}

Deno.test("SUBSCRIPTION_ENDPOINTS: URL prefixes at a segment boundary, host patterns, ports", () => {
  const patterns = parseEndpointPatterns(
    " https://ehr.example.org/fhir/ , *.hospital.org, ehr.other.org:8443,HTTP://Upper.Example.org,",
  );
  assert.equal(patterns.length, 4);
  const allowed = (url: string) => endpointAllowed(patterns, url);
  for (
    const url of [
      "https://ehr.example.org/fhir",
      "https://ehr.example.org/fhir/",
      "https://ehr.example.org/fhir/hook?x=1",
      "https://EHR.example.org:443/fhir/a/b",
      "https://a.hospital.org/anything",
      "http://a.b.hospital.org:8080/",
      "https://ehr.other.org:8443/hook",
      "http://ehr.other.org:8443/",
      "http://upper.example.org/any/path",
    ]
  ) assert.ok(allowed(url), url);
  for (
    const url of [
      "https://ehr.example.org/fhirx",
      "https://ehr.example.org/fhir-other/x",
      "https://ehr.example.org/fhir/../admin",
      "https://ehr.example.org/",
      "http://ehr.example.org/fhir/",
      "https://ehr.example.org:8443/fhir/",
      "https://evil.example.org/fhir/",
      "https://ehr.example.org.evil.com/fhir/",
      "https://ehr.example.org@evil.com/fhir/",
      "https://hospital.org/",
      "https://evilhospital.org/",
      "https://a.hospital.org.evil.com/",
      "https://ehr.other.org/hook",
      "https://upper.example.org/",
      "ftp://a.hospital.org/",
      "not a url",
    ]
  ) assert.ok(!allowed(url), url);
  assert.ok(endpointAllowed([], "http://169.254.169.254/"), "an empty list allows any");
  assert.deepEqual(loadConfig({}).subscriptionEndpoints, []);
  assert.equal(loadConfig({}).outboundPrivateAddresses, "refuse");
  assert.throws(
    () => loadConfig({ OUTBOUND_PRIVATE_ADDRESSES: "yes" }),
    (e: any) => e instanceof ConfigError && /OUTBOUND_PRIVATE_ADDRESSES=yes/.test(e.problems[0]),
  );
  assert.throws(
    () =>
      loadConfig({
        SUBSCRIPTION_ENDPOINTS: "https://ok.org/, ftp://files.org/",
        LOG_LEVEL: "loud",
      }),
    (e: any) =>
      e instanceof ConfigError && e.problems.length === 2 &&
      /^SUBSCRIPTION_ENDPOINTS: "ftp:\/\/files.org\/": expected http/.test(e.problems[1]),
  );
  for (const bad of ["https://x.org/?q=1", "ehr.org/path", "*", "a.org:99999", "user@a.org"]) {
    assert.throws(() => parseEndpointPatterns(bad), Error, bad);
  }
});

backendTest(
  "SUBSCRIPTION_ENDPOINTS: an allowed endpoint is accepted; a sibling path, another host or port is refused with 400 on create, update, patch and in a transaction",
  async (ctx) => {
    const u = uniq();
    const criteria = `DiagnosticReport?identifier=urn:test|${u}`;
    const made: string[] = [];
    allowEndpoints(ctx, "https://ehr.example.org/fhir/, *.hospital.org, ehr.other.org:8443");
    try {
      for (
        const endpoint of [
          "https://ehr.example.org/fhir/hook",
          "https://ehr.example.org/fhir",
          "https://a.hospital.org/notify",
          "http://a.b.hospital.org:8080/",
          "https://ehr.other.org:8443/",
        ]
      ) made.push((await create(ctx, subscription(criteria, endpoint))).id);
      const refused = (res: { status: number; body: any }, endpoint: string) => {
        assert.equal(res.status, 400, `${endpoint}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body.resourceType, "OperationOutcome");
        const [issue] = res.body.issue;
        assert.equal(issue.severity, "error");
        assert.equal(issue.code, "value");
        assert.deepEqual(issue.expression, ["Subscription.channel.endpoint"]);
        assert.equal(
          issue.diagnostics,
          `Subscription.channel.endpoint "${endpoint}" is not in SUBSCRIPTION_ENDPOINTS, the endpoints this server may notify`,
        );
      };
      for (
        const endpoint of [
          "https://ehr.example.org/fhirx",
          "https://evil.example.org/fhir/",
          "http://ehr.example.org/fhir/",
          "https://hospital.org/",
          "https://ehr.other.org/",
          "http://127.0.0.1:9/hook",
        ]
      ) {
        refused(
          await fhirJson(ctx, "POST", "Subscription", subscription(criteria, endpoint)),
          endpoint,
        );
      }
      // The same kind of answer as a channel the validator refuses.
      const badType = await fhirJson(
        ctx,
        "POST",
        "Subscription",
        subscription(criteria, "https://ehr.example.org/fhir/", { type: "ftp" }),
      );
      assert.equal(badType.status, 400);
      assert.equal(badType.body.resourceType, "OperationOutcome");

      // Update and patch to an endpoint outside the list: 400, the stored version unchanged.
      const current = (await fhirJson(ctx, "GET", `Subscription/${made[0]}`)).body;
      const moved = structuredClone(current);
      moved.channel.endpoint = "https://ehr.example.org/fhirx";
      refused(
        await fhirJson(ctx, "PUT", `Subscription/${made[0]}`, moved),
        moved.channel.endpoint,
      );
      refused(
        await fhirJson(ctx, "PATCH", `Subscription/${made[0]}`, [
          { op: "replace", path: "/channel/endpoint", value: "https://intranet.local/" },
        ], { "content-type": "application/json-patch+json" }),
        "https://intranet.local/",
      );
      const after = (await fhirJson(ctx, "GET", `Subscription/${made[0]}`)).body;
      assert.equal(after.meta.versionId, current.meta.versionId);
      assert.equal(after.channel.endpoint, "https://ehr.example.org/fhir/hook");

      // A transaction with one such Subscription fails as a whole.
      const mrn = uniq("mrn");
      const tx = await fhirJson(ctx, "POST", "", {
        resourceType: "Bundle",
        type: "transaction",
        entry: [
          {
            request: { method: "POST", url: "Patient" },
            resource: { resourceType: "Patient", identifier: [{ system: "urn:mrn", value: mrn }] },
          },
          {
            request: { method: "POST", url: "Subscription" },
            resource: subscription(criteria, "https://evil.example.org/"),
          },
        ],
      });
      assert.equal(tx.status, 400, JSON.stringify(tx.body));
      assert.match(JSON.stringify(tx.body), /is not in SUBSCRIPTION_ENDPOINTS/);
      const patients = await fhirJson(ctx, "GET", `Patient?identifier=urn:mrn|${mrn}`);
      assert.equal(patients.body.total, 0, "rolled back");

      // Off is always allowed, so a Subscription the list no longer covers can be turned off.
      const off = await fhirJson(ctx, "POST", "Subscription", {
        ...subscription(criteria, "https://evil.example.org/"),
        status: "off",
      });
      assert.equal(off.status, 201);
      made.push(off.body.id);
    } finally {
      allowEndpoints(ctx, "");
      for (const id of made) await turnOff(ctx, id);
    }
  },
);

backendTest(
  "SUBSCRIPTION_ENDPOINTS tightened after a Subscription was made: its pending delivery fails with the reason, nothing is sent, the Subscription goes to error",
  async (ctx) => {
    fastRetries(ctx, 4, 1_000);
    const hook = receiver((n) => n === 1 ? 500 : 200);
    const u = uniq();
    const sub = await create(
      ctx,
      subscription(`DiagnosticReport?identifier=urn:test|${u}`, `${hook.url}/tightened`),
    );
    try {
      await waitForStatus(ctx, sub.id, "active");
      const dr = await create(
        ctx,
        report("final", { identifier: [{ system: "urn:test", value: u }] }),
      );
      await hook.waitFor(1); // the first attempt fails: a retry is due in ~1 s
      allowEndpoints(ctx, "https://ehr.example.org/fhir/");
      const until = Date.now() + 10_000;
      let rows = await deliveries(ctx, sub.id);
      while (rows[0]?.state !== "failed" && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 50));
        rows = await deliveries(ctx, sub.id);
      }
      assert.equal(rows.length, 1);
      const [d] = rows;
      assert.equal(d.resource_id, dr.id);
      assert.equal(d.state, "failed", "failed for good, not retried");
      assert.equal(Number(d.attempts), 2);
      const reason =
        `Subscription.channel.endpoint "${hook.url}/tightened" is not in SUBSCRIPTION_ENDPOINTS, the endpoints this server may notify`;
      assert.equal(d.last_error, reason);
      const errored = await waitForStatus(ctx, sub.id, "error");
      assert.equal(errored.error, reason);
      assert.equal(hook.requests.length, 1, "the retry was not sent");

      // Later matches are not sent either, and the client cannot ask for it again.
      await create(ctx, report("amended", { identifier: [{ system: "urn:test", value: u }] }));
      await ctx.services.subscriptions.caughtUp();
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(hook.requests.length, 1);
      const again = await fhirJson(ctx, "PUT", `Subscription/${sub.id}`, {
        ...errored,
        status: "requested",
      });
      assert.equal(again.status, 400);
    } finally {
      allowEndpoints(ctx, "");
      await turnOff(ctx, sub.id);
      await hook.close();
    }
  },
);

/** The service's outbound policy for the duration of `fn` (tests run one at a time per file). */
async function withOutbound(
  ctx: TestContext,
  policy: { private: "refuse" | "allow"; resolve?: (host: string) => Promise<string[]> },
  fn: () => Promise<void>,
): Promise<void> {
  const c = ctx.services.fhir.context;
  const before = { private: c.outboundPrivateAddresses, resolve: c.resolveHost };
  c.outboundPrivateAddresses = policy.private;
  c.resolveHost = policy.resolve;
  try {
    await fn();
  } finally {
    c.outboundPrivateAddresses = before.private;
    c.resolveHost = before.resolve;
    allowEndpoints(ctx, "");
  }
}

backendTest(
  "outbound by default: a Subscription to loopback, private, link-local (metadata) or IPv6 loopback addresses or localhost is 400; SUBSCRIPTION_ENDPOINTS may name one",
  async (ctx) => {
    await withOutbound(ctx, { private: "refuse" }, async () => {
      for (
        const [endpoint, why] of [
          ["http://127.0.0.1:8080/hook", /a loopback address/],
          ["http://169.254.169.254/latest/meta-data/", /link-local/],
          ["http://[::1]:8080/hook", /loopback address \(::1\)/],
          ["http://[::ffff:127.0.0.1]/hook", /loopback address \(as IPv6\)/],
          ["https://10.1.2.3/hook", /a private address/],
          ["http://[fd00:ec2::254]/", /unique local/],
          ["http://localhost:9999/hook", /loopback name/],
        ] as const
      ) {
        const r = await fhirJson(ctx, "POST", "Subscription", subscription("Patient?", endpoint));
        assert.equal(r.status, 400, `${endpoint}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.issue[0].expression?.[0], "Subscription.channel.endpoint");
        assert.match(r.body.issue[0].diagnostics, why, endpoint);
        assert.match(r.body.issue[0].diagnostics, /OUTBOUND_PRIVATE_ADDRESSES=allow/);
      }
      // A public endpoint is accepted; so is a private one the administrator lists.
      const ok = await fhirJson(
        ctx,
        "POST",
        "Subscription",
        { ...subscription("Patient?", "https://ehr.example.org/hook"), status: "off" },
      );
      assert.equal(ok.status, 201, JSON.stringify(ok.body));
      allowEndpoints(ctx, "127.0.0.1");
      const listed = await fhirJson(
        ctx,
        "POST",
        "Subscription",
        subscription("Patient?", "http://127.0.0.1:8080/hook"),
      );
      assert.equal(listed.status, 201, JSON.stringify(listed.body));
      await turnOff(ctx, listed.body.id);
    });
  },
);

backendTest(
  "outbound by default: a name that rebinds to 127.0.0.1 between the check and the connection is refused at the connection; nothing is sent",
  async (ctx) => {
    const hook = receiver();
    const port = new URL(hook.url).port;
    const u = uniq();
    let lookups = 0;
    await withOutbound(ctx, {
      private: "refuse",
      // Public for the check before sending, loopback from then on (a DNS rebinding attack).
      resolve: (host) =>
        host === "rebinding.test"
          ? Promise.resolve([++lookups === 1 ? "93.184.216.34" : "127.0.0.1"])
          : Promise.reject(new Error("unknown")),
    }, async () => {
      const sub = await create(
        ctx,
        subscription(
          `DiagnosticReport?identifier=urn:test|${u}`,
          `http://rebinding.test:${port}/x`,
        ),
      );
      try {
        await waitForStatus(ctx, sub.id, "active");
        await create(ctx, report("final", { identifier: [{ system: "urn:test", value: u }] }));
        const errored = await waitForStatus(ctx, sub.id, "error");
        assert.match(errored.error, /rebinding\.test resolves to 127\.0\.0\.1, a loopback address/);
        assert.ok(lookups >= 2, "the connection did not resolve the name itself");
        const [row] = await deliveries(ctx, sub.id);
        assert.equal(row?.state, "failed");
        assert.equal(hook.requests.length, 0, "a notification reached the loopback address");
      } finally {
        await turnOff(ctx, sub.id);
        await hook.close();
      }
    });
  },
);

backendTest(
  "outbound by default: a name that resolves to 127.0.0.1 is checked before each notification: nothing is sent, the delivery fails with the reason, the Subscription goes to error",
  async (ctx) => {
    const hook = receiver();
    const port = new URL(hook.url).port;
    const u = uniq();
    await withOutbound(ctx, {
      private: "refuse",
      resolve: (host) =>
        host === "rebind.test" ? Promise.resolve(["93.184.216.34", "127.0.0.1"]) : Promise.reject(
          new Error("unknown"),
        ),
    }, async () => {
      const sub = await create(
        ctx,
        subscription(`DiagnosticReport?identifier=urn:test|${u}`, `http://rebind.test:${port}/x`),
      );
      try {
        await waitForStatus(ctx, sub.id, "active");
        await create(ctx, report("final", { identifier: [{ system: "urn:test", value: u }] }));
        const until = Date.now() + 10_000;
        let rows = await deliveries(ctx, sub.id);
        while (rows[0]?.state !== "failed" && Date.now() < until) {
          await new Promise((r) => setTimeout(r, 50));
          rows = await deliveries(ctx, sub.id);
        }
        assert.equal(rows[0]?.state, "failed", JSON.stringify(rows));
        assert.match(
          rows[0].last_error,
          /rebind\.test resolves to 127\.0\.0\.1, a loopback address/,
        );
        const errored = await waitForStatus(ctx, sub.id, "error");
        assert.match(errored.error, /rebind\.test resolves to 127\.0\.0\.1/);
        assert.equal(hook.requests.length, 0, "nothing was sent");
      } finally {
        await turnOff(ctx, sub.id);
        await hook.close();
      }
    });
  },
);
