/**
 * @module The service's access tokens: JWTs signed ES256 by the {@link KeyRing}, with the header
 * `{ alg: "ES256", kid, typ: "at+jwt" }` of RFC 9068. `verifyAccessToken` accepts only ES256 with
 * a `kid` the ring knows (so `alg: none`, an HMAC "signed" with the public key, or a token signed
 * by any other key is refused before any claim is read), then checks the `at+jwt` type, the
 * issuer, the audience, `exp` and `nbf` (with a clock tolerance) and the claims this service
 * needs. Every failure is a `TokenError("invalid_token", reason)` with the reason in its message;
 * an error of the key ring itself (its repo failing) is thrown as it is, not as a token error.
 */
import { decodeProtectedHeader, errors, type JWTPayload, jwtVerify, SignJWT } from "jose";
import { TokenError } from "./errors.ts";
import type { KeyRing } from "./keys.ts";

/** The claims of an access token. */
export interface AccessClaims {
  iss: string;
  aud: string;
  /** The user id (`kind: "user"`) or the client id (`kind: "client"`). */
  sub: string;
  /** The granted scopes, space-separated. */
  scope: string;
  jti: string;
  iat: number;
  /** Not before: the issue time (set on tokens made here; optional on verification). */
  nbf?: number;
  exp: number;
  kind: "user" | "client";
  client_id?: string;
  role?: "admin" | "clinician" | "viewer";
  /** The patient the token is bound to (SMART launch context). */
  patient?: string;
  /** The FHIR resource of the user (`Practitioner/123`). */
  fhirUser?: string;
  name?: string;
  /** The grant (authorization-code flow) the token came from: revoking it ends the token. */
  grant_id?: string;
}

/** The claims a caller supplies; the issuer, audience, id and times are added here. */
export type AccessClaimsInput = Omit<
  AccessClaims,
  "iss" | "aud" | "jti" | "iat" | "nbf" | "exp"
>;

/** Tokens longer than this are refused unparsed. */
const MAX_TOKEN_LENGTH = 16 * 1024;
const OPTIONAL_STRINGS = ["client_id", "patient", "fhirUser", "name", "grant_id"] as const;

/** Signs an access token with the ring's current key, valid `ttlSeconds` from now. */
export async function issueAccessToken(
  ring: KeyRing,
  claims: AccessClaimsInput,
  options: { issuer: string; audience: string; ttlSeconds: number; now?: () => number },
): Promise<{ token: string; claims: AccessClaims }> {
  if (!Number.isFinite(options.ttlSeconds) || options.ttlSeconds <= 0) {
    throw new RangeError("ttlSeconds must be a positive number");
  }
  if (!claims.sub) throw new TypeError("an access token needs a sub");
  const iat = Math.floor((options.now ?? Date.now)() / 1000);
  const full: AccessClaims = {
    iss: options.issuer,
    aud: options.audience,
    sub: claims.sub,
    scope: claims.scope,
    jti: crypto.randomUUID(),
    iat,
    nbf: iat,
    exp: iat + Math.ceil(options.ttlSeconds),
    kind: claims.kind,
  };
  for (const name of OPTIONAL_STRINGS) {
    if (claims[name] !== undefined) full[name] = claims[name];
  }
  if (claims.role !== undefined) full.role = claims.role;
  const { kid, alg, key } = await ring.signingKey();
  const token = await new SignJWT({ ...full })
    .setProtectedHeader({ alg, kid, typ: "at+jwt" })
    .sign(key);
  return { token, claims: full };
}

/**
 * Verifies an access token and answers its claims; throws `TokenError("invalid_token", reason)`
 * when it is malformed, not ES256, signed by no key the ring accepts (unknown kid, or a key
 * retired past its grace), tampered with, not `at+jwt`, for another issuer or audience, expired,
 * not yet valid, or missing a claim.
 */
