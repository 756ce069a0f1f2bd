/**
 * @module FHIR R4 Subscriptions and the outbound policy by default (OUTBOUND_PRIVATE_ADDRESSES=
 * refuse): a Subscription to a loopback, private, link-local or IPv6 loopback address or to
 * localhost is a 400 unless SUBSCRIPTION_ENDPOINTS names it; a name that resolves to 127.0.0.1,
 * or rebinds to it between the check and the connection, is refused: nothing is sent, the
 * delivery fails with the reason and the Subscription goes to error.
 */
import assert from "node:assert/strict";
import { backendTest, fhirJson, type TestContext, uniq } from "../_harness.ts";
import { create } from "./_util.ts";
import {
  allowEndpoints,
  deliveries,
  receiver,
  report,
  subscription,
  turnOff,
  waitForStatus,
} from "./_subscription.ts";

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
