/**
 * @module SMART App Launch's clients: confidential symmetric clients (`client_secret_basic` and
 * `client_secret_post`: the secret shown once, a wrong one refused), RFC 7662 introspection (who may
 * ask; revoked and expired tokens inactive), the validation of app registrations, the EHR launch
 * endpoint's callers and bodies, and the login rate limit on the sign-in form.
 */
import assert from "node:assert/strict";
import { issueAccessToken } from "../../auth/jwt.ts";
import { type AuthStack, form, startAuthStack } from "./_auth_harness.ts";
import { authorizeCode, authorizeUrl, exchange, Jar, pkce, registerApp, signIn } from "./_smart.ts";

let stack: AuthStack | undefined;
const s = async () => {
  if (stack) return stack;
  const st = await startAuthStack();
  const res = await st.call("/fhir/Patient/p1", {
    method: "PUT",
    token: st.tokens.admin,
    headers: { "Content-Type": "application/fhir+json" },
    body: JSON.stringify({ resourceType: "Patient", id: "p1" }),
  });
  assert.equal(res.status, 201, await res.text());
  return stack = st;
};

Deno.test("confidential symmetric clients: secret once, basic and post, wrong secret refused", async () => {
  const st = await s();
  const basic = await registerApp(st, "basic-app", {
    tokenEndpointAuthMethod: "client_secret_basic",
  });
  const secret = basic.clientSecret as string;
  assert.ok(secret && secret.length >= 40);
  const view = await (await st.call("/auth/clients/basic-app", { token: st.tokens.admin })).json();
  assert.equal(view.clientSecret, undefined, "the secret is shown once");
  assert.equal(view.tokenEndpointAuthMethod, "client_secret_basic");
  const jar = new Jar();
  const p = await pkce();
  const scope = "user/*.rs";
  const codeOf = async (clientId: string) =>
    (await authorizeCode(st, jar, { clientId, scope, challenge: p.challenge }, {
      username: "viewer",
    })).code;
  const auth = (id: string, pw: string) => ({ Authorization: `Basic ${btoa(`${id}:${pw}`)}` });
  const bad = await exchange(
    st,
    { code: await codeOf("basic-app"), code_verifier: p.verifier },
    auth("basic-app", "wrong"),
  );
  assert.equal(bad.status, 401);
  assert.equal(bad.body.error, "invalid_client");
  const ok = await exchange(
    st,
    { code: await codeOf("basic-app"), code_verifier: p.verifier },
    auth("basic-app", secret),
  );
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  // A basic client may not use client_secret_post, nor act as a public client.
  const asPublic = await exchange(st, {
    code: await codeOf("basic-app"),
    code_verifier: p.verifier,
    client_id: "basic-app",
  });
  assert.equal(asPublic.status, 401);
  const post = await registerApp(st, "post-app", { tokenEndpointAuthMethod: "client_secret_post" });
  const viaPost = await exchange(st, {
    code: await codeOf("post-app"),
    code_verifier: p.verifier,
    client_id: "post-app",
    client_secret: post.clientSecret as string,
  });
  assert.equal(viaPost.status, 200, JSON.stringify(viaPost.body));
  // Introspection, authenticated as the basic client.
  const introspect = (token: string, headers: Record<string, string> = auth("basic-app", secret)) =>
    st.call("/auth/introspect", {
      ...form({ token }),
      headers: { "Content-Type": "application/x-www-form-urlencoded", ...headers },
    });
  const active = await (await introspect(ok.body.access_token as string)).json();
  assert.equal(active.active, true);
  assert.equal(active.client_id, "basic-app");
  assert.equal(active.scope, scope);
  assert.equal((await introspect("not-a-token")).status, 200);
  assert.equal((await (await introspect("not-a-token")).json()).active, false);
  assert.equal((await introspect("x", {})).status, 401, "no client authentication");
  assert.equal((await introspect("x", auth("basic-app", "wrong"))).status, 401);
  const bySystem = await introspect(ok.body.access_token as string, {
    Authorization: `Bearer ${st.tokens.system}`,
  });
  assert.equal((await bySystem.json()).active, true);
  const byViewer = await introspect("x", { Authorization: `Bearer ${st.tokens.viewer}` });
  assert.equal(byViewer.status, 403);
  await byViewer.body?.cancel();
  // Revoked: revoking the access token ends its grant.
  await st.call("/auth/revoke", form({ token: ok.body.access_token as string }));
  assert.equal((await (await introspect(ok.body.access_token as string)).json()).active, false);
  // Expired: a token signed an hour ago.
  const { token: old } = await issueAccessToken(st.services.auth.ring, {
    sub: "x",
    kind: "client",
    scope: "system/*.rs",
  }, {
    issuer: st.services.auth.issuer,
    audience: st.services.auth.audience,
    ttlSeconds: 60,
    now: () => Date.now() - 3_600_000,
  });
  assert.equal((await (await introspect(old)).json()).active, false);
  const current = await (await introspect(st.tokens.system)).json();
  assert.equal(current.active, true);
});

