/**
 * @module Driving SMART App Launch without a browser: apps registered through the admin API, PKCE
 * pairs, a cookie jar, and the sign-in and consent forms of `/auth/authorize` submitted as a
 * browser would (redirects followed by hand, so each answer can be looked at).
 */
import assert from "node:assert/strict";
import { type AuthStack, form, PASSWORD } from "./_auth_harness.ts";
import { formFields, Jar } from "../../dicom/synth/sign_in.ts";

// The cookie jar and PKCE of the command-line sign-in (the same flow, outside the tests).
export { Jar, pkce } from "../../dicom/synth/sign_in.ts";

export const APP_REDIRECT = "http://localhost:9999/app/callback";

/** Registers an app client; answers the admin API's body (with `clientSecret` once). */
export async function registerApp(
  st: AuthStack,
  clientId: string,
  body: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const res = await st.call(`/auth/clients/${clientId}`, {
    method: "PUT",
    token: st.tokens.admin,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({
      name: `App ${clientId}`,
      redirectUris: [APP_REDIRECT],
      tokenEndpointAuthMethod: "none",
      scope: "launch launch/patient launch/encounter openid fhirUser profile " +
        "patient/*.rs user/*.rs offline_access online_access",
      ...body,
    }),
  });
  const json = await res.json();
  assert.ok(res.status === 201 || res.status === 200, JSON.stringify(json));
  return json;
}

/** The hidden fields of a page's forms. */
export function fields(html: string): { requestId: string; csrf: string } {
  const found = formFields(html);
  assert.ok(found, `no request id / csrf in ${html.slice(0, 300)}`);
  return found;
}

export interface AuthorizeRequest {
  clientId: string;
  scope: string;
  challenge: string;
  redirectUri?: string;
  state?: string;
  launch?: string;
  nonce?: string;
  aud?: string;
  method?: string;
}

export function authorizeUrl(st: AuthStack, r: AuthorizeRequest): string {
  const q = new URLSearchParams({
    response_type: "code",
    client_id: r.clientId,
    redirect_uri: r.redirectUri ?? APP_REDIRECT,
    scope: r.scope,
    state: r.state ?? "st-1",
    code_challenge: r.challenge,
    code_challenge_method: r.method ?? "S256",
    aud: r.aud ?? `${st.origin}/fhir`,
  });
  if (r.launch) q.set("launch", r.launch);
  if (r.nonce) q.set("nonce", r.nonce);
  return `${st.origin}/auth/authorize?${q}`;
}

/** Signs in on the sign-in page of `page` (an answer to /auth/authorize); answers the next page. */
export async function signIn(
  st: AuthStack,
  jar: Jar,
  html: string,
  username: string,
  password = PASSWORD,
): Promise<Response> {
  const { requestId, csrf } = fields(html);
  const res = await jar.fetch(`${st.origin}/auth/authorize`, {
    ...form({ request_id: requestId, csrf, action: "login", username, password }),
  });
  if (res.status !== 303) return res;
  await res.body?.cancel();
  return await jar.fetch(new URL(res.headers.get("location")!, st.origin).toString());
}

/**
 * The whole flow for `username`: authorize, sign in (unless the jar's session is still valid),
 * approve with the offered scopes (or `scopes`), and the code from the redirect.
 */
export async function authorizeCode(
  st: AuthStack,
  jar: Jar,
  r: AuthorizeRequest,
  who: { username: string; password?: string; scopes?: string[]; patient?: string },
): Promise<{ code: string; location: URL; consent: string }> {
  let page = await jar.fetch(authorizeUrl(st, r));
  let html = await page.text();
  assert.equal(page.status, 200, html.slice(0, 400));
  if (html.includes('value="login"')) {
    page = await signIn(st, jar, html, who.username, who.password);
    html = await page.text();
    assert.equal(page.status, 200, html.slice(0, 400));
  }
  const { requestId, csrf } = fields(html);
  const offered = [...html.matchAll(/name="scope" value="([^"]+)"/g)].map((m) => m[1]);
  const body = new URLSearchParams({ request_id: requestId, csrf, action: "approve" });
  for (const s of who.scopes ?? offered) body.append("scope", s.replaceAll("&amp;", "&"));
  if (who.patient) body.set("patient", who.patient);
  const res = await jar.fetch(`${st.origin}/auth/authorize`, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: body.toString(),
  });
  const text = await res.text();
  assert.equal(res.status, 303, text.slice(0, 400));
  const location = new URL(res.headers.get("location")!);
  const code = location.searchParams.get("code");
  assert.ok(code, `no code in ${location}`);
  return { code, location, consent: html };
}

/** `POST /auth/token` for a code (a public client unless `init` says otherwise). */
export async function exchange(
  st: AuthStack,
  values: Record<string, string>,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const init = form({ grant_type: "authorization_code", redirect_uri: APP_REDIRECT, ...values });
  const res = await st.call("/auth/token", {
    ...init,
    headers: { ...(init.headers as Record<string, string>), ...headers },
  });
  return { status: res.status, body: await res.json() };
}
