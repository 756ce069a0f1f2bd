// deno-lint-ignore-file no-explicit-any
/**
 * @module FHIR R4 Subscriptions (rest-hook) when the receiver fails: retries after backoffs of ~1×
 * and ~2× the base, the Subscription in error after the last attempt and active again after a
 * success, and a pending retry and changes made while no matcher ran delivered after a restart.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../../platform/config.ts";
import { createServices } from "../../services.ts";
import { backendTest, fhirJson, type TestContext, uniq } from "../_harness.ts";
import { create } from "./_util.ts";
import {
  deliveries,
  fastRetries,
  receiver,
  report,
  subscription,
  turnOff,
  waitForStatus,
} from "./_subscription.ts";

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
