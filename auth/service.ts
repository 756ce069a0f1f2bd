/**
 * @module The authorization server and the bearer-token check of the resource server, in one:
 * `POST /auth/token` grants (password for people, refresh_token with rotation, client_credentials
 * with a private_key_jwt assertion for systems), revocation, accounts and clients for admins, the
 * JWKS, and `authenticate()` that turns an Authorization header into a `Caller`.
 */
import type { Config } from "../config.ts";
import type { Db } from "../db/db.ts";
import type { Logger } from "../inference/log.ts";
import { type Caller, internalCaller, ROLE_SCOPES, unauthorized, WORKER_SCOPE } from "./access.ts";
import { verifyClientAssertion } from "./client_assertion.ts";
import { OAuthError, TokenError } from "./errors.ts";
import { issueAccessToken, verifyAccessToken } from "./jwt.ts";
import { createKeyRing, type KeyRing } from "./keys.ts";
import { hashPassword, needsRehash, verifyPassword } from "./passwords.ts";
import * as repo from "./repo.ts";
import { narrowScopes, parseScopes } from "./scopes.ts";

export interface TokenResponse {
  access_token: string;
  token_type: "Bearer";
  expires_in: number;
  scope: string;
  refresh_token?: string;
  patient?: string;
}

export interface AuthService {
  readonly enabled: boolean;
  readonly issuer: string;
  /** Tokens' audience: the FHIR base URL. */
  readonly audience: string;
  readonly tokenUrl: string;
  readonly ring: KeyRing;
  /** The Caller of an `Authorization` header; throws a 401 AuthError. With AUTH=off: internal. */
  authenticate(authorization: string | undefined): Promise<Caller>;
  /** `POST /auth/token` with a form body; throws OAuthError. */
  token(form: URLSearchParams, address: string): Promise<TokenResponse>;
  /** RFC 7009: revokes a refresh token's family (unknown tokens are ignored, as the RFC says). */
  revoke(token: string): Promise<void>;
  /** A short-lived token for the service's own in-process worker. */
  workerToken(): Promise<string>;
  /** Creates the first admin from config when there is no admin yet. */
  ensureFirstAdmin(log: Logger): Promise<void>;
  users: UserAdmin;
  clients: ClientAdmin;
}

