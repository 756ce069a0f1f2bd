/**
 * @module SQL for authentication (migration 007): accounts, refresh-token families, registered
 * clients, signing keys and client-assertion ids. The same queries run on Postgres and PGlite.
 */
import { Params } from "../db/params.ts";
import type { Sql } from "../db/db.ts";
import type { JtiStore, RegisteredClient } from "./client_assertion.ts";
import type { SigningKeyRepo, StoredSigningKey } from "./keys.ts";

export type Role = "admin" | "clinician" | "viewer";
export const ROLES: readonly Role[] = ["admin", "clinician", "viewer"];

export interface UserRow {
  id: string;
  username: string;
  displayName: string | null;
  role: Role;
  passwordHash: string;
  fhirUser: string | null;
  /** The Patient id the account is bound to (its tokens reach that compartment only). */
  patient: string | null;
  disabled: boolean;
  failedLogins: number;
  lockedUntil: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

const USER_COLUMNS = `id, username, display_name, role, password_hash, fhir_user, patient,
  disabled, failed_logins, locked_until, created_at, updated_at`;

function userOf(r: Record<string, unknown>): UserRow {
  return {
    id: String(r.id),
    username: String(r.username),
    displayName: (r.display_name as string | null) ?? null,
    role: r.role as Role,
    passwordHash: String(r.password_hash),
    fhirUser: (r.fhir_user as string | null) ?? null,
    patient: (r.patient as string | null) ?? null,
    disabled: Boolean(r.disabled),
    failedLogins: Number(r.failed_logins ?? 0),
    lockedUntil: r.locked_until ? new Date(r.locked_until as string) : null,
    createdAt: new Date(r.created_at as string),
    updatedAt: new Date(r.updated_at as string),
  };
}

export async function findUserByName(sql: Sql, username: string): Promise<UserRow | undefined> {
  const rows = await sql.query(`SELECT ${USER_COLUMNS} FROM auth_user WHERE username = $1`, [
    username.toLowerCase(),
  ]);
  return rows[0] ? userOf(rows[0]) : undefined;
}

export async function findUser(sql: Sql, id: string): Promise<UserRow | undefined> {
  const rows = await sql.query(`SELECT ${USER_COLUMNS} FROM auth_user WHERE id = $1`, [id]);
  return rows[0] ? userOf(rows[0]) : undefined;
}

export async function listUsers(sql: Sql): Promise<UserRow[]> {
  const rows = await sql.query(`SELECT ${USER_COLUMNS} FROM auth_user ORDER BY username`);
  return rows.map(userOf);
}

export async function countAdmins(sql: Sql): Promise<number> {
  const [row] = await sql.query<{ n: string }>(
    `SELECT count(*) AS n FROM auth_user WHERE role = 'admin' AND NOT disabled`,
  );
  return Number(row.n);
}

/** Inserts an account; false when the username is taken. */
export async function insertUser(
  sql: Sql,
  u:
    & Pick<UserRow, "id" | "username" | "displayName" | "role" | "passwordHash" | "fhirUser">
    & { patient?: string | null },
): Promise<boolean> {
  const rows = await sql.query(
    `INSERT INTO auth_user (id, username, display_name, role, password_hash, fhir_user, patient)
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (username) DO NOTHING RETURNING id`,
    [
      u.id,
      u.username.toLowerCase(),
      u.displayName,
      u.role,
      u.passwordHash,
      u.fhirUser,
      u.patient ?? null,
    ],
  );
  return rows.length > 0;
}

export async function updateUser(
  sql: Sql,
  id: string,
  changes: Partial<
    Pick<UserRow, "displayName" | "role" | "passwordHash" | "fhirUser" | "patient" | "disabled">
  >,
): Promise<boolean> {
  const sets: string[] = [];
  const params = new Params([id]);
  const column: Record<string, string> = {
    displayName: "display_name",
    role: "role",
    passwordHash: "password_hash",
    fhirUser: "fhir_user",
    patient: "patient",
    disabled: "disabled",
  };
  for (const [k, v] of Object.entries(changes)) {
    if (v === undefined || !column[k]) continue;
    sets.push(`${column[k]} = ${params.add(v)}`);
  }
  if (changes.passwordHash) sets.push(`failed_logins = 0, locked_until = NULL`);
  const rows = await sql.query(
    `UPDATE auth_user SET ${[...sets, "updated_at = now()"].join(", ")} WHERE id = $1 RETURNING id`,
    params.values,
  );
  return rows.length > 0;
}

export async function deleteUser(sql: Sql, id: string): Promise<boolean> {
  return (await sql.query(`DELETE FROM auth_user WHERE id = $1 RETURNING id`, [id])).length > 0;
}

/** Counts a failed login; locks the account for `lockMs` once `maxFailures` is reached. */
export async function recordFailedLogin(
  sql: Sql,
  id: string,
  maxFailures: number,
  lockMs: number,
): Promise<void> {
  await sql.query(
    `UPDATE auth_user SET failed_logins = failed_logins + 1,
       locked_until = CASE WHEN failed_logins + 1 >= $2
         THEN now() + make_interval(secs => $3::double precision) ELSE locked_until END
     WHERE id = $1`,
    [id, maxFailures, lockMs / 1000],
  );
}

export async function recordLogin(sql: Sql, id: string): Promise<void> {
  await sql.query(
    `UPDATE auth_user SET failed_logins = 0, locked_until = NULL WHERE id = $1`,
    [id],
  );
}

// ---- refresh tokens ----

export interface RefreshRow {
  tokenHash: string;
  family: string;
  userId: string;
  scope: string;
  expiresAt: Date;
  usedAt: Date | null;
  revokedAt: Date | null;
}

export async function insertRefresh(
  sql: Sql,
  r: Pick<RefreshRow, "tokenHash" | "family" | "userId" | "scope" | "expiresAt">,
): Promise<void> {
  await sql.query(
    `INSERT INTO auth_refresh_token (token_hash, family, user_id, scope, expires_at)
     VALUES ($1, $2, $3, $4, $5)`,
    [r.tokenHash, r.family, r.userId, r.scope, r.expiresAt.toISOString()],
  );
}

/** Marks the token used and answers its row as it was (under a row lock); undefined if unknown. */
export async function takeRefresh(sql: Sql, tokenHash: string): Promise<RefreshRow | undefined> {
  const rows = await sql.query(
    `SELECT token_hash, family, user_id, scope, expires_at, used_at, revoked_at
       FROM auth_refresh_token WHERE token_hash = $1 FOR UPDATE`,
    [tokenHash],
  );
  if (!rows[0]) return undefined;
  const r = rows[0];
  await sql.query(
    `UPDATE auth_refresh_token SET used_at = coalesce(used_at, now()) WHERE token_hash = $1`,
    [tokenHash],
  );
  return {
    tokenHash: String(r.token_hash),
    family: String(r.family),
    userId: String(r.user_id),
    scope: String(r.scope),
    expiresAt: new Date(r.expires_at as string),
    usedAt: r.used_at ? new Date(r.used_at as string) : null,
    revokedAt: r.revoked_at ? new Date(r.revoked_at as string) : null,
  };
}

/** Revokes a refresh-token family and the grant of that id (its access tokens too). */
export async function revokeFamily(sql: Sql, family: string): Promise<void> {
  await sql.query(
    `UPDATE auth_refresh_token SET revoked_at = coalesce(revoked_at, now()) WHERE family = $1`,
    [family],
  );
  await sql.query(
    `UPDATE auth_grant SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1`,
    [family],
  );
}

export async function familyOf(sql: Sql, tokenHash: string): Promise<string | undefined> {
  const rows = await sql.query<{ family: string }>(
    `SELECT family FROM auth_refresh_token WHERE token_hash = $1`,
    [tokenHash],
  );
  return rows[0]?.family;
}

/** Ends an account's refresh tokens, app grants and browser sessions. */
export async function revokeUserTokens(sql: Sql, userId: string): Promise<void> {
  for (const table of ["auth_refresh_token", "auth_grant", "auth_session"]) {
    await sql.query(
      `UPDATE ${table} SET revoked_at = coalesce(revoked_at, now()) WHERE user_id = $1`,
      [userId],
    );
  }
}

// ---- clients ----

function clientOf(r: Record<string, unknown>): RegisteredClient & { createdAt: Date } {
  const jwks = jsonOf<{ keys: JsonWebKey[] }>(r.jwks);
  return {
    clientId: String(r.client_id),
    name: (r.name as string | null) ?? undefined,
    jwks: jwks ?? undefined,
    jwksUri: (r.jwks_uri as string | null) ?? undefined,
    scope: String(r.scope),
    disabled: Boolean(r.disabled),
    redirectUris: jsonOf<string[]>(r.redirect_uris) ?? [],
    authMethod: (r.auth_method as RegisteredClient["authMethod"]) ?? "private_key_jwt",
    secretHash: (r.secret_hash as string | null) ?? undefined,
    launchUrl: (r.launch_url as string | null) ?? undefined,
    createdAt: new Date(r.created_at as string),
  };
}

/** A jsonb column's value (PGlite and postgres.js may answer it parsed or as text). */
export function jsonOf<T>(v: unknown): T | undefined {
  if (v === null || v === undefined) return undefined;
  return (typeof v === "string" ? JSON.parse(v) : v) as T;
}

export async function findClient(sql: Sql, clientId: string) {
  const rows = await sql.query(`SELECT * FROM auth_client WHERE client_id = $1`, [clientId]);
  return rows[0] ? clientOf(rows[0]) : undefined;
}

export async function listClients(sql: Sql) {
  return (await sql.query(`SELECT * FROM auth_client ORDER BY client_id`)).map(clientOf);
}

/** Inserts or replaces a client (by client_id). */
export async function upsertClient(sql: Sql, c: RegisteredClient): Promise<void> {
  await sql.query(
    `INSERT INTO auth_client (client_id, name, jwks, jwks_uri, scope, disabled, redirect_uris,
       auth_method, secret_hash, launch_url)
     VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7::jsonb, $8, $9, $10)
     ON CONFLICT (client_id) DO UPDATE SET name = EXCLUDED.name, jwks = EXCLUDED.jwks,
       jwks_uri = EXCLUDED.jwks_uri, scope = EXCLUDED.scope, disabled = EXCLUDED.disabled,
       redirect_uris = EXCLUDED.redirect_uris, auth_method = EXCLUDED.auth_method,
       secret_hash = EXCLUDED.secret_hash, launch_url = EXCLUDED.launch_url`,
    [
      c.clientId,
      c.name ?? null,
      c.jwks ? JSON.stringify(c.jwks) : null,
      c.jwksUri ?? null,
      c.scope,
      Boolean(c.disabled),
      JSON.stringify(c.redirectUris ?? []),
      c.authMethod ?? "private_key_jwt",
      c.secretHash ?? null,
      c.launchUrl ?? null,
    ],
  );
}

export async function deleteClient(sql: Sql, clientId: string): Promise<boolean> {
  return (await sql.query(`DELETE FROM auth_client WHERE client_id = $1 RETURNING client_id`, [
    clientId,
  ])).length > 0;
}

// ---- signing keys and assertion ids ----

export function signingKeyRepo(sql: Sql): SigningKeyRepo {
  const parse = (v: unknown) => (typeof v === "string" ? JSON.parse(v) : v) as JsonWebKey;
  return {
    async list() {
      const rows = await sql.query(
        `SELECT kid, alg, private_jwk, public_jwk, created_at, retired_at
           FROM auth_signing_key ORDER BY created_at`,
      );
      return rows.map((r): StoredSigningKey => ({
        kid: String(r.kid),
        alg: r.alg === "RS256" ? "RS256" : "ES256",
        privateJwk: parse(r.private_jwk),
        publicJwk: parse(r.public_jwk),
        createdAt: new Date(r.created_at as string),
        retiredAt: r.retired_at ? new Date(r.retired_at as string) : null,
      }));
    },
    async insert(k) {
      await sql.query(
        `INSERT INTO auth_signing_key (kid, alg, private_jwk, public_jwk, created_at, retired_at)
         VALUES ($1, $2, $3::jsonb, $4::jsonb, $5, $6) ON CONFLICT (kid) DO NOTHING`,
        [
          k.kid,
          k.alg,
          JSON.stringify(k.privateJwk),
          JSON.stringify(k.publicJwk),
          k.createdAt.toISOString(),
          k.retiredAt?.toISOString() ?? null,
        ],
      );
    },
    async retire(kid, at) {
      await sql.query(
        `UPDATE auth_signing_key SET retired_at = coalesce(retired_at, $2) WHERE kid = $1`,
        [kid, at.toISOString()],
      );
    },
  };
}

export function jtiStore(sql: Sql): JtiStore {
  return {
    async remember(clientId, jti, expiresAt) {
      await sql.query(`DELETE FROM auth_jti WHERE expires_at < now()`);
      const rows = await sql.query(
        `INSERT INTO auth_jti (client_id, jti, expires_at) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING RETURNING jti`,
        [clientId, jti, expiresAt.toISOString()],
      );
      return rows.length > 0;
    },
  };
}
