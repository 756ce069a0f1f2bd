/**
 * @module SQL for the health checks: how many migrations the database has applied (and how many
 * the code knows), a round trip on a connection, and the server's version.
 */
import type { Sql } from "./db.ts";
import { readMigrations } from "./migrate.ts";

/** How many migration files the code holds. */
export function knownMigrationCount(): Promise<number> {
  return readMigrations().then((all) => all.length);
}

/** The migrations recorded as applied: how many, and the latest version (as the driver says). */
export async function appliedMigrations(
  sql: Sql,
): Promise<{ n: number; latest: number | null }> {
  const [row] = await sql.query<{ n: number; latest: number | null }>(
    `SELECT count(*)::int AS n, max(version) AS latest FROM schema_migration`,
  );
  return row;
}

/** One round trip: resolves when the connection answers. */
export async function ping(sql: Sql): Promise<void> {
  await sql.query(`SELECT 1`);
}

/** The server's `server_version` setting. */
export async function serverVersion(sql: Sql): Promise<string> {
  const [row] = await sql.query<{ v: string }>(`SELECT current_setting('server_version') AS v`);
  return row.v;
}