export interface UserView {
  id: string;
  username: string;
  displayName: string | null;
  role: repo.Role;
  fhirUser: string | null;
  disabled: boolean;
  lockedUntil: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface UserInput {
  username?: string;
  password?: string;
  displayName?: string | null;
  role?: repo.Role;
  fhirUser?: string | null;
  disabled?: boolean;
}

export interface UserAdmin {
  list(): Promise<UserView[]>;
  get(id: string): Promise<UserView | undefined>;
  create(input: UserInput): Promise<UserView>;
  update(id: string, input: UserInput): Promise<UserView | undefined>;
  remove(id: string): Promise<boolean>;
}

export interface ClientInput {
  clientId?: string;
  name?: string;
  jwks?: { keys: JsonWebKey[] };
  jwksUri?: string;
  scope?: string;
  disabled?: boolean;
}

export interface ClientAdmin {
  list(): Promise<ReturnType<typeof clientView>[]>;
  get(id: string): Promise<ReturnType<typeof clientView> | undefined>;
  put(input: ClientInput): Promise<ReturnType<typeof clientView>>;
  remove(id: string): Promise<boolean>;
}

/** A bad account or client body: answered 400 with the message. */
export class InputError extends Error {}

/** Too many logins from one address: answered 429 with Retry-After. */
export class TooManyAttempts extends Error {
  constructor(readonly retryAfterSeconds: number) {
    super("Too many login attempts from this address; try again later");
  }
}

const ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/** Verified tokens kept (each a few hundred bytes). */
const VERIFIED_CACHE = 10_000;
const USERNAME = /^[a-z0-9][a-z0-9._@-]{1,63}$/;

export function createAuthService(
  db: Db,
  config: Readonly<Config>,
  options: { now?: () => number } = {},
): AuthService {
  const a = config.auth;
  const now = options.now ?? Date.now;
  const ring = createKeyRing(repo.signingKeyRepo(db));
  const origin = new URL(config.publicUrl).origin;
  const audience = `${config.publicUrl}/fhir`;
  const tokenUrl = `${origin}/auth/token`;
  const jtis = repo.jtiStore(db);
  const attempts = new Map<string, number[]>();
  /** Tokens verified, oldest first (Map order), with their expiry in seconds. */
  const verified = new Map<string, { caller: Caller; exp: number }>();

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

  async function newRefresh(userId: string, scope: string, family: string): Promise<string> {
    const token = base64url(crypto.getRandomValues(new Uint8Array(32)));
    await repo.insertRefresh(db, {
      tokenHash: await sha256(token),
      family,
      userId,
      scope,
      expiresAt: new Date(now() + a.refreshTokenSeconds * 1000),
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
    };
  }

  async function userTokens(user: repo.UserRow, scope: string): Promise<TokenResponse> {
    const { token, expiresIn } = await issue(userClaims(user, scope));
    const response: TokenResponse = {
      access_token: token,
      token_type: "Bearer",
      expires_in: expiresIn,
      scope,
    };
    if (parseScopes(scope).other.includes("offline_access")) {
      response.refresh_token = await newRefresh(user.id, scope, crypto.randomUUID());
    }
    return response;
  }

  /** Per-address login attempts in the last minute; throws TooManyAttempts past the limit. */
  function throttle(address: string): void {
    const t = now();
    const recent = (attempts.get(address) ?? []).filter((at) => t - at < 60_000);
    if (recent.length >= a.loginRatePerMinute) {
      attempts.set(address, recent);
      throw new TooManyAttempts(Math.max(1, Math.ceil((recent[0] + 60_000 - t) / 1000)));
    }
    recent.push(t);
    attempts.set(address, recent);
    if (attempts.size > 10_000) attempts.clear();
  }

  async function passwordGrant(form: URLSearchParams, address: string): Promise<TokenResponse> {
    throttle(address);
    const username = (form.get("username") ?? "").trim().toLowerCase();
    const password = form.get("password") ?? "";
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
    const allowed = ROLE_SCOPES[user.role];
    const requested = form.get("scope")?.trim();
    const scope = requested ? narrowScopes(requested, allowed).granted : allowed;
    if (!scope) throw new OAuthError(400, "invalid_scope", `None of "${requested}" is allowed`);
    return await userTokens(user, scope);
  }

  async function refreshGrant(form: URLSearchParams): Promise<TokenResponse> {
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
    const requested = form.get("scope")?.trim();
    // A refresh may narrow the scope, never widen it (and never past what the role allows now).
    let scope = narrowScopes(row.scope, ROLE_SCOPES[user.role]).granted;
    if (requested) scope = narrowScopes(requested, scope).granted;
    if (!scope) throw new OAuthError(400, "invalid_scope", `None of "${requested}" is allowed`);
    const { token, expiresIn } = await issue(userClaims(user, scope));
    return {
      access_token: token,
      token_type: "Bearer",
      expires_in: expiresIn,
      scope,
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

  const users: UserAdmin = {
    async list() {
      return (await repo.listUsers(db)).map(userView);
    },
    async get(id) {
      const u = await repo.findUser(db, id);
      return u && userView(u);
    },
    async create(input) {
      const username = (input.username ?? "").trim().toLowerCase();
      if (!USERNAME.test(username)) {
        throw new InputError(
          "username: 2–64 characters, lower-case letters, digits and . _ @ -, starting with a " +
            "letter or digit",
        );
      }
      checkPassword(input.password);
      const role = checkRole(input.role ?? "viewer");
      const id = crypto.randomUUID();
      const ok = await repo.insertUser(db, {
        id,
        username,
        displayName: input.displayName ?? null,
        role,
        passwordHash: await hashPassword(input.password!, a.passwordIterations),
        fhirUser: checkFhirUser(input.fhirUser),
      });
      if (!ok) throw new InputError(`username ${username} is taken`);
      return userView((await repo.findUser(db, id))!);
    },
    async update(id, input) {
      if (input.username !== undefined) throw new InputError("username cannot be changed");
      if (input.password !== undefined) checkPassword(input.password);
      const role = input.role === undefined ? undefined : checkRole(input.role);
      const before = await repo.findUser(db, id);
      if (!before) return undefined;
      if (
        before.role === "admin" && (role && role !== "admin" || input.disabled) &&
        await repo.countAdmins(db) <= 1
      ) {
        throw new InputError("The last enabled admin cannot be demoted or disabled");
      }
      await repo.updateUser(db, id, {
        displayName: input.displayName,
        role,
        fhirUser: input.fhirUser === undefined ? undefined : checkFhirUser(input.fhirUser),
        disabled: input.disabled,
        passwordHash: input.password === undefined
          ? undefined
          : await hashPassword(input.password, a.passwordIterations),
      });
      // A new password, a new role or a disabled account ends the sessions in flight.
      if (input.password !== undefined || role || input.disabled) {
        await repo.revokeUserTokens(db, id);
      }
      return userView((await repo.findUser(db, id))!);
    },
    async remove(id) {
      const before = await repo.findUser(db, id);
      if (!before) return false;
      if (before.role === "admin" && await repo.countAdmins(db) <= 1) {
        throw new InputError("The last enabled admin cannot be deleted");
      }
      return await repo.deleteUser(db, id);
    },
  };

  const clients: ClientAdmin = {
    async list() {
      return (await repo.listClients(db)).map(clientView);
    },
    async get(id) {
      const c = await repo.findClient(db, id);
      return c && clientView(c);
    },
    async put(input) {
      const clientId = (input.clientId ?? "").trim();
      if (!/^[A-Za-z0-9._:-]{3,128}$/.test(clientId)) {
        throw new InputError("clientId: 3–128 characters of letters, digits and . _ : -");
      }
      if (!input.jwks && !input.jwksUri) throw new InputError("jwks or jwksUri is required");
      if (input.jwks && !Array.isArray(input.jwks.keys)) {
        throw new InputError('jwks must be a JWK Set: {"keys": [...]}');
      }
      if (input.jwks?.keys.some((k) => "d" in k || "p" in k || "k" in k)) {
        throw new InputError("jwks must hold public keys only");
      }
      if (input.jwksUri && !/^https?:\/\//.test(input.jwksUri)) {
        throw new InputError("jwksUri must be an http(s) URL");
      }
      const scope = (input.scope ?? "").trim();
      const parsed = parseScopes(scope);
      if (!parsed.grants.length || parsed.invalid.length) {
        throw new InputError(
          `scope: system/… scopes separated by spaces${
            parsed.invalid.length ? `; invalid: ${parsed.invalid.join(" ")}` : ""
          }`,
        );
      }
      if (parsed.grants.some((g) => g.context !== "system")) {
        throw new InputError("A backend client is granted system/… scopes only");
      }
      await repo.upsertClient(db, {
        clientId,
        name: input.name,
        jwks: input.jwks,
        jwksUri: input.jwksUri,
        scope,
        disabled: input.disabled,
      });
      return clientView((await repo.findClient(db, clientId))!);
    },
    async remove(id) {
      return await repo.deleteClient(db, id);
    },
  };

  return {
    enabled: a.enabled,
    issuer: a.issuer,
    audience,
    tokenUrl,
    ring,
    users,
    clients,
    async authenticate(authorization) {
      if (!a.enabled) return internalCaller();
      if (!authorization) throw unauthorized("A bearer token is required");
      const m = /^Bearer\s+([A-Za-z0-9\-._~+/]+=*)\s*$/i.exec(authorization);
      if (!m) throw unauthorized("The Authorization header is not a Bearer token", "invalid_token");
      // A token already verified is not verified again (an ES256 check per request costs more
      // than the rest of a read): the same string maps to the same claims until it expires.
      const known = verified.get(m[1]);
      if (known && known.exp * 1000 > now()) return known.caller;
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
        if (verified.size >= VERIFIED_CACHE) verified.delete(verified.keys().next().value!);
        verified.set(m[1], { caller, exp: claims.exp });
        return caller;
      } catch (e) {
        if (e instanceof TokenError) throw unauthorized(e.message, "invalid_token");
        throw e;
      }
    },
    async token(form, address) {
      const grant = form.get("grant_type");
      switch (grant) {
        case "password":
          return await passwordGrant(form, address);
        case "refresh_token":
          return await refreshGrant(form);
        case "client_credentials":
          return await clientCredentialsGrant(form);
        default:
          throw new OAuthError(
            400,
            grant ? "unsupported_grant_type" : "invalid_request",
            grant
              ? `grant_type ${grant} is not supported (password, refresh_token, client_credentials)`
              : "grant_type is required",
          );
      }
    },
    async revoke(token) {
      const family = await repo.familyOf(db, await sha256(token));
      if (family) await repo.revokeFamily(db, family);
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
      if (await repo.countAdmins(db) > 0) return;
      if (!a.adminPassword && a.enabled && !config.databaseUrl && config.pgliteDir !== "memory") {
        // The embedded default on first start: an admin with a random password, written to a
        // file only its owner can read (never to the log), like an appliance's first boot.
        const password = base64url(crypto.getRandomValues(new Uint8Array(18)));
        const file = `${config.pgliteDir.replace(/\/+$/, "")}/../initial-admin-password`;
        await users.create({ username: a.adminUsername, password, role: "admin" });
        await Deno.writeTextFile(file, `${a.adminUsername}\n${password}\n`, { mode: 0o600 });
        log(
          "warn",
          "first start: admin account created; its password is in the file named here " +
            "(log in, change it with PATCH /auth/users/{id}, then delete the file)",
          {
            username: a.adminUsername,
            file: new URL(file, `file://${Deno.cwd()}/`).pathname,
          },
        );
        return;
      }
      if (!a.adminPassword) {
        if (a.enabled) {
          log(
            "warn",
            "no admin account: set ADMIN_PASSWORD (and ADMIN_USERNAME) and restart to create " +
              "the first one",
          );
        }
        return;
      }
      await users.create({ username: a.adminUsername, password: a.adminPassword, role: "admin" })
        .catch((e) => {
          if (!(e instanceof InputError)) throw e;
          log("error", `could not create the first admin: ${e.message}`);
        });
      log("info", "first admin account created", { username: a.adminUsername });
    },
  };
}

function userView(u: repo.UserRow): UserView {
  return {
    id: u.id,
    username: u.username,
    displayName: u.displayName,
    role: u.role,
    fhirUser: u.fhirUser,
    disabled: u.disabled,
    lockedUntil: u.lockedUntil && u.lockedUntil.getTime() > Date.now()
      ? u.lockedUntil.toISOString()
      : null,
    createdAt: u.createdAt.toISOString(),
    updatedAt: u.updatedAt.toISOString(),
  };
}

function clientView(c: Awaited<ReturnType<typeof repo.findClient>> & object) {
  return {
    clientId: c.clientId,
    name: c.name ?? null,
    jwks: c.jwks ?? null,
    jwksUri: c.jwksUri ?? null,
    scope: c.scope,
    disabled: Boolean(c.disabled),
    createdAt: c.createdAt.toISOString(),
  };
}

function checkPassword(password: string | undefined): void {
  if (typeof password !== "string" || password.length < 12 || password.length > 1024) {
    throw new InputError("password: 12 to 1024 characters");
  }
}

function checkRole(role: string): repo.Role {
  if (!repo.ROLES.includes(role as repo.Role)) {
    throw new InputError(`role: one of ${repo.ROLES.join(", ")}`);
  }
  return role as repo.Role;
}

function checkFhirUser(v: string | null | undefined): string | null {
  if (v === undefined || v === null || v === "") return null;
  if (!/^(Practitioner|Patient|RelatedPerson|Person)\/[A-Za-z0-9\-.]{1,64}$/.test(v)) {
    throw new InputError("fhirUser: Practitioner/…, Patient/…, RelatedPerson/… or Person/…");
  }
  return v;
}

// A valid hash of a random password, checked when the username is unknown (same cost).
const dummies = new Map<number, Promise<string>>();
function dummyHash(iterations: number): Promise<string> {
  let hash = dummies.get(iterations);
  if (!hash) dummies.set(iterations, hash = hashPassword(crypto.randomUUID(), iterations));
  return hash;
}

async function sha256(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function base64url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(
    /=+$/,
    "",
  );
}
