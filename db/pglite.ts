/** @module A Db on PGlite, Postgres compiled to WASM: the embedded default (a folder or memory). */
import { PGlite } from "@electric-sql/pglite";
import type { Db, DbOptions, Row, Sql } from "./db.ts";

interface Queryable {
  query<T>(text: string, params?: unknown[]): Promise<{ rows: T[] }>;
}

function wrap(client: Queryable): Sql {
  return {
    async query<T extends Row>(text: string, params: readonly unknown[] = []) {
      const result = await client.query<T>(text, params as unknown[]);
      return result.rows;
    },
  };
}

export async function openPglite(options: DbOptions): Promise<Db> {
  if (options.dataDir) await Deno.mkdir(options.dataDir, { recursive: true });
  const pg = new PGlite(options.dataDir || undefined);
  await pg.waitReady;
  return {
    kind: "pglite",
    ...wrap(pg),
    transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T> {
      return pg.transaction((tx) => fn(wrap(tx)));
    },
    async close() {
      await pg.close();
    },
  };
}
