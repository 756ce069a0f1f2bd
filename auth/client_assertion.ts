/**
 * @module SMART Backend Services client authentication: a `client_assertion` JWT signed with the
 * client's private key (`private_key_jwt`, RFC 7523 §2.2 and SMART Backend Services). The header's
 * `alg` must be RS384 or ES384 and its `kid` must name a key of the client's JWKS (registered
 * inline, or fetched from its `jwks_uri` and cached for five minutes, refetched sooner when a kid
 * is unknown). `iss` and `sub` are the client_id of a known, enabled client; `aud` is the token
 * URL; `exp` is present, not passed, and at most five minutes ahead; `jti` is present and is
 * remembered until `exp`, so that an assertion cannot be replayed. Failures are
 * `OAuthError("invalid_client")`: 400 for an assertion that is not well formed (not a JWT, no
 * `kid`, a claim missing), 401 for one that does not authenticate the client.
 */
import { guardedRequest, OutboundRefused, type Resolver } from "../platform/outbound.ts";
import {
  decodeJwt,
  decodeProtectedHeader,
  errors,
  importJWK,
  type JWTPayload,
  jwtVerify,
} from "jose";
import { OAuthError } from "./errors.ts";

/** A client registered for Backend Services. */
export interface RegisteredClient {
  clientId: string;
  name?: string;
  /** Its public keys, registered inline. */
  jwks?: { keys: JsonWebKey[] };
  /** Where its public keys are published (used when `jwks` is absent). */
  jwksUri?: string;
  /** The scopes it may be granted, space-separated. */
  scope: string;
  disabled?: boolean;
  /** Where the authorization endpoint may send its codes (exact strings); none for a backend. */
  redirectUris?: string[];
  /** How it authenticates at the token endpoint (default `private_key_jwt`). */
  authMethod?: ClientAuthMethod;
  /** The SHA-256 (hex) of a symmetric client's secret. */
  secretHash?: string;
  /** Where an EHR launch opens the app (`iss` and `launch` are added to it). */
  launchUrl?: string;
}

/** RFC 7591 `token_endpoint_auth_method` values this server supports. */
export type ClientAuthMethod =
  | "none"
  | "client_secret_basic"
  | "client_secret_post"
  | "private_key_jwt";

/** The assertion ids seen, per client, until they expire. */
export interface JtiStore {
  /** Remembers `jti` until `expiresAt`; false when it was already remembered (a replay). */
  remember(clientId: string, jti: string, expiresAt: Date): Promise<boolean>;
}

/** Options of {@link verifyClientAssertion}. */
export interface ClientAssertionOptions {
  findClient: (clientId: string) => Promise<RegisteredClient | undefined>;
  /** The token endpoint's URL, which `aud` must be (or contain). */
  tokenUrl: string;
  jti: JtiStore;
  /** Fetches a `jwks_uri` (default: an https GET with a timeout and a size limit). */
  fetchJwks?: (uri: string) => Promise<{ keys: JsonWebKey[] }>;
  now?: () => number;
  /** The furthest `exp` may be ahead (default 300 s). */
  maxLifetimeSeconds?: number;
}

/** The signature algorithms SMART Backend Services allows. */
export const ASSERTION_ALGORITHMS = ["RS384", "ES384"] as const;

const MAX_ASSERTION_LENGTH = 16 * 1024;
const MAX_JTI_LENGTH = 256;
const JWKS_TTL_MS = 5 * 60 * 1000;
/** A fetched JWKS without the asked kid is fetched again, but not more often than this. */
const JWKS_REFETCH_MIN_MS = 30 * 1000;
const JWKS_MAX_BYTES = 256 * 1024;
const JWKS_TIMEOUT_MS = 5000;

/** A {@link JtiStore} in memory (one process); entries are dropped once expired. */
export function memoryJtiStore(now: () => number = Date.now): JtiStore {
  const seen = new Map<string, number>();
  let sweptAt = now();
  return {
    remember(clientId, jti, expiresAt) {
      const t = now();
      if (t - sweptAt > 60_000) {
        for (const [k, until] of seen) if (until <= t) seen.delete(k);
        sweptAt = t;
      }
      const key = JSON.stringify([clientId, jti]);
      const until = seen.get(key);
      if (until !== undefined && until > t) return Promise.resolve(false);
      seen.set(key, expiresAt.getTime());
      return Promise.resolve(true);
    },
  };
}

/**
 * Authenticates a client by its `client_assertion` and answers the client; throws
 * `OAuthError(400 | 401, "invalid_client", reason)`.
 */
