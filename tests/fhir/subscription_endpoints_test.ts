// deno-lint-ignore-file no-explicit-any
/**
 * @module FHIR R4 Subscriptions and SUBSCRIPTION_ENDPOINTS, the endpoints this server may notify:
 * the patterns (URL prefixes at a segment boundary, host patterns, ports) and their parsing; an
 * endpoint outside the list is refused with 400 on create, update, patch and in a transaction;
 * tightened after a Subscription was made, the list fails its pending delivery with the reason,
 * nothing is sent and the Subscription goes to error.
 */
import assert from "node:assert/strict";
import { ConfigError, loadConfig } from "../../platform/config.ts";
import { endpointAllowed, parseEndpointPatterns } from "../../platform/endpoint_patterns.ts";
import { backendTest, fhirJson, uniq } from "../_harness.ts";
import { create } from "./_util.ts";
import {
  allowEndpoints,
  deliveries,
  fastRetries,
  receiver,
  report,
  subscription,
  turnOff,
  waitForStatus,
} from "./_subscription.ts";

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
      assert.equal(after.channel.endpoint, "https://ehr.example.org/fhir/hook");
      // No version ever held a refused endpoint (the server itself may have moved the status on
      // meanwhile, activating the Subscription: that version keeps the endpoint).
      const versions = (await fhirJson(ctx, "GET", `Subscription/${made[0]}/_history`)).body.entry;
      for (const v of versions) {
        assert.equal(v.resource.channel.endpoint, "https://ehr.example.org/fhir/hook");
      }

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
