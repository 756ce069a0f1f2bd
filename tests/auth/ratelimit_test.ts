/**
 * @module Rate limits: the sliding one-minute window per caller and route class (in memory, and in
 * Redis shared by two limiters as two API replicas would), Retry-After, callers and classes kept
 * apart, and over HTTP: a 429 OperationOutcome (code throttled) with Retry-After.
 */
import assert from "node:assert/strict";
import { createRateLimiter, RateLimited, routeClassOf } from "../../ratelimit/limits.ts";
import { claimRedisDb, missingServices } from "../sidecar/_process.ts";
import { startAuthStack } from "./_auth_harness.ts";

const log = () => {};

Deno.test("the window slides: the previous minute counts for the part of it still in the last 60 s", async () => {
  let t = 10 * 60_000; // the start of a minute
  const limiter = createRateLimiter({
    limits: { read: 10, write: 2, upload: 0 },
    log,
    now: () => t,
  });
  for (let i = 0; i < 10; i++) await limiter.check("user:a", "read");
  const over = await limiter.check("user:a", "read").catch((e) => e);
  assert.ok(over instanceof RateLimited);
  assert.equal(over.status, 429);
  assert.equal(over.headers["Retry-After"], "60");
  // Other callers and other classes are counted apart; 0 means unlimited.
  await limiter.check("user:b", "read");
  await limiter.check("user:a", "write");
  for (let i = 0; i < 100; i++) await limiter.check("user:a", "upload");
  // Half-way through the next minute, half of the previous 11 still count: 5.5 + new ones.
  t += 90_000;
  for (let i = 0; i < 4; i++) await limiter.check("user:a", "read");
  const again = await limiter.check("user:a", "read").catch((e) => e);
  assert.ok(again instanceof RateLimited, "5.5 + 5 > 10");
  assert.ok(Number(again.headers["Retry-After"]) <= 30);
  t += 60_000; // two minutes on: only the last minute's 5 remain, weighted
  await limiter.check("user:a", "read");
  await limiter.close();
});

Deno.test("route classes: reads, uploads (STOW-RS, files) and other writes", () => {
  assert.equal(routeClassOf("GET", "/fhir/Patient"), "read");
  assert.equal(routeClassOf("HEAD", "/dicomweb/studies"), "read");
  assert.equal(routeClassOf("POST", "/dicomweb/studies"), "upload");
  assert.equal(routeClassOf("PUT", "/uploads/results/x/y"), "upload");
  assert.equal(routeClassOf("POST", "/fhir"), "write");
  assert.equal(routeClassOf("DELETE", "/fhir/Patient/1"), "write");
});

const noRedis = missingServices(["REDIS_URL"]);
Deno.test({
  name: noRedis.length
    ? "two limiters on one Redis share the counts [skipped, REDIS_URL not set]"
    : "two limiters on one Redis share the counts (two API replicas)",
  ignore: noRedis.length > 0,
  fn: async () => {
    const redis = await claimRedisDb(Deno.env.get("REDIS_URL")!);
    const limits = { read: 6, write: 1, upload: 1 };
    const a = createRateLimiter({ limits, redisUrl: redis.url, prefix: "rl-test", log });
    const b = createRateLimiter({ limits, redisUrl: redis.url, prefix: "rl-test", log });
    try {
      for (let i = 0; i < 3; i++) {
        await a.check("client:x", "read");
        await b.check("client:x", "read");
      }
      await assert.rejects(() => a.check("client:x", "read"), RateLimited);
      await assert.rejects(() => b.check("client:x", "read"), RateLimited);
      await b.check("client:y", "read");
    } finally {
      await a.close();
      await b.close();
      await redis.release();
    }
  },
});

Deno.test("Redis down: requests are let through, not refused", async () => {
  const limiter = createRateLimiter({
    limits: { read: 1, write: 1, upload: 1 },
    redisUrl: "redis://127.0.0.1:1",
    log,
  });
  for (let i = 0; i < 3; i++) await limiter.check("user:a", "read");
  await limiter.close();
});

Deno.test("over HTTP: 429, Retry-After and an OperationOutcome; others unaffected", async () => {
  const st = await startAuthStack({ RATE_LIMIT_READ_PER_MINUTE: "5" });
  try {
    for (let i = 0; i < 5; i++) {
      const res = await st.call("/fhir/Patient", { token: st.tokens.viewer });
      assert.equal(res.status, 200);
      await res.body?.cancel();
    }
    const limited = await st.call("/fhir/Patient", { token: st.tokens.viewer });
    const body = await limited.json();
    assert.equal(limited.status, 429);
    assert.ok(Number(limited.headers.get("retry-after")) >= 1);
    assert.equal(body.resourceType, "OperationOutcome");
    assert.equal(body.issue[0].code, "throttled");
    const other = await st.call("/fhir/Patient", { token: st.tokens.clinician });
    assert.equal(other.status, 200);
    await other.body?.cancel();
  } finally {
    await st.close();
  }
});

Deno.test({
  name: noRedis.length
    ? "password logins per address are counted across replicas [skipped, REDIS_URL not set]"
    : "password logins per address are counted across replicas (two stacks on one Redis)",
  ignore: noRedis.length > 0,
  fn: async () => {
    const redis = await claimRedisDb(Deno.env.get("REDIS_URL")!);
    const env = {
      REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: `login-${crypto.randomUUID().slice(0, 8)}`,
      LOGIN_RATE_PER_MINUTE: "20",
    };
    // Each stack logs its own users in at start; then 20 a minute between them.
    const [a, b] = [await startAuthStack(env), await startAuthStack(env)];
    try {
      const attempt = async (st: typeof a) => {
        const res = await st.call("/auth/token", {
          method: "POST",
          headers: { "Content-Type": "application/x-www-form-urlencoded" },
          body: "grant_type=password&username=nobody&password=not-the-password",
        });
        await res.body?.cancel();
        return res.status;
      };
      const statuses: number[] = [];
      for (let i = 0; i < 20; i++) statuses.push(await attempt(i % 2 ? a : b));
      assert.ok(statuses.includes(429), `one replica's logins count on the other: ${statuses}`);
      const refused = await attempt(a);
      assert.equal(refused, 429);
    } finally {
      await a.close();
      await b.close();
      await redis.release();
    }
  },
});
