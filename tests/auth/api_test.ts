/**
 * @module Authentication over HTTP with AUTH=on: the token endpoint's grants and their failures,
 * refresh-token rotation with reuse detection and revocation, Backend Services assertions,
 * bearer tokens the API refuses (each a 401 with WWW-Authenticate and an OperationOutcome), the
 * admin API's rules, discovery documents, and hostile login input.
 */
import assert from "node:assert/strict";
import * as jose from "jose";
import { issueAccessToken } from "../../auth/jwt.ts";
import { createKeyRing, memorySigningKeyRepo } from "../../auth/keys.ts";
import {
  ADMIN_PASSWORD,
  ASSERTION_TYPE,
  type AuthStack,
  form,
  PASSWORD,
  startAuthStack,
} from "./_auth_harness.ts";

let stack: AuthStack | undefined;
const s = async () => stack ??= await startAuthStack();

async function json(res: Response) {
  const text = await res.text();
  return text ? JSON.parse(text) : undefined;
}

/** A 401 from a resource route: challenge header, OperationOutcome, code login. */
async function assert401(res: Response, reason: RegExp) {
  const body = await json(res);
  assert.equal(res.status, 401, JSON.stringify(body));
  assert.match(res.headers.get("www-authenticate") ?? "", /^Bearer realm="imaging-ai"/);
  assert.equal(body.resourceType, "OperationOutcome");
  assert.equal(body.issue[0].code, "login");
  assert.match(body.issue[0].diagnostics, reason);
}

Deno.test("password grant: a token for the role's scopes; wrong passwords and unknown users look the same", async () => {
  const st = await s();
  const ok = await st.login("viewer", PASSWORD);
  const body = await json(ok);
  assert.equal(ok.status, 200);
  assert.equal(ok.headers.get("cache-control"), "no-store");
  assert.equal(body.token_type, "Bearer");
  assert.equal(body.expires_in, 900);
  assert.equal(body.scope, "user/*.rs openid fhirUser offline_access");
  assert.ok(body.refresh_token, "offline_access gives a refresh token");
  const [header] = body.access_token.split(".");
  const h = JSON.parse(atob(header.replace(/-/g, "+").replace(/_/g, "/")));
  assert.equal(h.alg, "ES256");
  assert.ok(h.kid);
  const me = await json(await st.call("/auth/me", { token: body.access_token }));
  assert.deepEqual([me.kind, me.name, me.role], ["user", "viewer", "viewer"]);

  // Asking for less: only what the role allows is granted; asking for more than it allows: refused.
  const narrow = await json(await st.login("clinician", PASSWORD, "user/Observation.rs"));
  assert.equal(narrow.scope, "user/Observation.rs");
  assert.equal(narrow.refresh_token, undefined, "no offline_access, no refresh token");
  const wider = await st.login("viewer", PASSWORD, "user/Observation.cruds");
  assert.equal(wider.status, 400);
  assert.equal((await json(wider)).error, "invalid_scope");

  const wrong = await json(await st.login("viewer", "not the password"));
  const unknown = await json(await st.login("nobody", "not the password"));
  assert.deepEqual(wrong, unknown);
  assert.equal(wrong.error, "invalid_grant");
  const missing = await st.call("/auth/token", form({ grant_type: "password" }));
  assert.equal((await json(missing)).error, "invalid_request");
  const badType = await st.call("/auth/token", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ grant_type: "password" }),
  });
  assert.equal(badType.status, 400);
  assert.equal((await json(badType)).error, "invalid_request");
  const grant = await st.call("/auth/token", form({ grant_type: "implicit" }));
  assert.equal((await json(grant)).error, "unsupported_grant_type");
  // authorization_code is supported (smart_launch_test.ts): without a client it is invalid_client.
  const code = await st.call("/auth/token", form({ grant_type: "authorization_code" }));
  assert.equal(code.status, 401);
  assert.equal((await json(code)).error, "invalid_client");
});

