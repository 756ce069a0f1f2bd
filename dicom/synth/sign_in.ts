/**
 * @module A bearer token for the command-line tools (`deno task synth --post`, `deno task demo`)
 * without the password grant (off by default): the authorization code flow with PKCE (S256)
 * through the server's own sign-in page, driven as a browser would as the web UI's built-in public
 * client (`imaging-ai-ui`): `GET /auth/authorize`, the sign-in form (its request id and CSRF
 * fields, the browser cookie), the consent form if one is shown, the code read from the last
 * redirect's `Location` (never followed), and `POST /auth/token` with the verifier. Who signs in:
 * `--username`/`--password`, else IMAGING_AI_USERNAME/IMAGING_AI_PASSWORD, else the first admin's
 * password file that the embedded default writes on its first start (`data/initial-admin-password`:
 * the user name on line 1, the password on line 2; beside PGLITE_DIR when that is set).
 */
import { base64url } from "jose";

/** The web UI's client id and callback (auth/clients.ts); the code is read, not delivered. */
export const CLIENT_ID = "imaging-ai-ui";
export const CALLBACK_PATH = "/oauth-callback";
/** What the tools ask for: the account's own reach. */
export const SCOPE = "user/*.cruds openid fhirUser profile";

/** A sign-in that cannot happen; the message says why and what to do, ready to print. */
export class SignInError extends Error {
  override name = "SignInError";
}

export interface Credentials {
  username: string;
  password: string;
  /** Where they came from, for the log line ("the password file data/initial-admin-password"). */
  source: string;
}

export interface CredentialOptions {
  username?: string;
  password?: string;
  /** The first admin's password file; default: beside PGLITE_DIR, or data/initial-admin-password. */
  passwordFile?: string;
  env?: Record<string, string | undefined>;
}

/** Where the embedded default writes the first admin's password (auth/admin.ts). */
export function passwordFilePath(env: Record<string, string | undefined> = {}): string {
  const dir = env.PGLITE_DIR && env.PGLITE_DIR !== "memory" ? env.PGLITE_DIR : "data/pglite";
  const parent = dir.replace(/\/+$/, "").replace(/\/?[^/]+$/, "");
  return `${parent || "."}/initial-admin-password`.replace(/^\.\//, "");
}

/** The user name and password of a password file, or undefined when there is no such file. */
export async function readPasswordFile(
  path: string,
): Promise<{ username: string; password: string } | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    if (e instanceof Deno.errors.PermissionDenied) {
      throw new SignInError(
        `cannot read ${path} (it is readable by the account that started the service only)`,
      );
    }
    throw e;
  }
  const [username, password] = text.split("\n").map((l) => l.trim());
  if (!username || !password) throw new SignInError(`${path} has no user name and password`);
  return { username, password };
}

/** How to get a token, in one line (for a 401 or when no credentials were found). */
export function howToSignIn(passwordFile = "data/initial-admin-password"): string {
  return `sign in with --username NAME --password PW (or IMAGING_AI_USERNAME and ` +
    `IMAGING_AI_PASSWORD), or run it where ${passwordFile} holds the first admin's password (the ` +
    `embedded default writes it on its first start), or give --token T`;
}

/** The credentials to sign in with, or undefined when none were given or found. */
export async function findCredentials(o: CredentialOptions = {}): Promise<Credentials | undefined> {
  const env = o.env ?? {};
  // An empty variable counts as unset.
  const username = o.username ?? (env.IMAGING_AI_USERNAME || undefined);
  const password = o.password ?? (env.IMAGING_AI_PASSWORD || undefined);
  if (username !== undefined || password !== undefined) {
    if (!username || !password) {
      throw new SignInError("give both a user name and a password (or neither)");
    }
    const source = o.username !== undefined || o.password !== undefined ? "--username" : "env";
    return { username, password, source: source === "env" ? "IMAGING_AI_USERNAME" : source };
  }
  const file = o.passwordFile ?? passwordFilePath(env);
  const found = await readPasswordFile(file);
  return found && { ...found, source: `the password file ${file}` };
}

/** A browser's cookies for one origin (paths and expiry ignored: one short sign-in). */
export class Jar {
  cookies = new Map<string, string>();
  take(res: Response) {
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(";");
      const [name, ...rest] = pair.split("=");
      const gone = attrs.some((a) => /^\s*max-age=0\s*$/i.test(a)) || rest.join("=") === "";
      if (gone) this.cookies.delete(name.trim());
      else this.cookies.set(name.trim(), rest.join("="));
    }
  }
  header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; ");
  }
  /** A request with the jar's cookies; redirects are not followed. */
  async fetch(url: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.cookies.size) headers.set("Cookie", this.header());
    const res = await fetch(url, { ...init, headers, redirect: "manual" });
    this.take(res);
    return res;
  }
}

/** A PKCE verifier and its S256 challenge. */
export async function pkce(): Promise<{ verifier: string; challenge: string }> {
  const verifier = base64url.encode(crypto.getRandomValues(new Uint8Array(32)));
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return { verifier, challenge: base64url.encode(new Uint8Array(digest)) };
}

/** The hidden fields of a sign-in or consent page's form, when it has them. */
export function formFields(html: string): { requestId: string; csrf: string } | undefined {
  const requestId = /name="request_id" value="([^"]+)"/.exec(html)?.[1];
  const csrf = /name="csrf" value="([^"]+)"/.exec(html)?.[1];
  return requestId && csrf ? { requestId, csrf } : undefined;
}

