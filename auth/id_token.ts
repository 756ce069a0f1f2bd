/**
 * @module OpenID Connect ID tokens (Core 1.0 §2, SMART `openid fhirUser`): signed RS256 (OIDC's
 * default `id_token_signed_response_alg`, which every relying party verifies) with the service's
 * RSA key ring, published in the same JWKS as the access tokens' ES256 keys; `iss`, `sub` (the account id), `aud` (the client
 * id), `exp`, `iat`, `auth_time`, `nonce` when the request had one, `at_hash` of the access token,
 * `fhirUser` as an absolute URL when the account has a FHIR identity, and `name` /
 * `preferred_username` with the `profile` scope.
 */
import { SignJWT } from "jose";
import type { KeyRing } from "./keys.ts";
import { base64url } from "jose";

export interface IdTokenInput {
  issuer: string;
  clientId: string;
  sub: string;
  /** Absolute URL of the account's FHIR resource (`https://…/fhir/Practitioner/1`). */
  fhirUser?: string;
  nonce?: string | null;
  authTime?: Date | null;
  accessToken: string;
  profile?: { name: string; username: string };
  ttlSeconds: number;
  now: () => number;
}

/** OIDC `at_hash`: the left half of the access token's SHA-256, base64url. */
export async function atHash(accessToken: string): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(accessToken)),
  );
  return base64url.encode(digest.slice(0, 16));
}

export async function issueIdToken(ring: KeyRing, i: IdTokenInput): Promise<string> {
  const iat = Math.floor(i.now() / 1000);
  const claims: Record<string, unknown> = {
    iss: i.issuer,
    sub: i.sub,
    aud: i.clientId,
    iat,
    exp: iat + i.ttlSeconds,
    at_hash: await atHash(i.accessToken),
  };
  if (i.authTime) claims.auth_time = Math.floor(i.authTime.getTime() / 1000);
  if (i.nonce) claims.nonce = i.nonce;
  if (i.fhirUser) claims.fhirUser = i.fhirUser;
  if (i.profile) {
    claims.name = i.profile.name;
    claims.preferred_username = i.profile.username;
  }
  const { kid, alg, key } = await ring.signingKey();
  return await new SignJWT(claims).setProtectedHeader({ alg, kid, typ: "JWT" }).sign(key);
}