Deno.test("SQL metacharacters and huge values in login fields: refused, no effect, no 5xx", async () => {
  const st = await s();
  const hostile = [
    "' OR '1'='1",
    "admin'--",
    'admin"; DROP TABLE auth_user; --',
    "\\' OR 1=1; --",
    "%27%20OR%201%3D1",
    "x".repeat(100_000),
    "admin\u0000",
  ];
  // Hostile passwords go to an account of their own (it will lock; that is expected).
  const created = await st.call("/auth/users", {
    method: "POST",
    token: st.tokens.admin,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: "target", password: PASSWORD, role: "viewer" }),
  });
  assert.equal(created.status, 201, await created.text());
  for (const value of hostile) {
    for (const [username, password] of [[value, "x"], ["target", value]]) {
      const res = await st.login(username, password);
      const body = await json(res);
      const what = `${username.slice(0, 20)} / ${password.slice(0, 20)}`;
      assert.equal(res.status, 400, what);
      // A body over 64 KiB is refused before it is read as a login.
      const expected = value.length > 60_000 ? "invalid_request" : "invalid_grant";
      assert.equal(body.error, expected, what);
    }
  }
  // The accounts are still there and still work.
  assert.equal((await st.login("admin", ADMIN_PASSWORD)).status, 200);
  const users = await json(await st.call("/auth/users", { token: st.tokens.admin }));
  assert.deepEqual(users.map((u: { username: string }) => u.username).sort(), [
    "admin",
    "clinician",
    "target",
    "viewer",
  ]);
  const target = users.find((u: { username: string }) => u.username === "target");
  assert.ok(target.lockedUntil, "the hostile attempts locked the account they aimed at");
});

Deno.test("refresh tokens rotate on use; reusing an old one revokes the whole family", async () => {
  const st = await s();
  const first = await json(await st.login("clinician", PASSWORD));
  const refresh = (token: string, scope?: string) =>
    st.call(
      "/auth/token",
      form({ grant_type: "refresh_token", refresh_token: token, ...(scope ? { scope } : {}) }),
    );
  const second = await json(await refresh(first.refresh_token));
  assert.ok(second.access_token && second.refresh_token);
  assert.notEqual(second.refresh_token, first.refresh_token);
  // Narrowing on refresh is allowed; the next refresh keeps the narrower scope.
  const third = await json(await refresh(second.refresh_token, "user/Observation.rs"));
  assert.equal(third.scope, "user/Observation.rs");
  const wider = await refresh(third.refresh_token, "user/*.cruds");
  assert.equal((await json(wider)).error, "invalid_scope");

  // Replaying the first token: refused, and every token of the family with it.
  const replay = await json(await refresh(first.refresh_token));
  assert.equal(replay.error, "invalid_grant");
  assert.match(replay.error_description, /already used/);
  const after = await json(await refresh(third.refresh_token));
  assert.equal(after.error, "invalid_grant");
  assert.match(after.error_description, /revoked/);
  assert.equal((await json(await refresh("made-up"))).error, "invalid_grant");
});

Deno.test("revocation (RFC 7009) ends a refresh token; a new password ends them all", async () => {
  const st = await s();
  const a = await json(await st.login("viewer", PASSWORD));
  const revoked = await st.call("/auth/revoke", form({ token: a.refresh_token }));
  assert.equal(revoked.status, 200);
  await revoked.body?.cancel();
  const use = await st.call(
    "/auth/token",
    form({ grant_type: "refresh_token", refresh_token: a.refresh_token }),
  );
  assert.match((await json(use)).error_description, /revoked/);
  assert.equal((await st.call("/auth/revoke", form({ token: "unknown" }))).status, 200);

  const b = await json(await st.login("viewer", PASSWORD));
  const users = await json(await st.call("/auth/users", { token: st.tokens.admin }));
  const viewer = users.find((u: { username: string }) => u.username === "viewer");
  const changed = await st.call(`/auth/users/${viewer.id}`, {
    method: "PATCH",
    token: st.tokens.admin,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ password: PASSWORD }),
  });
  assert.equal(changed.status, 200, await changed.text());
  const stale = await st.call(
    "/auth/token",
    form({ grant_type: "refresh_token", refresh_token: b.refresh_token }),
  );
  assert.equal((await json(stale)).error, "invalid_grant");
});

