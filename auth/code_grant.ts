/**
 * @module The token endpoint's side of SMART App Launch: `authorization_code` (the client
 * authenticated by its registered method, the code taken once under a row lock — a second use
 * revokes the grant and every token issued from it —, its client, redirect URI and expiry checked,
 * PKCE S256 verified), the token response with the launch context (`patient`, `encounter`,
 * `fhirContext`, `need_patient_banner`, `smart_style_url`) and an `id_token` for `openid`;
 * refreshes of such grants (the context kept, scopes narrowed never widened, `online_access`
 * ending with the browser session); and RFC 7662 introspection.
 */
import type { Db } from "../db/db.ts";
import type { RegisteredClient } from "./client_assertion.ts";
import { authenticateClient, type ClientAuthOptions, sha256Hex } from "./clients.ts";
import { OAuthError, TokenError } from "./errors.ts";
import { issueIdToken } from "./id_token.ts";
import { type AccessClaimsInput, verifyAccessToken } from "./jwt.ts";
import type { KeyRing } from "./keys.ts";
import * as repo from "./repo.ts";
import * as smartRepo from "./smart_repo.ts";
import { grantableScopes, hasScope, intersectScopes } from "./smart_scopes.ts";
import { narrowScopes } from "./scopes.ts";
import { base64url } from "jose";

/** A token response (RFC 6749 §5.1 with SMART's launch-context parameters). */
export interface SmartTokenResponse {
  access_token: string;
  token_type: "Bearer";
  expires_in: number;
  scope: string;
  refresh_token?: string;
  id_token?: string;
  patient?: string;
  encounter?: string;
  fhirContext?: { reference: string }[];
  need_patient_banner?: boolean;
  smart_style_url?: string;
  intent?: string;
}

export interface CodeGrantDeps {
  db: Db;
  /** Access tokens' (ES256). */
  ring: KeyRing;
  /** ID tokens' (RS256, OpenID Connect's default). */
  idRing: KeyRing;
  issuer: string;
  audience: string;
  accessTokenSeconds: number;
  refreshTokenSeconds: number;
  now: () => number;
  clientAuth: Omit<ClientAuthOptions, "allowPublic">;
  issue(claims: AccessClaimsInput): Promise<{ token: string; expiresIn: number }>;
  newRefresh(userId: string, scope: string, family: string, expiresAt?: Date): Promise<string>;
  /** Called when a grant is revoked here, so cached verifications of its tokens are dropped. */
  revoked(grantId: string): void;
}