export async function verifyClientAssertion(
  assertion: string,
  options: ClientAssertionOptions,
): Promise<RegisteredClient> {
  const malformed = (why: string) => new OAuthError(400, "invalid_client", why);
  const denied = (why: string) => new OAuthError(401, "invalid_client", why);
  const now = options.now ?? Date.now;

  if (typeof assertion !== "string" || assertion.length > MAX_ASSERTION_LENGTH) {
    throw malformed("client_assertion is missing or too long");
  }
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(assertion)) {
    throw malformed("client_assertion is not a JWT (three base64url parts)");
  }
  let header: ReturnType<typeof decodeProtectedHeader>;
  let unverified: JWTPayload;
  try {
    header = decodeProtectedHeader(assertion);
    unverified = decodeJwt(assertion);
  } catch {
    throw malformed("client_assertion is not a JWT (its header or claims are not JSON objects)");
  }
  const alg = header.alg;
  if (alg === "none" || alg === undefined) throw denied("unsigned client_assertion (alg none)");
  if (alg !== "RS384" && alg !== "ES384") {
    throw denied(`client_assertion alg ${alg} is not allowed: use RS384 or ES384`);
  }
  if (typeof header.kid !== "string" || header.kid === "") {
    throw malformed("client_assertion header has no kid");
  }
  const { iss, sub } = unverified;
  if (typeof iss !== "string" || iss === "") throw malformed("client_assertion has no iss");
  if (typeof sub !== "string" || sub === "") throw malformed("client_assertion has no sub");
  if (iss !== sub) throw denied("client_assertion iss and sub must both be the client_id");

  const client = await options.findClient(iss);
  if (!client) throw denied(`unknown client ${iss}`);
  if (client.disabled) throw denied(`client ${iss} is disabled`);

  const jwk = await clientKey(client, header.kid, alg, options.fetchJwks ?? fetchJwksHttps, now);
  let key: CryptoKey;
  try {
    const imported = await importJWK(publicMembers(jwk), alg);
    if (imported instanceof Uint8Array) throw new TypeError("not an asymmetric key");
    key = imported;
  } catch {
    throw denied(`the client's key ${header.kid} cannot be used for ${alg}`);
  }

  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(assertion, key, {
      algorithms: [alg],
      issuer: client.clientId,
      subject: client.clientId,
      audience: options.tokenUrl,
      requiredClaims: ["exp", "jti"],
      currentDate: new Date(now()),
    }));
  } catch (e) {
    throw verifyFailure(e, options.tokenUrl, malformed, denied);
  }

  const exp = payload.exp;
  const maxLifetime = options.maxLifetimeSeconds ?? 300;
  if (typeof exp !== "number" || exp - now() / 1000 > maxLifetime) {
    throw denied(`client_assertion exp is more than ${maxLifetime} s ahead`);
  }
  const jti = payload.jti;
  if (typeof jti !== "string" || jti === "" || jti.length > MAX_JTI_LENGTH) {
    throw malformed(`client_assertion jti must be a string of 1 to ${MAX_JTI_LENGTH} characters`);
  }
  if (!await options.jti.remember(client.clientId, jti, new Date(exp * 1000))) {
    throw denied("client_assertion jti was already used (replay)");
  }
  return client;
}

function verifyFailure(
  e: unknown,
  tokenUrl: string,
  malformed: (why: string) => OAuthError,
  denied: (why: string) => OAuthError,
): OAuthError {
  if (e instanceof errors.JWTExpired) return denied("client_assertion has expired");
  if (e instanceof errors.JWTClaimValidationFailed) {
    if (e.reason === "missing") return malformed(`client_assertion has no ${e.claim}`);
    if (e.claim === "aud") return denied(`client_assertion aud must be the token URL ${tokenUrl}`);
    if (e.claim === "nbf") return denied("client_assertion is not yet valid (nbf)");
    return denied(`client_assertion claim ${e.claim} is invalid`);
  }
  if (e instanceof errors.JWSSignatureVerificationFailed) {
    return denied("client_assertion signature verification failed");
  }
  if (e instanceof errors.JOSEError) return malformed(`client_assertion: ${e.message}`);
  return denied(`client_assertion cannot be verified: ${e instanceof Error ? e.message : e}`);
}

// ---- the client's keys ----

function member(jwk: JsonWebKey, name: string): unknown {
  return (jwk as Record<string, unknown>)[name];
}

/** Whether `jwk` may verify `alg` signatures (type, curve, and `alg`/`use`/`key_ops` if set). */
function fits(jwk: JsonWebKey, alg: "RS384" | "ES384"): boolean {
  const typeOk = alg === "RS384" ? jwk.kty === "RSA" : jwk.kty === "EC" && jwk.crv === "P-384";
  return typeOk && (jwk.alg === undefined || jwk.alg === alg) &&
    (jwk.use === undefined || jwk.use === "sig") &&
    (jwk.key_ops === undefined || jwk.key_ops.includes("verify"));
}

/** Only the public members, so that a private JWK registered by mistake is still public. */
function publicMembers(jwk: JsonWebKey): { kty: string; [k: string]: string } {
  return jwk.kty === "RSA"
    ? { kty: "RSA", n: jwk.n ?? "", e: jwk.e ?? "" }
    : { kty: jwk.kty ?? "", crv: jwk.crv ?? "", x: jwk.x ?? "", y: jwk.y ?? "" };
}

function isJwks(value: unknown): value is { keys: JsonWebKey[] } {
  if (typeof value !== "object" || value === null) return false;
  const keys = (value as { keys?: unknown }).keys;
  return Array.isArray(keys) && keys.every((k) => typeof k === "object" && k !== null);
}

