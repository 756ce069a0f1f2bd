/**
 * @module The authorization server and the bearer-token check of the resource server, in one:
 * `POST /auth/token` grants (authorization_code for apps and the web UI — `code_grant.ts`,
 * `authorize.ts` —, password for people only behind AUTH_PASSWORD_GRANT, refresh_token with
 * rotation, client_credentials with a private_key_jwt assertion for systems), revocation, the
 * first admin, the signing keys, and `authenticate()` that turns an Authorization header into a
 * `Caller` (verified tokens cached; a token of a revoked grant is refused). Accounts and clients
 * for admins are `admin.ts`'s.
 */
import { createRateLimiter, RateLimited, type RateLimiter } from "../ratelimit/limits.ts";
import type { Config } from "../platform/config.ts";
import type { Db } from "../db/db.ts";
import type { Logger } from "../platform/log.ts";
import { accountScopes, type Caller, internalCaller, unauthorized } from "./access.ts";
import { WORKER_SCOPE } from "../queue/jobs.ts";
import { fetchJwksHttps, verifyClientAssertion } from "./client_assertion.ts";
import { OAuthError, TokenError } from "./errors.ts";
import { issueAccessToken, verifyAccessToken } from "./jwt.ts";
import { createKeyRing, type KeyRing } from "./keys.ts";
import { dummyHash, hashPassword, needsRehash, verifyPassword } from "./passwords.ts";
import * as repo from "./repo.ts";
import {
  type ClientAdmin,
  createClientAdmin,
  createUserAdmin,
  ensureFirstAdmin,
  type UserAdmin,
  USERNAME,
} from "./admin.ts";
import { narrowScopes, parseScopes } from "./scopes.ts";
import { type Authorizer, createAuthorizer } from "./authorize.ts";
import { authenticateClient, findAppClient, sha256Hex as sha256 } from "./clients.ts";
import { base64url } from "jose";
import { type CodeGrant, createCodeGrant, type SmartTokenResponse } from "./code_grant.ts";
import { findGrant } from "./smart_repo.ts";

export { InputError } from "./admin.ts";
export type { ClientAdmin, ClientInput, UserAdmin, UserInput, UserView } from "./admin.ts";

export type TokenResponse = SmartTokenResponse;

export interface AuthService {
  readonly enabled: boolean;
  readonly issuer: string;
  /** Tokens' audience: the FHIR base URL. */
  readonly audience: string;
  readonly tokenUrl: string;
  readonly ring: KeyRing;
  /** The keys of OpenID Connect ID tokens (RS256). */
  readonly idRing: KeyRing;
  /** The public keys of both rings: what `jwks_uri` serves. */
  jwks(): Promise<{ keys: JsonWebKey[] }>;
  /** The Caller of an `Authorization` header; throws a 401 AuthError. With AUTH=off: internal. */
  authenticate(authorization: string | undefined): Promise<Caller>;
  /** `POST /auth/token` with a form body (and the Authorization header); throws OAuthError. */
  token(form: URLSearchParams, address: string, authorization?: string): Promise<TokenResponse>;
  /**
   * RFC 7009: revokes a refresh token's family, or an access token's grant (unknown tokens are
   * ignored, as the RFC says).
   */
  revoke(token: string): Promise<void>;
  /** The authorization endpoint's logic (requests, sessions, consent, EHR launches). */
  authorizer: Authorizer;
  /** Authorization codes, their refreshes and RFC 7662 introspection. */
  codes: CodeGrant;
  /** Checks a person's password (login rate limit, lockout); throws OAuthError / TooManyAttempts. */
  verifyLogin(username: string, password: string, address: string): Promise<repo.UserRow>;
  /** The confidential client of an introspection request; throws OAuthError(401). */
  authenticateClient(form: URLSearchParams, authorization?: string): Promise<{ clientId: string }>;
  /** A short-lived token for the service's own in-process worker. */
  workerToken(): Promise<string>;
  /** Creates the first admin from config when there is no admin yet. */
  ensureFirstAdmin(log: Logger): Promise<void>;
  users: UserAdmin;
  clients: ClientAdmin;
}

