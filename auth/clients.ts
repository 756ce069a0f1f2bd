/**
 * @module Apps as OAuth clients: the built-in public client of the web UI (registered in code at
 * start-up: redirect URI = the service's origin + `/oauth-callback`), the lookup that finds it or
 * a registered one, how a client authenticates at the token and introspection endpoints (`none`
 * with its client_id, `client_secret_basic`, `client_secret_post`, `private_key_jwt`; each client
 * only by the method it registered), client secrets (random, shown once, stored as SHA-256), and
 * the redirect-URI rules (absolute, https or http on a loopback host, no fragment).
 */
import { base64url } from "jose";
import type { Db } from "../db/db.ts";
import {
  type ClientAuthMethod,
  type JtiStore,
  type RegisteredClient,
  verifyClientAssertion,
} from "./client_assertion.ts";
import { OAuthError } from "./errors.ts";
import * as repo from "./repo.ts";

/** The web UI's client id (a public client using PKCE; no consent screen: it is the service). */
export const UI_CLIENT_ID = "imaging-ai-ui";
/** Where the web UI receives its authorization code. */
export const UI_CALLBACK_PATH = "/oauth-callback";

export const AUTH_METHODS: readonly ClientAuthMethod[] = [
  "none",
  "client_secret_basic",
  "client_secret_post",
  "private_key_jwt",
];

const ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/** The built-in client of the web UI served at `origin`. */
export function uiClient(origin: string): RegisteredClient {
  // On a loopback address the UI may be opened as localhost or 127.0.0.1 alike.
  const url = new URL(origin);
  const loopback = ["localhost", "127.0.0.1", "[::1]"];
  const origins = loopback.includes(url.hostname)
    ? loopback.map((host) => `${url.protocol}//${host}${url.port ? `:${url.port}` : ""}`)
    : [origin];
  return {
    clientId: UI_CLIENT_ID,
    name: "Imaging AI web UI",
    scope: "user/*.cruds patient/*.cruds launch/patient openid fhirUser profile online_access",
    redirectUris: origins.map((o) => `${o}${UI_CALLBACK_PATH}`),
    authMethod: "none",
  };
}

/** A registered client, or the built-in UI client; undefined for unknown or disabled ones. */
export async function findAppClient(
  db: Db,
  origin: string,
  clientId: string,
): Promise<RegisteredClient | undefined> {
  if (clientId === UI_CLIENT_ID) return uiClient(origin);
  const client = await repo.findClient(db, clientId);
  return client && !client.disabled ? client : undefined;
}

/** The apps an EHR user may open from the web UI: enabled, with a launch URL and `launch`. */
export async function launchableApps(
  db: Db,
): Promise<{ clientId: string; name: string; launchUrl: string }[]> {
  return (await repo.listClients(db))
    .filter((c) => !c.disabled && c.launchUrl && c.scope.split(" ").includes("launch"))
    .map((c) => ({ clientId: c.clientId, name: c.name ?? c.clientId, launchUrl: c.launchUrl! }));
}

/** A new client secret (256 random bits, base64url). */
export function newSecret(): string {
  return base64url.encode(crypto.getRandomValues(new Uint8Array(32)));
}

export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Equal strings, compared in time independent of where they differ. */
export function sameString(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/** Why `uri` may not be a redirect URI, or undefined when it may. */
export function redirectUriProblem(uri: unknown): string | undefined {
  if (typeof uri !== "string" || uri.length > 2000) return "must be a URL (≤ 2000 characters)";
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return `${uri} is not an absolute URL`;
  }
  if (uri.includes("#")) return `${uri} has a fragment`;
  const loopback = ["localhost", "127.0.0.1", "[::1]"].includes(url.hostname);
  if (url.protocol === "https:") return undefined;
  if (url.protocol === "http:" && loopback) return undefined;
  return `${uri}: https, or http on localhost / 127.0.0.1 only`;
}

/** Options of {@link authenticateClient}. */
export interface ClientAuthOptions {
  findClient: (clientId: string) => Promise<RegisteredClient | undefined>;
  tokenUrl: string;
  jti: JtiStore;
  now: () => number;
  fetchJwks?: (uri: string) => Promise<{ keys: JsonWebKey[] }>;
  /** Whether a public client (`none`, its client_id only) is accepted. */
  allowPublic: boolean;
}

/**
 * The client a token-endpoint (or introspection) request comes from, authenticated by the method
 * it registered; throws `OAuthError(401, "invalid_client")`.
 */
export async function authenticateClient(
  form: URLSearchParams,
  authorization: string | undefined,
  o: ClientAuthOptions,
): Promise<RegisteredClient> {
  const denied = (why: string) => new OAuthError(401, "invalid_client", why);
  const named = form.get("client_id") ?? undefined;
  const checkMethod = (client: RegisteredClient, used: ClientAuthMethod) => {
    const registered = client.authMethod ?? "private_key_jwt";
    if (registered !== used) {
      throw denied(`Client ${client.clientId} authenticates with ${registered}, not ${used}`);
    }
    if (named !== undefined && named !== client.clientId) {
      throw denied("client_id does not match the authenticated client");
    }
  };
  const secretCheck = async (clientId: string, secret: string, used: ClientAuthMethod) => {
    const client = await o.findClient(clientId);
    if (!client) throw denied("Unknown client or wrong secret");
    checkMethod(client, used);
    if (!client.secretHash || !sameString(await sha256Hex(secret), client.secretHash)) {
      throw denied("Unknown client or wrong secret");
    }
    return client;
  };
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization ?? "");
  if (basic) {
    let id: string, secret: string;
    try {
      const text = atob(basic[1]);
      const colon = text.indexOf(":");
      if (colon < 0) throw new Error("no colon");
      // RFC 6749 2.3.1: both parts are form-urlencoded before base64.
      id = decodeURIComponent(text.slice(0, colon).replace(/\+/g, " "));
      secret = decodeURIComponent(text.slice(colon + 1).replace(/\+/g, " "));
    } catch {
      throw denied("The Basic credentials are not base64(client_id:client_secret)");
    }
    return await secretCheck(id, secret, "client_secret_basic");
  }
  if (form.has("client_assertion") || form.has("client_assertion_type")) {
    if (form.get("client_assertion_type") !== ASSERTION_TYPE) {
      throw new OAuthError(
        400,
        "invalid_client",
        `client_assertion_type must be ${ASSERTION_TYPE}`,
      );
    }
    const client = await verifyClientAssertion(form.get("client_assertion") ?? "", {
      findClient: o.findClient,
      tokenUrl: o.tokenUrl,
      jti: o.jti,
      now: o.now,
      ...(o.fetchJwks ? { fetchJwks: o.fetchJwks } : {}),
    });
    checkMethod(client, "private_key_jwt");
    return client;
  }
  const secret = form.get("client_secret");
  if (secret !== null) {
    if (!named) throw denied("client_secret needs client_id");
    return await secretCheck(named, secret, "client_secret_post");
  }
  if (!named) {
    throw denied("Client authentication is required (client_id, a secret or an assertion)");
  }
  const client = await o.findClient(named);
  if (!client) throw denied(`Unknown client ${named}`);
  if ((client.authMethod ?? "private_key_jwt") !== "none") {
    throw denied(`Client ${named} is confidential: authenticate with its ${client.authMethod}`);
  }
  if (!o.allowPublic) throw denied("A public client may not call this endpoint");
  return client;
}
