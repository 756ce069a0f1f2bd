/** @module A Db on a real Postgres server through postgres.js. */
import postgres, { type Sql as PgSql, type TransactionSql } from "postgres";
import type { Db, DbOptions, Row, Sql } from "./db.ts";

type Client = PgSql | TransactionSql;

function wrap(client: Client, prepare: boolean): Sql {
  return {
    async query<T extends Row>(text: string, params: readonly unknown[] = []) {
      // Unprepared, a statement with parameters costs two round trips (Describe, then Execute);
      // prepared, one after its first run on a connection. (Without parameters, postgres.js uses
      // the simple protocol either way.)
      // deno-lint-ignore no-explicit-any
      const rows = await client.unsafe(text, params as any[], { prepare });
      return rows as unknown as T[];
    },
  };
}

export async function openPostgres(url: string, options: DbOptions): Promise<Db> {
  const schema = options.schema;
  const prepare = options.prepare ?? true;
  if (schema && !/^[a-z_][a-z0-9_]*$/.test(schema)) throw new Error(`bad schema name ${schema}`);
  const sql = postgres(url, {
    max: options.poolSize ?? 10,
    onnotice: () => {},
    // After a server restart or failover a connection retries in 0.1, 0.2, 0.4 … s, at most every
    // 2 s (the driver's default grows to 20 s over a few failures, long after the server is back).
    backoff: (attempts: number) => Math.min(0.1 * 2 ** Math.max(0, attempts - 1), 2),
    types: {
      // Timestamps go to the server as text, so `infinity` and `-infinity` pass through.
      date: {
        to: 1184,
        from: [1082, 1114, 1184],
        serialize: (x: unknown) => (x instanceof Date ? x.toISOString() : String(x)),
        parse: (x: string) => new Date(x),
      },
    },
    connection: schema ? { search_path: schema } : undefined,
  });
  if (schema) await sql.unsafe(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
  return {
    kind: "postgres",
    ...wrap(sql, prepare),
    transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T> {
      return sql.begin((tx) => fn(wrap(tx, prepare))) as Promise<T>;
    },
    async close() {
      await sql.end({ timeout: 5 });
    },
  };
}
