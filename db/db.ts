/**
 * @module The one small interface every persistence module talks to: SQL with `$n` parameters,
 * run either on postgres.js (a real server) or on PGlite (the embedded default).
 */

/** A row as returned by the driver: column name to value. */
export type Row = Record<string, unknown>;

/** A connection (or a transaction on one). */
export interface Sql {
  /** Runs one statement with positional `$1..$n` parameters and returns its rows. */
  query<T extends Row = Row>(text: string, params?: readonly unknown[]): Promise<T[]>;
}

/** The database: a connection pool (or PGlite) that can also open transactions. */
export interface Db extends Sql {
  /** Which engine serves it, for health and logs. */
  readonly kind: "postgres" | "pglite";
  /** Runs `fn` inside one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** Options shared by both engines. */
export interface DbOptions {
  /** `postgres://…` for a real server; empty for PGlite. */
  url?: string;
  /** PGlite data folder; empty keeps PGlite in memory. */
  dataDir?: string;
  /** Postgres schema to use (created when missing); tests use one schema each. */
  schema?: string;
  /** Pool size for postgres.js. */
  poolSize?: number;
  /** Prepared statements for postgres.js (default true): one round trip per query, not two. */
  prepare?: boolean;
}

/** Opens the database the options name: postgres.js when a URL is given, PGlite otherwise. */
export async function openDb(options: DbOptions): Promise<Db> {
  if (options.url) {
    const { openPostgres } = await import("./postgres.ts");
    return openPostgres(options.url, options);
  }
  const { openPglite } = await import("./pglite.ts");
  return openPglite(options);
}
