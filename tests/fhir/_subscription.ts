// deno-lint-ignore-file no-explicit-any
/**
 * @module Helpers of the FHIR Subscription tests (tests/fhir/subscription_*_test.ts), not a test
 * file itself: a local receiver that records every notification, short retries, Subscriptions
 * and DiagnosticReports to write, waiting for a Subscription's status, turning it off after a
 * test, its delivery rows, and SUBSCRIPTION_ENDPOINTS set on the running service.
 */
import { parseEndpointPatterns } from "../../platform/endpoint_patterns.ts";
import { fhirJson, type TestContext } from "../_harness.ts";

export interface Received {
  method: string;
  path: string;
  headers: Headers;
  body: string;
  at: number;
}

/** A local endpoint that records every request and answers with `status(n)` (n from 1). */
export function receiver(status: (n: number) => number = () => 200) {
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
export function fastRetries(ctx: TestContext, maxAttempts = 3, backoffBaseMs = 300): void {
  Object.assign(ctx.services.subscriptions.options, {
    maxAttempts,
    backoffBaseMs,
    backoffMaxMs: 10_000,
    timeoutMs: 3_000,
    pollMs: 200,
  });
}

export function subscription(criteria: string, endpoint: string, channel: any = {}): any {
  return {
    resourceType: "Subscription",
    status: "requested",
    reason: "test",
    criteria,
    channel: { type: "rest-hook", endpoint, ...channel },
  };
}

export async function waitForStatus(
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
export async function turnOff(ctx: TestContext, id: string): Promise<void> {
  const current = (await fhirJson(ctx, "GET", `Subscription/${id}`)).body;
  await fhirJson(ctx, "PUT", `Subscription/${id}`, { ...current, status: "off" });
}

export function report(status: string, extra: any = {}): any {
  return { resourceType: "DiagnosticReport", status, code: { text: "CT chest AI" }, ...extra };
}

export async function deliveries(ctx: TestContext, subscriptionId: string): Promise<any[]> {
  return await ctx.services.db.query(
    `SELECT resource_id, resource_version, state, attempts, last_status, last_error, delivered_at
     FROM subscription_delivery WHERE subscription_id = $1 ORDER BY id`,
    [subscriptionId],
  );
}

/** Sets SUBSCRIPTION_ENDPOINTS of the running service (read on every write and delivery). */
export function allowEndpoints(ctx: TestContext, list: string): void {
  ctx.services.fhir.context.subscriptionEndpoints = parseEndpointPatterns(list);
}
