/**
 * @module SMART App Launch over HTTP without a browser (the browser runs are
 * `smart_browser_test.ts`, clients and introspection `smart_clients_test.ts`): discovery, the EHR
 * launch and the standalone launch through the sign-in and consent forms, the token response's
 * launch context and ID token, refresh and online_access, the password grant's setting, and the
 * refusals: redirect URI, unknown client, PKCE (plain, missing, wrong or short verifier), a reused
 * code (its tokens revoked), an expired code, scope escalation on refresh, a launch of another
 * app, deny, a missing CSRF token, another browser.
 */
import assert from "node:assert/strict";
import * as jose from "jose";
import { type AuthStack, form, PASSWORD, startAuthStack } from "./_auth_harness.ts";
import {
  APP_REDIRECT,
  authorizeCode,
  authorizeUrl,
  exchange,
  fields,
  Jar,
  pkce,
  registerApp,
  signIn,
} from "./_smart.ts";

let stack: AuthStack | undefined;
const s = async () => {
  if (stack) return stack;
  const st = await startAuthStack();
  const admin = { token: st.tokens.admin, headers: { "Content-Type": "application/fhir+json" } };
  for (const [id, family] of [["p1", "Lovelace"], ["p2", "Hopper"]]) {
    const res = await st.call(`/fhir/Patient/${id}`, {
      ...admin,
      method: "PUT",
      body: JSON.stringify({
        resourceType: "Patient",
        id,
        name: [{ family, given: ["Ada"] }],
        birthDate: "1970-01-01",
      }),
    });
    assert.equal(res.status, 201, await res.text());
  }
  const study = await st.call("/fhir/ImagingStudy/s1", {
    ...admin,
    method: "PUT",
    body: JSON.stringify({
      resourceType: "ImagingStudy",
      id: "s1",
      status: "available",
      subject: { reference: "Patient/p1" },
    }),
  });
  assert.equal(study.status, 201, await study.text());
  // The clinician has a FHIR identity (fhirUser).
  const users = await (await st.call("/auth/users", { token: st.tokens.admin })).json();
  const clinician = users.find((u: { username: string }) => u.username === "clinician");
  await st.call(`/auth/users/${clinician.id}`, {
    method: "PATCH",
    token: st.tokens.admin,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ fhirUser: "Practitioner/dr1" }),
  });
  await registerApp(st, "viewer-app", {});
  await registerApp(st, "other-app", {});
  return stack = st;
};

