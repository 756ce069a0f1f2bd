/**
 * @module SQL for SMART App Launch (migration 018): browser sessions, EHR launch contexts,
 * authorization requests waiting for a decision, grants and authorization codes. Secrets arrive
 * here already hashed (SHA-256); nothing in the clear is stored but the CSRF token of a request.
 */
import type { Sql } from "../db/db.ts";
import { jsonOf } from "./repo.ts";

/** The context of a launch or a grant (SMART App Launch 2 token-response parameters). */
export interface LaunchContext {
  patient?: string;
  encounter?: string;
  fhirContext?: { reference: string }[];
  needPatientBanner?: boolean;
  intent?: string;
  smartStyleUrl?: string;
}

const date = (v: unknown) => new Date(v as string);
const maybeDate = (v: unknown) => (v ? new Date(v as string) : null);

// ---- sessions ----

export interface SessionRow {
  idHash: string;
  userId: string;
  authTime: Date;
  expiresAt: Date;
  revokedAt: Date | null;
}

export async function insertSession(
  sql: Sql,
  s: Pick<SessionRow, "idHash" | "userId" | "expiresAt">,
): Promise<void> {
  await sql.query(`DELETE FROM auth_session WHERE expires_at < now() - interval '1 day'`);
  await sql.query(
    `INSERT INTO auth_session (id_hash, user_id, expires_at) VALUES ($1, $2, $3)`,
    [s.idHash, s.userId, s.expiresAt.toISOString()],
  );
}

export async function findSession(sql: Sql, idHash: string): Promise<SessionRow | undefined> {
  const [r] = await sql.query(
    `SELECT id_hash, user_id, auth_time, expires_at, revoked_at FROM auth_session
      WHERE id_hash = $1`,
    [idHash],
  );
  return r
    ? {
      idHash: String(r.id_hash),
      userId: String(r.user_id),
      authTime: date(r.auth_time),
      expiresAt: date(r.expires_at),
      revokedAt: maybeDate(r.revoked_at),
    }
    : undefined;
}

export async function revokeSession(sql: Sql, idHash: string): Promise<void> {
  await sql.query(
    `UPDATE auth_session SET revoked_at = coalesce(revoked_at, now()) WHERE id_hash = $1`,
    [idHash],
  );
}

// ---- launches ----

export interface LaunchRow {
  clientId: string | null;
  context: LaunchContext;
  createdBy: string;
  expiresAt: Date;
}

export async function insertLaunch(
  sql: Sql,
  idHash: string,
  l: LaunchRow,
): Promise<void> {
  await sql.query(`DELETE FROM auth_launch WHERE expires_at < now() - interval '1 hour'`);
  await sql.query(
    `INSERT INTO auth_launch (id_hash, client_id, context, created_by, expires_at)
     VALUES ($1, $2, $3::jsonb, $4, $5)`,
    [idHash, l.clientId, JSON.stringify(l.context), l.createdBy, l.expiresAt.toISOString()],
  );
}

export async function findLaunch(sql: Sql, idHash: string): Promise<LaunchRow | undefined> {
  const [r] = await sql.query(
    `SELECT client_id, context, created_by, expires_at FROM auth_launch WHERE id_hash = $1`,
    [idHash],
  );
  return r
    ? {
      clientId: (r.client_id as string | null) ?? null,
      context: jsonOf<LaunchContext>(r.context) ?? {},
      createdBy: String(r.created_by),
      expiresAt: date(r.expires_at),
    }
    : undefined;
}

// ---- authorization requests ----

export async function insertRequest(
  sql: Sql,
  r: { id: string; browserHash: string; csrf: string; request: unknown; expiresAt: Date },
): Promise<void> {
  await sql.query(`DELETE FROM auth_request WHERE expires_at < now()`);
  await sql.query(
    `INSERT INTO auth_request (id, browser_hash, csrf, request, expires_at)
     VALUES ($1, $2, $3, $4::jsonb, $5)`,
    [r.id, r.browserHash, r.csrf, JSON.stringify(r.request), r.expiresAt.toISOString()],
  );
}

export async function findRequest(
  sql: Sql,
  id: string,
): Promise<
  { browserHash: string; csrf: string; request: unknown; expiresAt: Date } | undefined
> {
  const [r] = await sql.query(
    `SELECT browser_hash, csrf, request, expires_at FROM auth_request WHERE id = $1`,
    [id],
  );
  return r
    ? {
      browserHash: String(r.browser_hash),
      csrf: String(r.csrf),
      request: jsonOf(r.request),
      expiresAt: date(r.expires_at),
    }
    : undefined;
}

