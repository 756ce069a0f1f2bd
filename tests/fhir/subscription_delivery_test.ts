/**
 * @module FHIR R4 Subscriptions (rest-hook) end to end, what is notified: a real HTTP receiver,
 * Subscriptions and resources written over HTTP, notifications followed through the change feed.
 * One empty POST with the channel's headers per matching version (a PUT of the resource with a
 * payload), none for other versions or a deletion; chained and system|code criteria; bad
 * criteria, an unsupported type or channel, or an end in the past: error or off.
 */
import assert from "node:assert/strict";
import { backendTest, fhirJson, uniq } from "../_harness.ts";
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
    const badType = await create(ctx, subscription("Parameters?code=x", endpoint));
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
    assert.match(e2.error, /Parameters/);
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