export async function verifyAccessToken(
  ring: KeyRing,
  token: string,
  options: {
    issuer: string;
    audience: string;
    clockToleranceSeconds?: number;
    now?: () => number;
  },
): Promise<AccessClaims> {
  const invalid = (reason: string) => new TokenError("invalid_token", reason);
  if (typeof token !== "string" || token.length > MAX_TOKEN_LENGTH) {
    throw invalid("malformed token: too long");
  }
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$/.test(token)) {
    throw invalid("malformed token: not a JWS compact serialization (three base64url parts)");
  }
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    throw invalid("malformed token: the header is not a JSON object");
  }
  if (header.alg === "none" || header.alg === undefined) {
    throw invalid("unsigned token (alg none) refused");
  }
  if (header.alg !== "ES256") {
    throw invalid(`unsupported alg ${header.alg}: only ES256 is accepted`);
  }
  if (typeof header.kid !== "string" || header.kid === "") throw invalid("token has no kid");

  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, async (h) => {
      const key = typeof h.kid === "string" ? await ring.verificationKey(h.kid) : undefined;
      if (!key) {
        throw invalid(`unknown signing key (kid ${h.kid}): never issued here, or retired too long`);
      }
      return key;
    }, {
      algorithms: ["ES256"],
      typ: "at+jwt",
      issuer: options.issuer,
      audience: options.audience,
      clockTolerance: options.clockToleranceSeconds ?? 30,
      currentDate: new Date((options.now ?? Date.now)()),
      requiredClaims: ["sub", "scope", "kind", "jti", "iat", "exp"],
    }));
  } catch (e) {
    if (e instanceof TokenError) throw e;
    const reason = reasonOf(e);
    // Anything else (the key repo failing) is not the token's fault: let it through as is.
    if (reason === undefined) throw e;
    throw invalid(reason);
  }
  // A token issued in the future (beyond the tolerance) was not issued by a sane clock: refuse it.
  const nowSeconds = (options.now ?? Date.now)() / 1000;
  if (
    typeof payload.iat === "number" &&
    payload.iat > nowSeconds + (options.clockToleranceSeconds ?? 30)
  ) {
    throw invalid("token not yet valid (issued in the future)");
  }
  return claimsOf(payload, invalid);
}

/** Why jose refused the token; undefined for an error that is not jose's. */
function reasonOf(e: unknown): string | undefined {
  if (e instanceof errors.JWTExpired) return "token expired";
  if (e instanceof errors.JWTClaimValidationFailed) {
    if (e.reason === "missing") return `missing required claim ${e.claim}`;
    switch (e.claim) {
      case "nbf":
        return "token not yet valid (nbf in the future)";
      case "iss":
        return "wrong issuer";
      case "aud":
        return "wrong audience";
      case "typ":
        return "not an access token (typ is not at+jwt)";
      default:
        return `invalid claim ${e.claim}`;
    }
  }
  if (e instanceof errors.JWSSignatureVerificationFailed) {
    return "signature verification failed (tampered token or wrong key)";
  }
  if (e instanceof errors.JOSEAlgNotAllowed) return "unsupported alg: only ES256 is accepted";
  if (e instanceof errors.JOSEError) return `malformed token: ${e.message}`;
  return undefined;
}

/** Checks the types of the claims jose does not check and builds the result. */
function claimsOf(p: JWTPayload, invalid: (reason: string) => TokenError): AccessClaims {
  const str = (name: string): string => {
    const v = p[name];
    if (typeof v !== "string" || v === "") {
      throw invalid(`invalid claim ${name}: expected a string`);
    }
    return v;
  };
  const num = (name: string): number => {
    const v = p[name];
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw invalid(`invalid claim ${name}: expected a number`);
    }
    return v;
  };
  if (typeof p.scope !== "string") throw invalid("invalid claim scope: expected a string");
  const kind = p.kind;
  if (kind !== "user" && kind !== "client") throw invalid("invalid claim kind");
  const claims: AccessClaims = {
    iss: str("iss"),
    aud: str("aud"),
    sub: str("sub"),
    scope: p.scope,
    jti: str("jti"),
    iat: num("iat"),
    exp: num("exp"),
    kind,
  };
  if (p.nbf !== undefined) claims.nbf = num("nbf");
  for (const name of OPTIONAL_STRINGS) if (p[name] !== undefined) claims[name] = str(name);
  const role = p.role;
  if (role === "admin" || role === "clinician" || role === "viewer") claims.role = role;
  else if (role !== undefined) throw invalid("invalid claim role");
  return claims;
}