/** Too many logins from one address: answered 429 with Retry-After. */
export class TooManyAttempts extends Error {
  constructor(readonly retryAfterSeconds: number) {
    super("Too many login attempts from this address; try again later");
  }
}

const ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/** How long a cached app token is trusted before its grant is read again (another's revocation). */
export const GRANT_RECHECK_MS = 15_000;
/** Verified tokens kept (each a few hundred bytes). */
const VERIFIED_CACHE = 10_000;

export function createAuthService(
  db: Db,
  config: Readonly<Config>,
  options: {
    now?: () => number;
    /** Counts logins per address, with a `login` limit (default: one of its own, in memory). */
    limiter?: RateLimiter;
  } = {},
): AuthService {
  const a = config.auth;
  // One function for the service's life: fetched key sets are cached per fetcher.
  const fetchJwks = config.outboundPrivateAddresses === "allow"
    ? (uri: string) => fetchJwksHttps(uri, "allow")
    : undefined;
  const now = options.now ?? Date.now;
  const ring = createKeyRing(repo.signingKeyRepo(db));
  const idRing = createKeyRing(repo.signingKeyRepo(db), { alg: "RS256" });
  const origin = new URL(config.publicUrl).origin;
  const audience = `${config.publicUrl}/fhir`;
  const tokenUrl = `${origin}/auth/token`;
  const jtis = repo.jtiStore(db);
  /** Tokens verified, oldest first (Map order), with their expiry in seconds. */
  const verified = new Map<
    string,
    { caller: Caller; exp: number; grant?: string; checkedAt: number }
  >();

  async function issue(
    claims: Parameters<typeof issueAccessToken>[1],
  ): Promise<{ token: string; expiresIn: number }> {
    const { token } = await issueAccessToken(ring, claims, {
      issuer: a.issuer,
      audience,
      ttlSeconds: a.accessTokenSeconds,
      now,
    });
    return { token, expiresIn: a.accessTokenSeconds };
  }

  async function newRefresh(
    userId: string,
    scope: string,
    family: string,
    expiresAt?: Date,
  ): Promise<string> {
    const token = base64url.encode(crypto.getRandomValues(new Uint8Array(32)));
    await repo.insertRefresh(db, {
      tokenHash: await sha256(token),
      family,
      userId,
      scope,
      expiresAt: expiresAt ?? new Date(now() + a.refreshTokenSeconds * 1000),
    });
    return token;
  }

  /** The claims of a person's access token. */
  function userClaims(user: repo.UserRow, scope: string): Parameters<typeof issueAccessToken>[1] {
    return {
      sub: user.id,
      kind: "user",
      scope,
      role: user.role,
      name: user.username,
      ...(user.fhirUser ? { fhirUser: user.fhirUser } : {}),
      ...(user.patient ? { patient: user.patient } : {}),
    };
  }

  async function userTokens(user: repo.UserRow, scope: string): Promise<TokenResponse> {
    const { token, expiresIn } = await issue(userClaims(user, scope));
    const response: TokenResponse = {
      access_token: token,
      token_type: "Bearer",
      expires_in: expiresIn,
      scope,
      // SMART: the launch context travels in the token response too.
      ...(user.patient ? { patient: user.patient } : {}),
    };
    if (parseScopes(scope).other.includes("offline_access")) {
      response.refresh_token = await newRefresh(user.id, scope, crypto.randomUUID());
    }
    return response;
  }

  /**
   * Per-address login attempts in the last minute (shared by replicas through the rate limiter's
   * Redis when there is one); throws TooManyAttempts past the limit.
   */
  const limiter = options.limiter ?? createRateLimiter({
    limits: { read: 0, write: 0, upload: 0, login: a.loginRatePerMinute },
    log: () => {},
    now,
  });
  async function throttle(address: string): Promise<void> {
    try {
      await limiter.check(`address:${address}`, "login");
    } catch (e) {
      if (e instanceof RateLimited) {
        throw new TooManyAttempts(Number(e.headers["Retry-After"]) || 60);
      }
      throw e;
    }
  }

  async function passwordGrant(form: URLSearchParams, address: string): Promise<TokenResponse> {
    const user = await verifyLogin(form.get("username") ?? "", form.get("password") ?? "", address);
    const allowed = accountScopes(user.role, user.patient);
    const requested = form.get("scope")?.trim();
    const scope = requested ? narrowScopes(requested, allowed).granted : allowed;
    if (!scope) throw new OAuthError(400, "invalid_scope", `None of "${requested}" is allowed`);
    return await userTokens(user, scope);
  }

  /** A person's username and password checked: the account, or an OAuthError / TooManyAttempts. */
  async function verifyLogin(
    name: string,
    password: string,
    address: string,
  ): Promise<repo.UserRow> {
    await throttle(address);
    const username = name.trim().toLowerCase();
    if (!username || !password) {
      throw new OAuthError(400, "invalid_request", "username and password are required");
    }
    const invalid = () => new OAuthError(400, "invalid_grant", "Wrong username or password");
    // Not a possible username (control characters, NUL, too long): no lookup at all.
    if (!USERNAME.test(username) || password.length > 1024) {
      await verifyPassword(password.slice(0, 1024), await dummyHash(a.passwordIterations));
      throw invalid();
    }
    const user = await repo.findUserByName(db, username);
    if (!user) {
      // The same work as a real check, so timing does not tell which usernames exist.
      await verifyPassword(password, await dummyHash(a.passwordIterations));
      throw invalid();
    }
    if (user.lockedUntil && user.lockedUntil.getTime() > now()) {
      throw new OAuthError(
        400,
        "invalid_grant",
        `The account is locked after ${a.loginMaxFailures} failed logins; try again later`,
      );
    }
    if (!(await verifyPassword(password, user.passwordHash))) {
      await repo.recordFailedLogin(db, user.id, a.loginMaxFailures, a.loginLockSeconds * 1000);
      throw invalid();
    }
    if (user.disabled) throw new OAuthError(400, "invalid_grant", "The account is disabled");
    await repo.recordLogin(db, user.id);
    if (needsRehash(user.passwordHash, a.passwordIterations)) {
      await repo.updateUser(db, user.id, {
        passwordHash: await hashPassword(password, a.passwordIterations),
      });
    }
    return user;
  }

  async function refreshGrant(
    form: URLSearchParams,
    authorization: string | undefined,
  ): Promise<TokenResponse> {
    const presented = form.get("refresh_token") ?? "";
    if (!presented) throw new OAuthError(400, "invalid_request", "refresh_token is required");
    const hash = await sha256(presented);
    const outcome = await db.transaction(async (tx) => {
      const row = await repo.takeRefresh(tx, hash);
      if (!row) return { error: "The refresh token is not known" } as const;
      if (row.revokedAt) return { error: "The refresh token was revoked" } as const;
      if (row.usedAt) {
        // Reuse of a rotated token: someone else may hold it. End the whole family.
        await repo.revokeFamily(tx, row.family);
        return { error: "The refresh token was already used; its sessions are revoked" } as const;
      }
      if (row.expiresAt.getTime() <= now()) return { error: "The refresh token expired" } as const;
      const user = await repo.findUser(tx, row.userId);
      if (!user || user.disabled) return { error: "The account is disabled" } as const;
      return { row, user } as const;
    });
    if ("error" in outcome) throw new OAuthError(400, "invalid_grant", outcome.error!);
    const { row, user } = outcome;
    // A token of an app's grant (authorization code) keeps its client and launch context.
    const grant = await findGrant(db, row.family);
    if (grant) return await codes.refresh(row, grant, form, authorization);
    const requested = form.get("scope")?.trim();
    // A refresh may narrow the scope, never widen it (and never past what the role allows now).
    let scope = narrowScopes(row.scope, accountScopes(user.role, user.patient)).granted;
    if (requested) {
      const asked = narrowScopes(requested, row.scope);
      if (asked.refused.length) {
        throw new OAuthError(
          400,
          "invalid_scope",
          `Not granted before: ${asked.refused.join(" ")}`,
        );
      }
      scope = narrowScopes(requested, scope).granted;
    }
    if (!scope) throw new OAuthError(400, "invalid_scope", `None of "${requested}" is allowed`);
    const { token, expiresIn } = await issue(userClaims(user, scope));
    return {
      access_token: token,
      token_type: "Bearer",
      expires_in: expiresIn,
      scope,
      ...(user.patient ? { patient: user.patient } : {}),
      refresh_token: await newRefresh(user.id, scope, row.family),
    };
  }

  async function clientCredentialsGrant(form: URLSearchParams): Promise<TokenResponse> {
    if (form.get("client_assertion_type") !== ASSERTION_TYPE) {
      throw new OAuthError(
        400,
        "invalid_client",
        `client_assertion_type must be ${ASSERTION_TYPE}`,
      );
    }
    const assertion = form.get("client_assertion") ?? "";
    if (!assertion) throw new OAuthError(400, "invalid_client", "client_assertion is required");
    const client = await verifyClientAssertion(assertion, {
      findClient: (id) => repo.findClient(db, id),
      tokenUrl,
      jti: jtis,
      now,
      ...(fetchJwks ? { fetchJwks } : {}),
    });
    const requested = form.get("scope")?.trim();
    if (!requested) throw new OAuthError(400, "invalid_scope", "scope is required");
    const { granted, refused } = narrowScopes(requested, client.scope);
    if (!granted) {
      throw new OAuthError(
        400,
        "invalid_scope",
        `None of the requested scopes is registered for ${client.clientId}: ${refused.join(" ")}`,
      );
    }
    const { token, expiresIn } = await issue({
      sub: client.clientId,
      kind: "client",
      client_id: client.clientId,
      scope: granted,
    });
    return { access_token: token, token_type: "Bearer", expires_in: expiresIn, scope: granted };
  }

  const users = createUserAdmin(db, a.passwordIterations);
  const clients = createClientAdmin(db);
  const clientAuth = {
    findClient: (id: string) => findAppClient(db, origin, id),
    tokenUrl,
    jti: jtis,
    now,
    ...(fetchJwks ? { fetchJwks } : {}),
  };
  /** Drops cached verifications of a revoked grant's tokens (this replica's). */
  const forgetGrant = (grantId: string) => {
    for (const [token, v] of verified) if (v.grant === grantId) verified.delete(token);
  };
  const codes = createCodeGrant({
    db,
    ring,
    idRing,
    issuer: a.issuer,
    audience,
    accessTokenSeconds: a.accessTokenSeconds,
    refreshTokenSeconds: a.refreshTokenSeconds,
    now,
    clientAuth,
    issue,
    newRefresh,
    revoked: forgetGrant,
  });
  const authorizer = createAuthorizer({
    db,
    origin,
    audience,
    issuer: a.issuer,
    now,
    sessionSeconds: a.sessionSeconds,
  });

  return {
    enabled: a.enabled,
    issuer: a.issuer,
    audience,
    tokenUrl,
    ring,
    idRing,
    async jwks() {
      const [access, id] = await Promise.all([ring.jwks(), idRing.jwks()]);
      return { keys: [...access.keys, ...id.keys] };
    },
    users,
    clients,
    authorizer,
    codes,
    verifyLogin,
    async authenticateClient(form, authorization) {
      return await authenticateClient(form, authorization, { ...clientAuth, allowPublic: false });
    },
    async authenticate(authorization) {
      if (!a.enabled) return internalCaller();
      if (!authorization) throw unauthorized("A bearer token is required");
      const m = /^Bearer\s+([A-Za-z0-9\-._~+/]+=*)\s*$/i.exec(authorization);
      if (!m) throw unauthorized("The Authorization header is not a Bearer token", "invalid_token");
      // A token already verified is not verified again (an ES256 check per request costs more
      // than the rest of a read): the same string maps to the same claims until it expires.
      const known = verified.get(m[1]);
      if (known && known.exp * 1000 > now()) {
        // A token of an app's grant is checked against its grant again now and then, so that a
        // revocation on another replica reaches this one within GRANT_RECHECK_MS.
        if (!known.grant || now() - known.checkedAt < GRANT_RECHECK_MS) return known.caller;
        const grant = await findGrant(db, known.grant);
        if (grant && !grant.revokedAt) {
          known.checkedAt = now();
          return known.caller;
        }
        verified.delete(m[1]);
        throw unauthorized("The token was revoked", "invalid_token");
      }
      if (known) verified.delete(m[1]);
      try {
        const claims = await verifyAccessToken(ring, m[1], {
          issuer: a.issuer,
          audience,
          now,
        });
        const caller: Caller = {
          kind: claims.kind,
          sub: claims.sub,
          name: claims.name,
          role: claims.role,
          clientId: claims.client_id,
          patient: claims.patient,
          scope: claims.scope,
          scopes: parseScopes(claims.scope),
        };
        // A token of an app's grant dies with it (a reused code, a revoked refresh family).
        if (claims.grant_id) {
          const grant = await findGrant(db, claims.grant_id);
          if (!grant || grant.revokedAt) {
            throw unauthorized("The token was revoked", "invalid_token");
          }
        }
        if (verified.size >= VERIFIED_CACHE) verified.delete(verified.keys().next().value!);
        verified.set(m[1], { caller, exp: claims.exp, grant: claims.grant_id, checkedAt: now() });
        return caller;
      } catch (e) {
        if (e instanceof TokenError) throw unauthorized(e.message, "invalid_token");
        throw e;
      }
    },
    async token(form, address, authorization) {
      const grant = form.get("grant_type");
      switch (grant) {
        case "authorization_code":
          return await codes.exchange(form, authorization);
        case "password":
          if (a.passwordGrant) return await passwordGrant(form, address);
          break;
        case "refresh_token":
          return await refreshGrant(form, authorization);
        case "client_credentials":
          return await clientCredentialsGrant(form);
      }
      const supported = [
        "authorization_code",
        ...(a.passwordGrant ? ["password"] : []),
        "refresh_token",
        "client_credentials",
      ];
      throw new OAuthError(
        400,
        grant ? "unsupported_grant_type" : "invalid_request",
        grant
          ? `grant_type ${grant} is not supported (${supported.join(", ")})`
          : "grant_type is required",
      );
    },
    async revoke(token) {
      const family = await repo.familyOf(db, await sha256(token));
      if (family) {
        await repo.revokeFamily(db, family);
        forgetGrant(family);
        return;
      }
      // An access token of an app's grant: the grant ends, and every token issued from it.
      try {
        const claims = await verifyAccessToken(ring, token, { issuer: a.issuer, audience, now });
        if (claims.grant_id) {
          await repo.revokeFamily(db, claims.grant_id);
          forgetGrant(claims.grant_id);
        }
      } catch (e) {
        if (!(e instanceof TokenError)) throw e;
      }
    },
    async workerToken() {
      return (await issue({
        sub: "in-process-worker",
        kind: "client",
        client_id: "in-process-worker",
        scope: WORKER_SCOPE,
      })).token;
    },
    async ensureFirstAdmin(log) {
      await ensureFirstAdmin(db, config, users, log);
    },
  };
}