export function createCodeGrant(d: CodeGrantDeps) {
  const { db } = d;
  const invalid = (why: string) => new OAuthError(400, "invalid_grant", why);

  async function tokens(
    grant: smartRepo.GrantRow,
    user: repo.UserRow,
    scope: string,
    first?: { nonce: string | null },
  ): Promise<SmartTokenResponse> {
    const c = grant.context;
    const claims: AccessClaimsInput = {
      sub: user.id,
      kind: "user",
      scope,
      role: user.role,
      name: user.username,
      client_id: grant.clientId,
      grant_id: grant.id,
      ...(user.fhirUser ? { fhirUser: user.fhirUser } : {}),
      ...(c.patient ?? user.patient ? { patient: c.patient ?? user.patient! } : {}),
    };
    const { token, expiresIn } = await d.issue(claims);
    const out: SmartTokenResponse = {
      access_token: token,
      token_type: "Bearer",
      expires_in: expiresIn,
      scope,
      ...(c.patient ? { patient: c.patient } : {}),
      ...(c.encounter ? { encounter: c.encounter } : {}),
      ...(c.fhirContext?.length ? { fhirContext: c.fhirContext } : {}),
      ...(c.needPatientBanner !== undefined ? { need_patient_banner: c.needPatientBanner } : {}),
      ...(c.smartStyleUrl ? { smart_style_url: c.smartStyleUrl } : {}),
      ...(c.intent ? { intent: c.intent } : {}),
    };
    if (first && hasScope(scope, "openid")) {
      const fhirUser = user.fhirUser ?? (user.patient ? `Patient/${user.patient}` : undefined);
      out.id_token = await issueIdToken(d.idRing, {
        issuer: d.issuer,
        clientId: grant.clientId,
        sub: user.id,
        ...(fhirUser && hasScope(scope, "fhirUser")
          ? { fhirUser: `${d.audience}/${fhirUser}` }
          : {}),
        nonce: first.nonce,
        authTime: grant.authTime,
        accessToken: token,
        ...(hasScope(scope, "profile")
          ? { profile: { name: user.displayName ?? user.username, username: user.username } }
          : {}),
        ttlSeconds: d.accessTokenSeconds,
        now: d.now,
      });
    }
    const offline = hasScope(scope, "offline_access");
    if (offline || hasScope(scope, "online_access")) {
      let expiresAt = new Date(d.now() + d.refreshTokenSeconds * 1000);
      if (!offline && grant.session) {
        // online_access: no longer than the browser session that approved it.
        const session = await smartRepo.findSession(db, grant.session);
        if (session && session.expiresAt < expiresAt) expiresAt = session.expiresAt;
      }
      out.refresh_token = await d.newRefresh(user.id, scope, grant.id, expiresAt);
    }
    return out;
  }

  /** The account of a grant, with the scopes its role still allows. */
  async function userOf(grant: smartRepo.GrantRow, scope: string) {
    const user = await repo.findUser(db, grant.userId);
    if (!user || user.disabled) throw invalid("The account is disabled");
    const now = intersectScopes(scope, grantableScopes(user.role, user.patient));
    if (!now) throw new OAuthError(400, "invalid_scope", "The account may no longer grant these");
    return { user, scope: now };
  }

  /** The client of a refresh: confidential clients authenticate; public ones may name theirs. */
  async function refreshClient(
    grant: smartRepo.GrantRow,
    form: URLSearchParams,
    authorization: string | undefined,
  ): Promise<void> {
    const client = await d.clientAuth.findClient(grant.clientId);
    if (!client) throw invalid("The app is no longer registered");
    if ((client.authMethod ?? "private_key_jwt") === "none") {
      const named = form.get("client_id");
      if (named !== null && named !== grant.clientId) {
        throw invalid("The refresh token was issued to another client");
      }
      return;
    }
    const who = await authenticateClient(form, authorization, {
      ...d.clientAuth,
      allowPublic: false,
    });
    if (who.clientId !== grant.clientId) {
      throw invalid("The refresh token was issued to another client");
    }
  }

  return {
    /** `grant_type=authorization_code`. */
    async exchange(
      form: URLSearchParams,
      authorization: string | undefined,
    ): Promise<SmartTokenResponse> {
      const client: RegisteredClient = await authenticateClient(form, authorization, {
        ...d.clientAuth,
        allowPublic: true,
      });
      const code = form.get("code");
      if (!code) throw new OAuthError(400, "invalid_request", "code is required");
      const hash = await sha256Hex(code);
      const outcome = await db.transaction(async (tx) => {
        const row = await smartRepo.takeCode(tx, hash);
        if (!row) return { error: "The code is not known" } as const;
        if (row.usedAt) {
          // OAuth 2.1 §4.1.3: a code used twice was stolen or replayed; end what it gave.
          await repo.revokeFamily(tx, row.grantId);
          return { error: "The code was already used; its tokens are revoked", grant: row.grantId };
        }
        return { row } as const;
      });
      if ("error" in outcome) {
        if (outcome.grant) d.revoked(outcome.grant);
        throw invalid(outcome.error!);
      }
      const { row } = outcome;
      if (row.clientId !== client.clientId) throw invalid("The code was issued to another client");
      if (row.expiresAt.getTime() <= d.now()) throw invalid("The code expired");
      if (form.get("redirect_uri") !== row.redirectUri) {
        throw invalid("redirect_uri differs from the authorization request's");
      }
      const verifier = form.get("code_verifier");
      if (!verifier) throw new OAuthError(400, "invalid_request", "code_verifier is required");
      if (!/^[A-Za-z0-9\-._~]{43,128}$/.test(verifier)) {
        throw invalid("code_verifier must be 43 to 128 unreserved characters (RFC 7636)");
      }
      const digest = new Uint8Array(
        await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)),
      );
      if (base64url.encode(digest) !== row.codeChallenge) {
        throw invalid("code_verifier does not match the code_challenge (PKCE)");
      }
      const grant = await smartRepo.findGrant(db, row.grantId);
      if (!grant || grant.revokedAt) throw invalid("The grant was revoked");
      const { user, scope } = await userOf(grant, grant.scope);
      return await tokens(grant, user, scope, { nonce: row.nonce });
    },

    /** A refresh of a grant's token (`row` already taken by the refresh grant). */
    async refresh(
      row: repo.RefreshRow,
      grant: smartRepo.GrantRow,
      form: URLSearchParams,
      authorization: string | undefined,
    ): Promise<SmartTokenResponse> {
      await refreshClient(grant, form, authorization);
      if (grant.revokedAt) throw invalid("The grant was revoked");
      if (!hasScope(row.scope, "offline_access") && grant.session) {
        const s = await smartRepo.findSession(db, grant.session);
        if (!s || s.revokedAt || s.expiresAt.getTime() <= d.now()) {
          throw invalid("online_access ended with the browser session");
        }
      }
      let scope = row.scope;
      const requested = form.get("scope")?.trim();
      if (requested) {
        const { granted, refused } = narrowScopes(requested, row.scope);
        if (refused.length) {
          throw new OAuthError(400, "invalid_scope", `Not granted before: ${refused.join(" ")}`);
        }
        scope = granted;
      }
      const { user, scope: allowed } = await userOf(grant, scope);
      return await tokens(grant, user, allowed);
    },

    /** RFC 7662: what a token is, or `{active: false}`. */
    async introspect(token: string): Promise<Record<string, unknown>> {
      const inactive = { active: false };
      if (!token || token.length > 16_384) return inactive;
      try {
        const claims = await verifyAccessToken(d.ring, token, {
          issuer: d.issuer,
          audience: d.audience,
          now: d.now,
        });
        if (claims.grant_id) {
          const grant = await smartRepo.findGrant(db, claims.grant_id);
          if (!grant || grant.revokedAt) return inactive;
        }
        if (claims.kind === "user") {
          const user = await repo.findUser(db, claims.sub);
          if (!user || user.disabled) return inactive;
        }
        return {
          active: true,
          scope: claims.scope,
          client_id: claims.client_id ?? (claims.kind === "client" ? claims.sub : undefined),
          sub: claims.sub,
          username: claims.kind === "user" ? claims.name : undefined,
          exp: claims.exp,
          iat: claims.iat,
          iss: claims.iss,
          aud: claims.aud,
          token_type: "Bearer",
          patient: claims.patient,
          fhirUser: claims.fhirUser ? `${d.audience}/${claims.fhirUser}` : undefined,
        };
      } catch (e) {
        if (!(e instanceof TokenError)) throw e;
      }
      const r = await smartRepo.findRefresh(db, await sha256Hex(token));
      if (!r || !r.active || r.expiresAt.getTime() <= d.now()) return inactive;
      return {
        active: true,
        scope: r.scope,
        client_id: r.clientId ?? undefined,
        sub: r.userId,
        exp: Math.floor(r.expiresAt.getTime() / 1000),
        iat: Math.floor(r.createdAt.getTime() / 1000),
        iss: d.issuer,
        token_type: "refresh_token",
        patient: r.context.patient,
      };
    },
  };
}

export type CodeGrant = ReturnType<typeof createCodeGrant>;