/** Deletes a request; false when it was gone already (decided by another submit). */
export async function deleteRequest(sql: Sql, id: string): Promise<boolean> {
  return (await sql.query(`DELETE FROM auth_request WHERE id = $1 RETURNING id`, [id])).length > 0;
}

// ---- grants and codes ----

export interface GrantRow {
  id: string;
  userId: string;
  clientId: string;
  scope: string;
  context: LaunchContext;
  /** The browser session's hash (online_access ends with it). */
  session: string | null;
  authTime: Date | null;
  revokedAt: Date | null;
}

export async function insertGrant(sql: Sql, g: Omit<GrantRow, "revokedAt">): Promise<void> {
  await sql.query(
    `INSERT INTO auth_grant (id, user_id, client_id, scope, context, session, auth_time)
     VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7)`,
    [
      g.id,
      g.userId,
      g.clientId,
      g.scope,
      JSON.stringify(g.context),
      g.session,
      g.authTime?.toISOString() ?? null,
    ],
  );
}

export async function findGrant(sql: Sql, id: string): Promise<GrantRow | undefined> {
  const [r] = await sql.query(
    `SELECT id, user_id, client_id, scope, context, session, auth_time, revoked_at
       FROM auth_grant WHERE id = $1`,
    [id],
  );
  return r
    ? {
      id: String(r.id),
      userId: String(r.user_id),
      clientId: String(r.client_id),
      scope: String(r.scope),
      context: jsonOf<LaunchContext>(r.context) ?? {},
      session: (r.session as string | null) ?? null,
      authTime: maybeDate(r.auth_time),
      revokedAt: maybeDate(r.revoked_at),
    }
    : undefined;
}

export interface CodeRow {
  codeHash: string;
  grantId: string;
  clientId: string;
  redirectUri: string;
  codeChallenge: string;
  nonce: string | null;
  expiresAt: Date;
  usedAt: Date | null;
}

export async function insertCode(sql: Sql, c: Omit<CodeRow, "usedAt">): Promise<void> {
  await sql.query(`DELETE FROM auth_code WHERE expires_at < now() - interval '1 day'`);
  await sql.query(
    `INSERT INTO auth_code (code_hash, grant_id, client_id, redirect_uri, code_challenge, nonce,
       expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
    [
      c.codeHash,
      c.grantId,
      c.clientId,
      c.redirectUri,
      c.codeChallenge,
      c.nonce,
      c.expiresAt.toISOString(),
    ],
  );
}

/** Marks a code used and answers it as it was (under a row lock); undefined if unknown. */
export async function takeCode(sql: Sql, codeHash: string): Promise<CodeRow | undefined> {
  const [r] = await sql.query(
    `SELECT code_hash, grant_id, client_id, redirect_uri, code_challenge, nonce, expires_at,
            used_at FROM auth_code WHERE code_hash = $1 FOR UPDATE`,
    [codeHash],
  );
  if (!r) return undefined;
  await sql.query(
    `UPDATE auth_code SET used_at = coalesce(used_at, now()) WHERE code_hash = $1`,
    [codeHash],
  );
  return {
    codeHash: String(r.code_hash),
    grantId: String(r.grant_id),
    clientId: String(r.client_id),
    redirectUri: String(r.redirect_uri),
    codeChallenge: String(r.code_challenge),
    nonce: (r.nonce as string | null) ?? null,
    expiresAt: date(r.expires_at),
    usedAt: maybeDate(r.used_at),
  };
}

/** A refresh token as introspection sees it. */
export async function findRefresh(sql: Sql, tokenHash: string) {
  const [r] = await sql.query(
    `SELECT t.family, t.user_id, t.scope, t.created_at, t.expires_at, t.used_at, t.revoked_at,
            g.client_id, g.context, g.revoked_at AS grant_revoked
       FROM auth_refresh_token t LEFT JOIN auth_grant g ON g.id = t.family
      WHERE t.token_hash = $1`,
    [tokenHash],
  );
  return r
    ? {
      family: String(r.family),
      userId: String(r.user_id),
      scope: String(r.scope),
      createdAt: date(r.created_at),
      expiresAt: date(r.expires_at),
      active: !r.used_at && !r.revoked_at && !r.grant_revoked,
      clientId: (r.client_id as string | null) ?? null,
      context: jsonOf<LaunchContext>(r.context) ?? {},
    }
    : undefined;
}