/** The message of a sign-in or error page (its alert, else its first paragraph). */
function pageMessage(html: string): string {
  const m = /role="alert">([^<]*)</.exec(html) ?? /<p[^>]*>([^<]+)</.exec(html);
  return (m?.[1] ?? html.slice(0, 200)).replace(/&#39;/g, "'").replace(/&quot;/g, '"')
    .replace(/&amp;/g, "&").trim();
}

const postForm = (values: URLSearchParams): RequestInit => ({
  method: "POST",
  headers: { "Content-Type": "application/x-www-form-urlencoded" },
  body: values.toString(),
});

/** The service's origin as its own pages name it (PUBLIC_URL), which the redirect URI must use. */
async function publicOrigin(origin: string): Promise<string> {
  let res: Response;
  try {
    res = await fetch(`${origin}/fhir/.well-known/smart-configuration`);
  } catch (e) {
    throw new SignInError(`nothing answers at ${origin} (${e instanceof Error ? e.message : e})`);
  }
  const body = await res.json().catch(() => undefined);
  const endpoint = body?.authorization_endpoint;
  if (!res.ok || typeof endpoint !== "string") {
    throw new SignInError(`${origin} does not look like this service (no SMART configuration)`);
  }
  return new URL(endpoint).origin;
}

export interface TokenSet {
  accessToken: string;
  expiresIn: number;
  scope: string;
}

/**
 * Signs `who` in at the service at `origin` with the code flow and PKCE, as the web UI's client;
 * answers its tokens. Throws SignInError with the server's reason (wrong password, locked, …).
 */
export async function signIn(
  origin: string,
  who: { username: string; password: string },
  scope = SCOPE,
): Promise<TokenSet> {
  origin = origin.replace(/\/+$/, "");
  const redirectUri = `${await publicOrigin(origin)}${CALLBACK_PATH}`;
  const { verifier, challenge } = await pkce();
  const state = base64url.encode(crypto.getRandomValues(new Uint8Array(12)));
  const jar = new Jar();
  const query = new URLSearchParams({
    response_type: "code",
    client_id: CLIENT_ID,
    redirect_uri: redirectUri,
    scope,
    state,
    code_challenge: challenge,
    code_challenge_method: "S256",
  });
  let res = await jar.fetch(`${origin}/auth/authorize?${query}`);
  // Sign-in page → 303 back to the request → (first party) 303 to the redirect URI with the code;
  // an app that is not first party gets the consent page, approved with what it offers.
  for (let step = 0; step < 6; step++) {
    const location = res.headers.get("location");
    if (res.status >= 300 && res.status < 400 && location) {
      await res.body?.cancel();
      const next = new URL(location, origin);
      if (next.pathname === CALLBACK_PATH) {
        return await exchange(origin, next, state, redirectUri, verifier);
      }
      res = await jar.fetch(`${origin}${next.pathname}${next.search}`);
      continue;
    }
    const html = await res.text();
    const form = formFields(html);
    if (res.status === 401) {
      throw new SignInError(`signing in as ${who.username} failed: ${pageMessage(html)}`);
    }
    if (res.status !== 200 || !form) {
      throw new SignInError(`sign-in page: HTTP ${res.status}: ${pageMessage(html)}`);
    }
    const values = new URLSearchParams({ request_id: form.requestId, csrf: form.csrf });
    if (html.includes('value="login"')) {
      values.set("action", "login");
      values.set("username", who.username);
      values.set("password", who.password);
    } else {
      values.set("action", "approve");
      for (const m of html.matchAll(/name="scope" value="([^"]+)"/g)) {
        values.append("scope", m[1].replaceAll("&amp;", "&"));
      }
    }
    res = await jar.fetch(`${origin}/auth/authorize`, postForm(values));
  }
  throw new SignInError("the sign-in did not end in a redirect with a code");
}

async function exchange(
  origin: string,
  callback: URL,
  state: string,
  redirectUri: string,
  verifier: string,
): Promise<TokenSet> {
  const error = callback.searchParams.get("error");
  if (error) {
    throw new SignInError(
      `sign-in refused: ${callback.searchParams.get("error_description") ?? error}`,
    );
  }
  const code = callback.searchParams.get("code");
  if (!code || callback.searchParams.get("state") !== state) {
    throw new SignInError("the sign-in answered no code (or another state)");
  }
  const res = await fetch(
    `${origin}/auth/token`,
    postForm(
      new URLSearchParams({
        grant_type: "authorization_code",
        code,
        redirect_uri: redirectUri,
        client_id: CLIENT_ID,
        code_verifier: verifier,
      }),
    ),
  );
  const body = await res.json().catch(() => ({}));
  if (!res.ok || typeof body.access_token !== "string") {
    throw new SignInError(
      `the token endpoint answered ${res.status}: ${body.error_description ?? body.error ?? ""}`,
    );
  }
  return {
    accessToken: body.access_token,
    expiresIn: Number(body.expires_in) || 0,
    scope: String(body.scope ?? ""),
  };
}

/**
 * A token for a command-line tool: signs in with the credentials found (see `findCredentials`);
 * undefined when none were given or found (the caller says `howToSignIn()` if the server wants one).
 */
export async function tokenFor(
  origin: string,
  o: CredentialOptions = {},
): Promise<{ token: string; username: string; source: string } | undefined> {
  const who = await findCredentials(o);
  if (!who) return undefined;
  const t = await signIn(origin, who);
  return { token: t.accessToken, username: who.username, source: who.source };
}