Deno.test("client registration is validated", async () => {
  const st = await s();
  const put = (body: Record<string, unknown>) =>
    st.call("/auth/clients/bad-app", {
      method: "PUT",
      token: st.tokens.admin,
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ scope: "patient/*.rs", tokenEndpointAuthMethod: "none", ...body }),
    });
  for (
    const [body, why] of [
      [{ redirectUris: ["http://example.org/cb"] }, /https, or http on localhost/],
      [{ redirectUris: ["https://example.org/cb#x"] }, /fragment/],
      [{ redirectUris: ["/relative"] }, /absolute/],
      [{ redirectUris: [] }, /redirectUris is required/],
      [{ redirectUris: ["https://a.example/cb"], tokenEndpointAuthMethod: "magic" }, /one of/],
      [{ redirectUris: ["https://a.example/cb"], scope: "system/*.rs" }, /private_key_jwt/],
      [
        { redirectUris: ["https://a.example/cb"], launchUrl: "ftp://a.example/launch" },
        /launchUrl/,
      ],
    ] as [Record<string, unknown>, RegExp][]
  ) {
    const res = await put(body);
    const text = await res.text();
    assert.equal(res.status, 400, text);
    assert.match(text, why);
  }
  const ui = await st.call("/auth/clients/imaging-ai-ui", {
    method: "PUT",
    token: st.tokens.admin,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ scope: "user/*.rs", redirectUris: ["https://x.example/cb"] }),
  });
  assert.equal(ui.status, 400);
  await ui.body?.cancel();
});

Deno.test("EHR launch endpoint: only EHR callers; bad bodies are 400", async () => {
  const st = await s();
  const post = (token: string, body: unknown) =>
    st.call("/auth/launch", {
      method: "POST",
      token,
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  const viewer = await post(st.tokens.viewer, { patient: "p1" });
  assert.equal(viewer.status, 403);
  await viewer.body?.cancel();
  const system = await post(st.tokens.system, { patient: "p1", encounter: "e1" });
  assert.equal(system.status, 201);
  assert.ok((await system.json()).launch);
  for (const body of [{ patient: "Patient/none" }, { fhirContext: "x" }, { client_id: "nobody" }]) {
    const res = await post(st.tokens.clinician, body);
    assert.equal(res.status, 400, JSON.stringify(body));
    await res.body?.cancel();
  }
});

Deno.test("the sign-in form counts against the login rate limit", async () => {
  // The harness logs in three times from this address; two more attempts are allowed.
  const st = await startAuthStack({ LOGIN_RATE_PER_MINUTE: "5" });
  try {
    await registerApp(st, "rate-app", {});
    const jar = new Jar();
    const page = await jar.fetch(authorizeUrl(st, {
      clientId: "rate-app",
      scope: "user/*.rs",
      challenge: (await pkce()).challenge,
    }));
    const html = await page.text();
    const statuses = [];
    for (let i = 0; i < 3; i++) {
      const res = await signIn(st, jar, html, "viewer", "not the password");
      statuses.push(res.status);
      await res.body?.cancel();
    }
    assert.deepEqual(statuses, [401, 401, 429]);
  } finally {
    await st.close();
  }
});

Deno.test("the SMART clients suite's service stops", async () => {
  await stack?.close();
});
