/**
 * @module The sidecar's credential: SMART Backend Services. It signs a short client assertion
 * (RFC 7523, ES384 or RS384 by its private JWK's `alg`) and trades it at the token endpoint for
 * an access token, kept until shortly before it expires, renewed at once after a 401. The
 * assertion's `aud` is the token endpoint as the server names it in its SMART configuration (its
 * public URL), which differs from the address the sidecar reaches it at behind a load balancer.
 */
import * as jose from "jose";

export interface ClientCredentialsOptions {
  /** Where to POST token requests (the API as this process reaches it). */
  tokenUrl: string;
  /**
   * The server's `/.well-known/smart-configuration`: its `token_endpoint` becomes the assertion's
   * `aud` (read once, on the first token request). Absent: `aud` is `tokenUrl`.
   */
  discoveryUrl?: string;
  clientId: string;
  /** The private JWK (with `kid`; `alg` ES384 or RS384, ES384 when absent). */
  privateJwk: JsonWebKey & { kid?: string; alg?: string };
  scope: string;
  fetch?: typeof fetch;
  now?: () => number;
}

/** A token provider for `createApiClient({ tokenProvider })`. */
export function clientCredentials(
  options: ClientCredentialsOptions,
): (renew: boolean) => Promise<string> {
  const alg = options.privateJwk.alg ?? "ES384";
  if (alg !== "ES384" && alg !== "RS384") {
    throw new Error(`SIDECAR_PRIVATE_KEY: alg ${alg}; ES384 or RS384 expected`);
  }
  if (!("d" in options.privateJwk)) {
    throw new Error("SIDECAR_PRIVATE_KEY: a private JWK (with d) is expected");
  }
  const now = options.now ?? Date.now;
  const doFetch = options.fetch ?? fetch;
  let key: Promise<CryptoKey | Uint8Array> | undefined;
  let held: { token: string; until: number } | undefined;
  let audience: string | undefined;
  const discover = async (): Promise<string> => {
    if (!options.discoveryUrl) return options.tokenUrl;
    const res = await doFetch(options.discoveryUrl, { headers: { Accept: "application/json" } });
    const body = await res.json().catch(() => ({}));
    if (!res.ok || typeof body.token_endpoint !== "string") {
      throw new Error(`${options.discoveryUrl}: no token_endpoint (HTTP ${res.status})`);
    }
    return body.token_endpoint;
  };
  return async (renew) => {
    if (!renew && held && now() < held.until) return held.token;
    audience ??= await discover();
    key ??= jose.importJWK(options.privateJwk, alg);
    const seconds = Math.floor(now() / 1000);
    const assertion = await new jose.SignJWT({})
      .setProtectedHeader({ alg, kid: options.privateJwk.kid, typ: "JWT" })
      .setIssuer(options.clientId)
      .setSubject(options.clientId)
      .setAudience(audience)
      .setExpirationTime(seconds + 240)
      .setJti(crypto.randomUUID())
      .sign(await key);
    const response = await doFetch(options.tokenUrl, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "client_credentials",
        scope: options.scope,
        client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        client_assertion: assertion,
      }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok || typeof body.access_token !== "string") {
      throw new Error(
        `The token endpoint refused client ${options.clientId}: ${response.status} ${
          body.error ?? ""
        } ${body.error_description ?? ""}`.trim(),
      );
    }
    const life = Number(body.expires_in) > 0 ? Number(body.expires_in) : 300;
    held = { token: body.access_token, until: now() + Math.max(10, life - 30) * 1000 };
    return held.token;
  };
}

/** SIDECAR_PRIVATE_KEY's JWK: JSON text, or `@path` to a file of it. */
export async function readPrivateJwk(value: string): Promise<JsonWebKey & { kid?: string }> {
  const text = value.startsWith("@") ? await Deno.readTextFile(value.slice(1)) : value;
  try {
    return JSON.parse(text);
  } catch {
    throw new Error("SIDECAR_PRIVATE_KEY: not a JWK in JSON (or @file holding one)");
  }
}
