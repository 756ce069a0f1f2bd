/**
 * @module The signed-in person: tokens from `POST /auth/token` (password grant; renewed with the
 * rotating refresh token a minute before they expire), who they are (`GET /auth/me`), and logout
 * (`POST /auth/revoke`). Kept in sessionStorage, so a reload stays signed in and closing the tab
 * ends the session.
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

/** Signs in with a username and password; loads `me`. */
export async function login(username: string, password: string): Promise<void> {
  store(await tokenRequest({ grant_type: "password", username, password }));
  await loadMe();
}

let refreshing: Promise<boolean> | undefined;

/** Renews the access token with the refresh token (once at a time); false when it cannot. */
export function refresh(): Promise<boolean> {
  const t = tokens.value;
  if (!t?.refresh) return Promise.resolve(false);
  return refreshing ??= tokenRequest({ grant_type: "refresh_token", refresh_token: t.refresh })
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

/** Revokes the refresh token and forgets the session. */
export async function logout(): Promise<void> {
  const t = tokens.value;
  store(null);
  me.value = null;
  if (t?.refresh) {
    await fetch("/auth/revoke", {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token: t.refresh, token_type_hint: "refresh_token" }).toString(),
    }).catch(() => {});
  }
}

/** Forgets the session without calling the server (a token the server refused). */
export function expire(): void {
  store(null);
  me.value = null;
}

if (tokens.value) store(tokens.value); // schedules the renewal of a restored session