async function launch(st: AuthStack, body: Record<string, unknown>): Promise<string> {
  const res = await st.call("/auth/launch", {
    method: "POST",
    token: st.tokens.clinician,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const json = await res.json();
  assert.equal(res.status, 201, JSON.stringify(json));
  return json.launch;
}

Deno.test("discovery: SMART configuration and OpenID configuration list what works", async () => {
  const st = await s();
  const smart = await (await st.call("/fhir/.well-known/smart-configuration")).json();
  assert.equal(smart.authorization_endpoint, `${st.origin}/auth/authorize`);
  assert.equal(smart.introspection_endpoint, `${st.origin}/auth/introspect`);
  assert.deepEqual(smart.code_challenge_methods_supported, ["S256"]);
  assert.deepEqual(smart.response_types_supported, ["code"]);
  for (const cap of ["launch-ehr", "launch-standalone", "client-public", "sso-openid-connect"]) {
    assert.ok(smart.capabilities.includes(cap), cap);
  }
  assert.ok(smart.grant_types_supported.includes("authorization_code"));
  const oidc = await st.call("/auth/.well-known/openid-configuration");
  assert.equal(oidc.status, 200);
  const doc = await oidc.json();
  assert.equal(doc.issuer, st.services.auth.issuer);
  assert.equal(`${doc.issuer}/.well-known/openid-configuration`, oidc.url);
  // OpenID Connect Discovery: RS256 MUST be among them (and is OIDC's default for clients).
  assert.deepEqual(doc.id_token_signing_alg_values_supported, ["RS256"]);
  const meta = await (await st.call("/fhir/metadata")).json();
  const uris = meta.rest[0].security.extension[0].extension as { url: string; valueUri: string }[];
  assert.ok(uris.some((e) => e.url === "authorize" && e.valueUri === smart.authorization_endpoint));
});

Deno.test("EHR launch: patient, encounter-free context, ImagingStudy in fhirContext, id_token, refresh", async () => {
  const st = await s();
  const { verifier, challenge } = await pkce();
  const id = await launch(st, {
    patient: "Patient/p1",
    imagingStudy: "s1",
    need_patient_banner: false,
    client_id: "viewer-app",
  });
  const jar = new Jar();
  const scope = "launch openid fhirUser patient/*.rs offline_access";
  const { code, location } = await authorizeCode(st, jar, {
    clientId: "viewer-app",
    scope,
    challenge,
    launch: id,
    nonce: "n-123",
    state: "xyz",
  }, { username: "clinician" });
  assert.equal(location.searchParams.get("state"), "xyz");
  assert.equal(location.searchParams.get("iss"), st.services.auth.issuer, "RFC 9207");
  assert.equal(`${location.origin}${location.pathname}`, APP_REDIRECT);
  const { status, body } = await exchange(st, {
    code,
    code_verifier: verifier,
    client_id: "viewer-app",
  });
  assert.equal(status, 200, JSON.stringify(body));
  assert.equal(body.patient, "p1");
  assert.deepEqual(body.fhirContext, [{ reference: "ImagingStudy/s1" }]);
  assert.equal(body.need_patient_banner, false);
  assert.equal(body.scope, scope);
  assert.ok(body.refresh_token);
  // The ID token: verified with the published JWKS.
  const jwks = jose.createRemoteJWKSet(new URL(`${st.origin}/.well-known/jwks.json`));
  const { payload, protectedHeader } = await jose.jwtVerify(body.id_token as string, jwks, {
    issuer: st.services.auth.issuer,
    audience: "viewer-app",
    algorithms: ["RS256"],
  });
  assert.equal(protectedHeader.alg, "RS256");
  assert.equal(payload.nonce, "n-123");
  assert.equal(payload.fhirUser, `${st.origin}/fhir/Practitioner/dr1`);
  assert.ok(typeof payload.auth_time === "number" && typeof payload.at_hash === "string");
  // The access token reaches the launch patient's compartment only.
  const token = body.access_token as string;
  assert.equal((await st.call("/fhir/Patient/p1", { token })).status, 200);
  const other = await st.call("/fhir/Patient/p2", { token });
  assert.ok(other.status === 404 || other.status === 403, String(other.status));
  assert.equal((await st.call("/fhir/ImagingStudy/s1", { token })).status, 200);
  // Refresh keeps the context; narrowing is allowed, widening is invalid_scope.
  const refreshed = await st.call(
    "/auth/token",
    form({
      grant_type: "refresh_token",
      refresh_token: body.refresh_token as string,
      client_id: "viewer-app",
      scope: "launch patient/Patient.rs offline_access",
    }),
  );
  const r = await refreshed.json();
  assert.equal(refreshed.status, 200, JSON.stringify(r));
  assert.equal(r.patient, "p1");
  assert.deepEqual(r.fhirContext, [{ reference: "ImagingStudy/s1" }]);
  assert.equal(r.scope, "launch patient/Patient.rs offline_access");
  const wider = await st.call(
    "/auth/token",
    form({
      grant_type: "refresh_token",
      refresh_token: r.refresh_token,
      scope: "launch patient/*.rs user/*.rs offline_access",
    }),
  );
  assert.equal(wider.status, 400);
  assert.equal((await wider.json()).error, "invalid_scope");
  // A second launch in the same browser does not ask for the password again.
  const again = await jar.fetch(
    authorizeUrl(st, { clientId: "viewer-app", scope, challenge, launch: id }),
  );
  const html = await again.text();
  assert.equal(again.status, 200);
  assert.ok(!html.includes('value="login"') && html.includes('value="approve"'), html);
});

Deno.test("standalone launch: the patient picker searches what the person may read", async () => {
  const st = await s();
  const { verifier, challenge } = await pkce();
  const jar = new Jar();
  const page = await jar.fetch(authorizeUrl(st, {
    clientId: "viewer-app",
    scope: "launch/patient openid fhirUser patient/*.rs",
    challenge,
  }));
  const consent = await signIn(st, jar, await page.text(), "viewer");
  const html = await consent.text();
  assert.ok(html.includes('name="patient_search"'), "a patient picker");
  const { requestId } = fields(html);
  const found = await jar.fetch(
    `${st.origin}/auth/authorize?request_id=${requestId}&patient_search=hopper`,
  );
  const list = await found.text();
  assert.ok(list.includes('value="p2"') && !list.includes('value="p1"'), list);
  // Approving without a patient asks for one; with one, the token carries it.
  const { code } = await authorizeCode(
    st,
    jar,
    { clientId: "viewer-app", scope: "launch/patient openid fhirUser patient/*.rs", challenge },
    { username: "viewer", patient: "p2" },
  );
  const { status, body } = await exchange(st, {
    code,
    code_verifier: verifier,
    client_id: "viewer-app",
  });
  assert.equal(status, 200, JSON.stringify(body));
  assert.equal(body.patient, "p2");
  assert.equal(body.refresh_token, undefined, "no offline/online access asked: no refresh token");
  assert.equal(
    (await st.call("/fhir/Patient/p2", { token: body.access_token as string })).status,
    200,
  );
});

Deno.test("authorize refusals: bad client or redirect URI on a page; the rest redirected with state", async () => {
  const st = await s();
  const { challenge } = await pkce();
  const jar = new Jar();
  const base = { clientId: "viewer-app", scope: "launch/patient patient/*.rs", challenge };
  const wrongRedirect = await jar.fetch(
    authorizeUrl(st, { ...base, redirectUri: "http://localhost:9999/evil" }),
  );
  assert.equal(wrongRedirect.status, 400);
  assert.equal(wrongRedirect.headers.get("location"), null);
  assert.match(await wrongRedirect.text(), /not a redirect URI of this app/);
  const unknown = await jar.fetch(authorizeUrl(st, { ...base, clientId: "nobody" }));
  assert.equal(unknown.status, 400);
  assert.match(await unknown.text(), /No app is registered/);
  const redirected = async (r: Parameters<typeof authorizeUrl>[1]) => {
    const res = await jar.fetch(authorizeUrl(st, r));
    await res.body?.cancel();
    assert.equal(res.status, 302);
    const to = new URL(res.headers.get("location")!);
    assert.equal(to.searchParams.get("state"), "st-1");
    return [to.searchParams.get("error"), to.searchParams.get("error_description")];
  };
  const [plain, why] = await redirected({ ...base, method: "plain" });
  assert.equal(plain, "invalid_request");
  assert.match(why!, /plain/);
  assert.equal((await redirected({ ...base, challenge: "" }))[0], "invalid_request");
  assert.equal(
    (await redirected({ ...base, aud: "https://elsewhere.example/fhir" }))[0],
    "invalid_request",
  );
  assert.equal((await redirected({ ...base, scope: "nothing-known" }))[0], "invalid_scope");
  // A launch made for another app.
  const id = await launch(st, { patient: "p1", client_id: "other-app" });
  const [err, desc] = await redirected({ ...base, scope: "launch patient/*.rs", launch: id });
  assert.equal(err, "invalid_request");
  assert.match(desc!, /another app/);
  assert.equal((await redirected({ ...base, scope: "launch patient/*.rs" }))[0], "invalid_request");
});

Deno.test("consent refusals: deny is access_denied; a form without its CSRF token is refused", async () => {
  const st = await s();
  const { challenge } = await pkce();
  const jar = new Jar();
  const page = await jar.fetch(authorizeUrl(st, {
    clientId: "viewer-app",
    scope: "user/*.rs openid",
    challenge,
    state: "deny-me",
  }));
  const consent = await (await signIn(st, jar, await page.text(), "viewer")).text();
  const { requestId, csrf } = fields(consent);
  const noCsrf = await jar.fetch(
    `${st.origin}/auth/authorize`,
    form({ request_id: requestId, action: "approve", scope: "user/*.rs" }),
  );
  assert.equal(noCsrf.status, 403);
  assert.match(await noCsrf.text(), /CSRF/);
  // Another browser (no cookies) cannot answer the request even with its token.
  const stranger = await fetch(`${st.origin}/auth/authorize`, {
    ...form({ request_id: requestId, csrf, action: "approve", scope: "user/*.rs" }),
    redirect: "manual",
  });
  assert.equal(stranger.status, 403);
  await stranger.body?.cancel();
  const deny = await jar.fetch(
    `${st.origin}/auth/authorize`,
    form({ request_id: requestId, csrf, action: "deny" }),
  );
  assert.equal(deny.status, 303);
  const to = new URL(deny.headers.get("location")!);
  assert.equal(to.searchParams.get("error"), "access_denied");
  assert.equal(to.searchParams.get("state"), "deny-me");
  assert.equal(to.searchParams.get("code"), null);
});

Deno.test("code refusals: verifier missing or wrong, reuse revokes, expiry, wrong redirect", async () => {
  const st = await s();
  const jar = new Jar();
  const scope = "user/*.rs openid offline_access";
  const codeFor = async (challenge: string) =>
    (await authorizeCode(st, jar, { clientId: "viewer-app", scope, challenge }, {
      username: "viewer",
    })).code;
  const p = await pkce();
  let code = await codeFor(p.challenge);
  const missing = await exchange(st, { code, client_id: "viewer-app" });
  assert.equal(missing.status, 400);
  assert.equal(missing.body.error, "invalid_request");
  code = await codeFor(p.challenge);
  const wrong = await exchange(st, {
    code,
    client_id: "viewer-app",
    code_verifier: (await pkce()).verifier,
  });
  assert.equal(wrong.body.error, "invalid_grant");
  const short = await exchange(st, {
    code: await codeFor(p.challenge),
    client_id: "viewer-app",
    code_verifier: "too-short",
  });
  assert.equal(short.body.error, "invalid_grant");
  code = await codeFor(p.challenge);
  const badRedirect = await exchange(st, {
    code,
    client_id: "viewer-app",
    code_verifier: p.verifier,
    redirect_uri: "http://localhost:9999/other",
  });
  assert.equal(badRedirect.body.error, "invalid_grant");
  const otherClient = await exchange(st, {
    code: await codeFor(p.challenge),
    client_id: "other-app",
    code_verifier: p.verifier,
  });
  assert.equal(otherClient.body.error, "invalid_grant");
  // Reuse: the second exchange fails and the first one's tokens stop working.
  code = await codeFor(p.challenge);
  const first = await exchange(st, { code, client_id: "viewer-app", code_verifier: p.verifier });
  assert.equal(first.status, 200, JSON.stringify(first.body));
  const token = first.body.access_token as string;
  assert.equal((await st.call("/fhir/Patient/p1", { token })).status, 200);
  const second = await exchange(st, { code, client_id: "viewer-app", code_verifier: p.verifier });
  assert.equal(second.body.error, "invalid_grant");
  assert.match(String(second.body.error_description), /already used/);
  assert.equal((await st.call("/fhir/Patient/p1", { token })).status, 401);
  const refresh = await st.call(
    "/auth/token",
    form({ grant_type: "refresh_token", refresh_token: first.body.refresh_token as string }),
  );
  assert.equal((await refresh.json()).error, "invalid_grant");
  // Expired (60 s): made old in the database.
  code = await codeFor(p.challenge);
  await st.services.db.query(`UPDATE auth_code SET expires_at = now() - interval '1 second'`);
  const expired = await exchange(st, { code, client_id: "viewer-app", code_verifier: p.verifier });
  assert.equal(expired.body.error, "invalid_grant");
  assert.match(String(expired.body.error_description), /expired/);
});

Deno.test("the password grant is off unless AUTH_PASSWORD_GRANT=on", async () => {
  const { loadConfig } = await import("../../platform/config.ts");
  assert.equal(loadConfig({}).auth.passwordGrant, false);
  assert.equal(loadConfig({ AUTH_PASSWORD_GRANT: "on" }).auth.passwordGrant, true);
  const st = await s();
  // This stack turned it on; the service refuses it when the setting is off.
  const { createAuthService } = await import("../../auth/service.ts");
  const off = createAuthService(st.services.db, loadConfig({ AUTH: "on" }));
  await assert.rejects(
    off.token(
      new URLSearchParams({ grant_type: "password", username: "admin", password: PASSWORD }),
      "1.2.3.4",
    ),
    /unsupported_grant_type/,
  );
});

const UI_SCOPE =
  "user/*.cruds patient/*.cruds launch/patient openid fhirUser profile online_access";

/** The web UI's sign-in for `username` in `jar`: no consent page, straight back with a code. */
async function uiSignIn(st: AuthStack, jar: Jar, username: string) {
  const p = await pkce();
  const uiRedirect = `${st.origin}/oauth-callback`;
  const page = await jar.fetch(authorizeUrl(st, {
    clientId: "imaging-ai-ui",
    redirectUri: uiRedirect,
    scope: UI_SCOPE,
    challenge: p.challenge,
  }));
  const back = await signIn(st, jar, await page.text(), username);
  assert.equal(back.status, 303, await back.text());
  const location = new URL(back.headers.get("location")!);
  assert.equal(`${location.origin}${location.pathname}`, uiRedirect);
  return await exchange(st, {
    code: location.searchParams.get("code")!,
    client_id: "imaging-ai-ui",
    code_verifier: p.verifier,
    redirect_uri: uiRedirect,
  });
}

Deno.test("the web UI's client: the account's own scopes; online_access ends with the browser session", async () => {
  const st = await s();
  const jar = new Jar();
  const { status, body } = await uiSignIn(st, jar, "viewer");
  assert.equal(status, 200, JSON.stringify(body));
  // Narrowed to the viewer's role (not refused); no patient/ scopes without a bound patient.
  assert.equal(body.scope, "user/*.rs openid fhirUser profile online_access");
  assert.equal(body.patient, undefined);
  const refresh = (token: string) =>
    st.call(
      "/auth/token",
      form({ grant_type: "refresh_token", refresh_token: token, client_id: "imaging-ai-ui" }),
    );
  const once = await refresh(body.refresh_token as string);
  const next = await once.json();
  assert.equal(once.status, 200, JSON.stringify(next));
  const out = await jar.fetch(`${st.origin}/auth/logout`, { method: "POST" });
  assert.equal(out.status, 204);
  assert.equal(jar.cookies.has("imaging_ai_session"), false);
  const after = await refresh(next.refresh_token);
  assert.equal(after.status, 400);
  assert.match((await after.json()).error_description, /browser session/);
  // An account bound to a patient gets that patient's compartment.
  const created = await st.call("/auth/users", {
    method: "POST",
    token: st.tokens.admin,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({
      username: "portal",
      password: PASSWORD,
      role: "viewer",
      patient: "Patient/p2",
    }),
  });
  assert.equal(created.status, 201, await created.text());
  const bound = await uiSignIn(st, new Jar(), "portal");
  assert.equal(bound.status, 200, JSON.stringify(bound.body));
  assert.equal(bound.body.patient, "p2");
  assert.equal(
    bound.body.scope,
    "patient/*.rs launch/patient openid fhirUser profile online_access",
  );
  const token = bound.body.access_token as string;
  assert.equal((await st.call("/fhir/Patient/p2", { token })).status, 200);
  const other = await st.call("/fhir/Patient/p1", { token });
  assert.ok(other.status === 404 || other.status === 403, String(other.status));
});

Deno.test("the SMART launch suite's service stops", async () => {
  await stack?.close();
});