Deno.test("bearer tokens the API refuses: 401, WWW-Authenticate, OperationOutcome", async () => {
  const st = await s();
  const ring = st.services.auth.ring;
  const issuer = st.services.config.auth.issuer;
  const audience = st.services.auth.audience;
  const claims = { sub: "x", kind: "client" as const, scope: "system/*.cruds" };
  const make = (o: { issuer?: string; audience?: string; now?: () => number; ttl?: number }) =>
    issueAccessToken(o.issuer === "other-ring" ? otherRing : ring, claims, {
      issuer: o.issuer && o.issuer !== "other-ring" ? o.issuer : issuer,
      audience: o.audience ?? audience,
      ttlSeconds: o.ttl ?? 300,
      now: o.now,
    });
  const otherRing = createKeyRing(memorySigningKeyRepo());
  const read = (token: string) => st.call("/fhir/Patient", { token });

  const good = (await make({})).token;
  assert.equal((await read(good)).status, 200);
  await assert401(await st.call("/fhir/Patient"), /bearer token is required/);
  await assert401(
    await st.call("/fhir/Patient", { headers: { Authorization: "Basic YTpi" } }),
    /not a Bearer token/,
  );
  const expired = (await make({ now: () => Date.now() - 3_600_000 })).token;
  await assert401(await read(expired), /expired|exp/);
  const future = (await make({ now: () => Date.now() + 3_600_000 })).token;
  await assert401(await read(future), /not yet valid|nbf|iat/);
  await assert401(await read((await make({ issuer: "https://evil.example" })).token), /iss/);
  await assert401(await read((await make({ audience: "https://other/fhir" })).token), /aud/);
  await assert401(await read((await make({ issuer: "other-ring" })).token), /kid|key/);
  // alg none: the same claims, unsigned.
  const [, payload] = good.split(".");
  const none = `${
    btoa(JSON.stringify({ alg: "none", typ: "at+jwt" })).replace(/=+$/, "")
  }.${payload}.`;
  await assert401(await read(none), /alg|none|signature/i);
  // HS256 with the published public key as the HMAC secret.
  const jwk = (await ring.jwks()).keys[0] as JsonWebKey & { kid?: string };
  const hs = await new jose.SignJWT(JSON.parse(atob(payload.replace(/-/g, "+").replace(/_/g, "/"))))
    .setProtectedHeader({ alg: "HS256", kid: jwk.kid, typ: "at+jwt" })
    .sign(new TextEncoder().encode(JSON.stringify(jwk)));
  await assert401(await read(hs), /alg|HS256/i);
  // A tampered payload keeps the old signature.
  const [h, p, sig] = good.split(".");
  const body = JSON.parse(atob(p.replace(/-/g, "+").replace(/_/g, "/")));
  const forged = btoa(JSON.stringify({ ...body, sub: "admin" })).replace(/=+$/, "")
    .replace(/\+/g, "-").replace(/\//g, "_");
  await assert401(await read(`${h}.${forged}.${sig}`), /signature/i);
  await assert401(await read("garbage"), /.+/);
});

Deno.test("Backend Services: scopes granted ⊆ registered; assertions refused for each flaw", async () => {
  const st = await s();
  const key = st.clientKeys.narrow;
  const ok = await json(await st.clientToken("narrow", key, "system/Patient.read"));
  assert.equal(ok.scope, "system/Patient.read");
  assert.equal(ok.refresh_token, undefined);
  const more = await json(await st.clientToken("narrow", key, "system/Observation.rs"));
  assert.equal(more.error, "invalid_scope");

  const request = async (assertion: string, extra: Record<string, string> = {}) =>
    await json(
      await st.call(
        "/auth/token",
        form({
          grant_type: "client_credentials",
          scope: "system/Patient.rs",
          client_assertion_type: ASSERTION_TYPE,
          client_assertion: assertion,
          ...extra,
        }),
      ),
    );
  const now = Math.floor(Date.now() / 1000);
  const jti = crypto.randomUUID();
  assert.ok((await request(await st.assertion("narrow", key, { jti }))).access_token);
  const replay = await request(await st.assertion("narrow", key, { jti }));
  assert.equal(replay.error, "invalid_client");
  assert.match(replay.error_description, /jti|replay|used/i);
  const flaws: [string, Promise<string>][] = [
    ["wrong aud", st.assertion("narrow", key, { aud: "https://elsewhere/token" })],
    ["exp too far", st.assertion("narrow", key, { exp: now + 3600 })],
    ["expired", st.assertion("narrow", key, { exp: now - 10 })],
    ["iss ≠ sub", st.assertion("narrow", key, { sub: "system" })],
    ["unknown client", st.assertion("nobody", key)],
    ["another client's key", st.assertion("system", key, {}, { kid: "system-key" })],
    ["unknown kid", st.assertion("narrow", key, {}, { kid: "other" })],
  ];
  for (const [what, assertion] of flaws) {
    const body = await request(await assertion);
    assert.equal(body.error, "invalid_client", `${what}: ${JSON.stringify(body)}`);
  }
  const noType = await request(await st.assertion("narrow", key), {
    client_assertion_type: "something-else",
  });
  assert.equal(noType.error, "invalid_client");
});

Deno.test("admin API: accounts and clients validated; the last admin stays; non-admins get 403", async () => {
  const st = await s();
  const admin = st.tokens.admin;
  const post = (body: unknown) =>
    st.call("/auth/users", {
      method: "POST",
      token: admin,
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  for (
    const bad of [
      { username: "x", password: PASSWORD },
      { username: "short-pw", password: "short" },
      { username: "role", password: PASSWORD, role: "root" },
      { username: "viewer", password: PASSWORD },
      { username: "fhiruser", password: PASSWORD, fhirUser: "Observation/1" },
    ]
  ) {
    const res = await post(bad);
    const body = await json(res);
    assert.equal(res.status, 400, JSON.stringify(bad));
    assert.equal(body.resourceType, "OperationOutcome");
  }
  const created = await json(
    await post({ username: "Dr.Who", password: PASSWORD, role: "clinician" }),
  );
  assert.equal(created.username, "dr.who");
  assert.equal("passwordHash" in created, false);
  const users = await json(await st.call("/auth/users", { token: admin }));
  const adminUser = users.find((u: { role: string }) => u.role === "admin");
  const demote = await st.call(`/auth/users/${adminUser.id}`, {
    method: "PATCH",
    token: admin,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ role: "viewer" }),
  });
  assert.equal(demote.status, 400);
  assert.match((await json(demote)).issue[0].diagnostics, /last enabled admin/);
  const del = await st.call(`/auth/users/${created.id}`, { method: "DELETE", token: admin });
  assert.equal(del.status, 204);

  const putClient = (id: string, body: unknown) =>
    st.call(`/auth/clients/${id}`, {
      method: "PUT",
      token: admin,
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  const { privateKey } = await jose.generateKeyPair("ES384", { extractable: true });
  const priv = await jose.exportJWK(privateKey);
  assert.equal(
    (await putClient("leaky", { jwks: { keys: [priv] }, scope: "system/*.rs" })).status,
    400,
  );
  assert.equal(
    (await putClient("userish", { jwksUri: "https://x/jwks", scope: "user/*.rs" })).status,
    400,
  );
  assert.equal((await putClient("nokeys", { scope: "system/*.rs" })).status, 400);
  const listed = await json(await st.call("/auth/clients", { token: admin }));
  assert.deepEqual(listed.map((c: { clientId: string }) => c.clientId).sort(), [
    "narrow",
    "system",
  ]);
});

Deno.test("login attempts: an account locks after LOGIN_MAX_FAILURES; an address is limited per minute", async () => {
  const st = await startAuthStack({ LOGIN_MAX_FAILURES: "3", LOGIN_RATE_PER_MINUTE: "12" });
  try {
    for (let i = 0; i < 3; i++) await (await st.login("viewer", "wrong password")).body?.cancel();
    const locked = await json(await st.login("viewer", PASSWORD));
    assert.equal(locked.error, "invalid_grant");
    assert.match(locked.error_description, /locked/);
    // 3 (setup) + 3 + 1 so far; 5 more reach the limit of 12; the 13th is refused.
    for (let i = 0; i < 5; i++) await (await st.login("nobody", "x")).body?.cancel();
    const limited = await st.login("admin", ADMIN_PASSWORD);
    assert.equal(limited.status, 429);
    assert.ok(Number(limited.headers.get("retry-after")) >= 1);
    await limited.body?.cancel();
  } finally {
    await st.close();
  }
});

Deno.test("discovery: JWKS (public keys only), SMART configuration, CapabilityStatement security", async () => {
  const st = await s();
  const jwks = await json(await st.call("/.well-known/jwks.json"));
  // The access tokens' ES256 key and the ID tokens' RS256 key, public members only.
  assert.deepEqual(jwks.keys.map((k: { alg: string }) => k.alg).sort(), ["ES256", "RS256"]);
  for (const k of jwks.keys) {
    assert.equal(k.kty, k.alg === "ES256" ? "EC" : "RSA");
    for (const secret of ["d", "p", "q", "dp", "dq", "qi"]) assert.equal(secret in k, false);
  }
  const smart = await json(await st.call("/fhir/.well-known/smart-configuration"));
  assert.equal(smart.token_endpoint, `${st.origin}/auth/token`);
  assert.deepEqual(smart.token_endpoint_auth_signing_alg_values_supported, ["RS384", "ES384"]);
  assert.ok(smart.capabilities.includes("client-confidential-asymmetric"));
  assert.ok(smart.capabilities.includes("permission-v2"));
  const cs = await json(await st.call("/fhir/metadata"));
  const security = cs.rest[0].security;
  assert.equal(security.service[0].coding[0].code, "SMART-on-FHIR");
  const uris = security.extension[0].extension;
  assert.deepEqual(uris.map((u: { url: string }) => u.url), [
    "token",
    "authorize",
    "revoke",
    "introspect",
  ]);
  // A key rotation keeps tokens signed with the old key valid, and publishes both keys.
  const before = st.tokens.viewer;
  await st.services.auth.ring.rotate();
  assert.equal((await st.call("/fhir/Patient", { token: before })).status, 200);
  const after = (await json(await st.call("/.well-known/jwks.json"))).keys;
  assert.equal(after.filter((k: { alg: string }) => k.alg === "ES256").length, 2);
});

Deno.test("CORS for configured origins only; security headers on every answer", async () => {
  const st = await startAuthStack({ CORS_ORIGINS: "https://viewer.example.org" });
  try {
    const pre = await st.call("/fhir/Patient", {
      method: "OPTIONS",
      headers: {
        Origin: "https://viewer.example.org",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
      },
    });
    await pre.body?.cancel();
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get("access-control-allow-origin"), "https://viewer.example.org");
    assert.match(pre.headers.get("access-control-allow-headers") ?? "", /Authorization/i);
    const get = await st.call("/fhir/Patient", {
      token: st.tokens.viewer,
      headers: { Origin: "https://viewer.example.org" },
    });
    await get.body?.cancel();
    assert.equal(get.headers.get("access-control-allow-origin"), "https://viewer.example.org");
    assert.match(get.headers.get("access-control-expose-headers") ?? "", /ETag/);
    const other = await st.call("/fhir/metadata", { headers: { Origin: "https://evil.example" } });
    await other.body?.cancel();
    assert.equal(other.headers.get("access-control-allow-origin"), null);
    for (const res of [get, other]) {
      assert.equal(res.headers.get("x-content-type-options"), "nosniff");
      assert.equal(res.headers.get("x-frame-options"), "DENY");
      assert.equal(res.headers.get("referrer-policy"), "no-referrer");
    }
  } finally {
    await st.close();
  }
  // Without CORS_ORIGINS a preflight is an unauthenticated request like any other.
  const st2 = await s();
  const pre = await st2.call("/dicomweb/studies", {
    method: "OPTIONS",
    headers: { Origin: "https://viewer.example.org", "Access-Control-Request-Method": "GET" },
  });
  await pre.body?.cancel();
  assert.equal(pre.status, 401);
  assert.equal(pre.headers.get("access-control-allow-origin"), null);
});

Deno.test("request statistics for admins and Prometheus metrics (admins, or the scrape token)", async () => {
  const st = await startAuthStack({ METRICS_TOKEN: "scrape-secret-0123456789" });
  try {
    for (let i = 0; i < 3; i++) {
      await (await st.call(`/fhir/Patient/p${i}`, { token: st.tokens.viewer })).body?.cancel();
    }
    await (await st.call("/fhir/Patient")).body?.cancel(); // 401
    const stats = await (await st.call("/admin/stats", { token: st.tokens.admin })).json();
    const read = stats.windows.hour.routes["GET /fhir/Patient/{id}"];
    assert.equal(read.count, 3);
    assert.equal(read.clientErrors, 3, "three 404s");
    assert.ok(read.p50 > 0 && read.p95 >= read.p50 && read.p99 >= read.p95);
    const search = stats.windows.hour.routes["GET /fhir/Patient"];
    assert.ok(search.clientErrors >= 1, "the 401 is counted");
    assert.ok(stats.windows.day.overall.count >= stats.windows.hour.overall.count);
    const scraped = await st.call("/metrics", {
      headers: { Authorization: "Bearer scrape-secret-0123456789" },
    });
    const text = await scraped.text();
    assert.equal(scraped.status, 200);
    assert.match(scraped.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    assert.match(
      text,
      /http_requests_total\{route="\/fhir\/Patient\/\{id\}",method="GET",status_class="4xx"\} 3/,
    );
    const wrong = await st.call("/metrics", { headers: { Authorization: "Bearer nope" } });
    assert.equal(wrong.status, 401);
    await wrong.body?.cancel();
    const viewer = await st.call("/metrics", { token: st.tokens.viewer });
    assert.equal(viewer.status, 403);
    await viewer.body?.cancel();
  } finally {
    await st.close();
  }
});

Deno.test("the auth suite's service stops", async () => {
  await stack?.close();
});