interface CachedJwks {
  fetchedAt: number;
  jwks: Promise<{ keys: JsonWebKey[] }>;
}

/** Fetched JWKS per fetch function (so that tests with their own fetcher share nothing). */
const jwksCache = new WeakMap<(uri: string) => Promise<unknown>, Map<string, CachedJwks>>();

/** The client's JWK with `kid` that fits `alg`; throws 401 when there is none. */
async function clientKey(
  client: RegisteredClient,
  kid: string,
  alg: "RS384" | "ES384",
  fetchJwks: (uri: string) => Promise<{ keys: JsonWebKey[] }>,
  now: () => number,
): Promise<JsonWebKey> {
  const pick = (jwks: { keys: JsonWebKey[] }) => {
    const named = jwks.keys.filter((k) => member(k, "kid") === kid);
    const key = named.find((k) => fits(k, alg));
    if (key) return key;
    throw new OAuthError(
      401,
      "invalid_client",
      named.length
        ? `the client's key ${kid} is not a key for ${alg}`
        : `no key with kid ${kid} in the client's JWKS`,
    );
  };
  if (client.jwks) {
    if (!isJwks(client.jwks)) throw new OAuthError(401, "invalid_client", "client JWKS is invalid");
    return pick(client.jwks);
  }
  const uri = client.jwksUri;
  if (!uri) throw new OAuthError(401, "invalid_client", "the client has no registered keys");

  let perFetcher = jwksCache.get(fetchJwks);
  if (!perFetcher) jwksCache.set(fetchJwks, perFetcher = new Map());
  const cache = perFetcher;
  const load = (): CachedJwks => {
    const entry: CachedJwks = {
      fetchedAt: now(),
      jwks: fetchJwks(uri).then((value) => {
        if (!isJwks(value)) throw new Error("the document is not a JWKS");
        return value;
      }),
    };
    entry.jwks.catch(() => cache.get(uri) === entry && cache.delete(uri));
    cache.set(uri, entry);
    return entry;
  };
  const get = async (entry: CachedJwks) => {
    try {
      return await entry.jwks;
    } catch (e) {
      throw new OAuthError(
        401,
        "invalid_client",
        `the client's JWKS could not be fetched from ${uri}: ${e instanceof Error ? e.message : e}`,
      );
    }
  };

  let entry = cache.get(uri);
  if (!entry || now() - entry.fetchedAt >= JWKS_TTL_MS) entry = load();
  try {
    return pick(await get(entry));
  } catch (e) {
    // The client may have rotated its keys: fetch again, unless that was just done.
    if (!(e instanceof OAuthError) || now() - entry.fetchedAt < JWKS_REFETCH_MIN_MS) throw e;
    return pick(await get(load()));
  }
}

/**
 * GETs a JWKS over https, with a timeout, no redirects and a size limit; never from a loopback,
 * private, link-local or metadata address unless `privateAddresses` is `allow`
 * (OUTBOUND_PRIVATE_ADDRESSES).
 */
export async function fetchJwksHttps(
  uri: string,
  privateAddresses: "refuse" | "allow" = "refuse",
  resolve?: Resolver,
): Promise<{ keys: JsonWebKey[] }> {
  const url = new URL(uri);
  if (url.protocol !== "https:") throw new Error("jwks_uri must be an https URL");
  const headers = new Headers({ accept: "application/jwk-set+json, application/json" });
  const signal = AbortSignal.timeout(JWKS_TIMEOUT_MS);
  let body: Uint8Array;
  if (privateAddresses !== "allow") {
    // Resolved once, checked, and connected to: no DNS rebinding between check and request.
    let res;
    try {
      res = await guardedRequest(
        url,
        { method: "GET", headers, signal, maxBytes: JWKS_MAX_BYTES },
        resolve,
      );
    } catch (e) {
      if (e instanceof OutboundRefused) throw new Error(`jwks_uri refused: ${e.message}`);
      throw e;
    }
    if (res.status < 200 || res.status > 299) throw new Error(`HTTP ${res.status}`);
    body = res.body;
  } else {
    body = await fetchCapped(url, headers, signal);
  }
  const value: unknown = JSON.parse(new TextDecoder().decode(body));
  if (!isJwks(value)) throw new Error("the document is not a JWKS");
  return value;
}

/** GET `url` without following redirects; the body, or an error past JWKS_MAX_BYTES. */
async function fetchCapped(url: URL, headers: Headers, signal: AbortSignal): Promise<Uint8Array> {
  const res = await fetch(url, { headers, redirect: "error", signal });
  if (!res.ok || !res.body) {
    await res.body?.cancel();
    throw new Error(`HTTP ${res.status}`);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    size += chunk.length;
    if (size > JWKS_MAX_BYTES) throw new Error(`larger than ${JWKS_MAX_BYTES} bytes`);
    chunks.push(chunk);
  }
  const body = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    body.set(c, at);
    at += c.length;
  }
  return body;
}
