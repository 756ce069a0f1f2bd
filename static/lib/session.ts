/**
 * @module The signed-in person: the UI is a public OAuth client (`imaging-ai-ui`) that signs in
 * with the authorization code flow and PKCE (S256): `login()` sends the browser to
 * `/auth/authorize` (the server's sign-in page; the server's browser session means a second
 * sign-in asks no password), `/oauth-callback` exchanges the code at `POST /auth/token`. Tokens
 * are renewed with the rotating refresh token (`online_access`: it lasts as long as the server's
 * browser session) a minute before they expire; who they are comes from `GET /auth/me`; logout
 * ends the server session (`POST /auth/logout`) and revokes the refresh token. Kept in
 * sessionStorage, so a reload stays signed in and closing the tab ends the session.
 */
import { computed, signal } from "@preact/signals";

export interface Tokens {
  access: string;
  refresh?: string;
  /** Epoch ms. */
  expiresAt: number;
}

export interface Me {
  sub: string;
  name: string | null;
  /** The account's display name ("Dr Reader"), when it has one. */
  displayName?: string | null;
  role: string | null;
  scope: string;
}

const KEY = "imaging-ai.session";
const PKCE_KEY = "imaging-ai.pkce";
export const CLIENT_ID = "imaging-ai-ui";
export const CALLBACK_PATH = "/oauth-callback";
// user/ for staff; patient/ and launch/patient for an account bound to one patient.
const SCOPE = "user/*.cruds patient/*.cruds launch/patient openid fhirUser profile online_access";

function load(): Tokens | null {
  try {
    const t = JSON.parse(sessionStorage.getItem(KEY) ?? "null");
    return t && typeof t.access === "string" ? t : null;
  } catch {
    return null;
  }
}

export const tokens = signal<Tokens | null>(load());
export const me = signal<Me | null>(null);
/** Set by `logout()`: the sign-in page then waits for a click instead of redirecting at once. */
export const signedOut = signal(false);
/** Whether the person may write (clinicians and admins; viewers read only). */
export const canWrite = computed(() =>
  me.value?.role === "clinician" || me.value?.role === "admin"
);
export const isAdmin = computed(() => me.value?.role === "admin");

let timer: number | undefined;

function store(t: Tokens | null) {
  tokens.value = t;
  if (t) sessionStorage.setItem(KEY, JSON.stringify(t));
  else sessionStorage.removeItem(KEY);
  clearTimeout(timer);
  if (t?.refresh) {
    const wait = Math.max(5_000, t.expiresAt - Date.now() - 60_000);
    timer = setTimeout(() => refresh(), wait);
  }
}

async function tokenRequest(form: Record<string, string>): Promise<Tokens> {
  const res = await fetch("/auth/token", {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(form).toString(),
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    const why = body.error_description ?? body.error ?? `HTTP ${res.status}`;
    throw new Error(res.status === 400 || res.status === 401 ? why : `Sign-in failed: ${why}`);
  }
  return {
    access: body.access_token,
    refresh: body.refresh_token,
    expiresAt: Date.now() + (Number(body.expires_in) || 900) * 1000,
  };
}

function randomText(bytes: number): string {
  return base64url(crypto.getRandomValues(new Uint8Array(bytes)));
}

function base64url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * Starts a sign-in: a PKCE verifier and a state kept in sessionStorage, then the browser goes to
 * the authorization endpoint; `returnTo` is where the UI goes once signed in.
 */
export async function login(returnTo = "/"): Promise<void> {
  const verifier = randomText(32);
  const state = randomText(16);
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  sessionStorage.setItem(PKCE_KEY, JSON.stringify({ verifier, state, returnTo }));
  const params = new URLSearchParams({
    response_type: "code",
    client_id: CLIENT_ID,
    redirect_uri: `${location.origin}${CALLBACK_PATH}`,
    scope: SCOPE,
    state,
    code_challenge: base64url(new Uint8Array(digest)),
    code_challenge_method: "S256",
  });
  location.assign(`/auth/authorize?${params}`);
}

/**
 * The end of a sign-in, on `/oauth-callback?code=…&state=…`: checks the state, exchanges the code
 * with the PKCE verifier, loads `me`; answers where to go next. Throws with the reason.
 */
export async function completeLogin(query: URLSearchParams): Promise<string> {
  const saved = JSON.parse(sessionStorage.getItem(PKCE_KEY) ?? "null");
  sessionStorage.removeItem(PKCE_KEY);
  const error = query.get("error");
  if (error) throw new Error(query.get("error_description") ?? error);
  const code = query.get("code");
  if (!saved || !code || query.get("state") !== saved.state) {
    throw new Error("This sign-in answer does not match a sign-in started here; try again");
  }
  store(
    await tokenRequest({
      grant_type: "authorization_code",
      code,
      redirect_uri: `${location.origin}${CALLBACK_PATH}`,
      client_id: CLIENT_ID,
      code_verifier: saved.verifier,
    }),
  );
  await loadMe();
  return typeof saved.returnTo === "string" && saved.returnTo.startsWith("/") &&
      !saved.returnTo.startsWith("//")
    ? saved.returnTo
    : "/";
}

let refreshing: Promise<boolean> | undefined;

/** Renews the access token with the refresh token (once at a time); false when it cannot. */
export function refresh(): Promise<boolean> {
  const t = tokens.value;
  if (!t?.refresh) return Promise.resolve(false);
  return refreshing ??= tokenRequest({
    grant_type: "refresh_token",
    refresh_token: t.refresh,
    client_id: CLIENT_ID,
  })
    .then((n) => (store(n), true))
    .catch(() => (store(null), me.value = null, false))
    .finally(() => refreshing = undefined);
}

/** The Authorization header value, renewed first when the token is about to expire. */
export async function authorization(): Promise<string | undefined> {
  const t = tokens.value;
  if (!t) return undefined;
  if (t.expiresAt - Date.now() < 15_000) await refresh();
  return tokens.value ? `Bearer ${tokens.value.access}` : undefined;
}

/** Reads who is signed in (`GET /auth/me`); signs out when the token is refused. */
export async function loadMe(): Promise<void> {
  const auth = await authorization();
  if (!auth) return;
  const res = await fetch("/auth/me", { headers: { Authorization: auth } });
  if (res.status === 401 && await refresh()) return loadMe();
  if (!res.ok) {
    store(null);
    me.value = null;
    return;
  }
  me.value = await res.json();
}

/** Ends the server's browser session, revokes the refresh token and forgets the session. */
export async function logout(): Promise<void> {
  const t = tokens.value;
  // Both before the UI forgets the tokens: the sign-in page it then shows navigates away.
  await fetch("/auth/logout", { method: "POST", credentials: "same-origin" }).catch(() => {});
  if (t?.refresh) {
    await fetch("/auth/revoke", {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token: t.refresh, token_type_hint: "refresh_token" }).toString(),
    }).catch(() => {});
  }
  signedOut.value = true;
  store(null);
  me.value = null;
}

/** Forgets the session without calling the server (a token the server refused). */
export function expire(): void {
  store(null);
  me.value = null;
}

if (tokens.value) store(tokens.value); // schedules the renewal of a restored session
