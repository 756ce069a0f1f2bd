/**
 * The Postgres pool through server restarts, on a private server (`_private_postgres.ts`): 16
 * writers run small transactions while the server restarts three times. postgres.js 3.4.9 threw from a deferred
 * write after the connection closed and ended the process (the patched copy in vendor/postgres
 * rejects those queries instead); the failed queries are rejected with a connection error, the
 * pool reconnects by itself, and every insert the pool acknowledged is in the table afterwards.
 * With prepared statements (the default), a transaction's ROLLBACK issued while its connection
 * failed used to hang, and the writer with it (vendor/postgres/PATCHES.md): every writer must end.
 */
import assert from "node:assert/strict";
import { openPostgres } from "../../db/postgres.ts";
import { postgresBin, startPrivatePostgres } from "../_private_postgres.ts";

Deno.test({
  name:
    "postgres: 16 writers through a server restart: no crash, reconnects, no acknowledged write lost",
  ignore: !postgresBin(),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const pg = await startPrivatePostgres();
    const db = await openPostgres(pg.url, { poolSize: 16, prepare: true });
    try {
      await db.query("CREATE TABLE t (id serial PRIMARY KEY, v text NOT NULL)");
      const acknowledged: number[] = [];
      const errors = new Map<string, number>();
      let stop = false;
      const writer = async (w: number) => {
        for (let i = 0; !stop; i++) {
          try {
            // A transaction of small statements, as a FHIR create is: each write is short
            // enough for the driver to defer it to the next turn of the event loop.
            const id = await db.transaction(async (tx) => {
              await tx.query("SELECT pg_advisory_xact_lock($1)", [w]);
              const [row] = await tx.query<{ id: number }>(
                "INSERT INTO t (v) VALUES ($1) RETURNING id",
                [`${w}-${i}`],
              );
              await tx.query("SELECT count(*) FROM t WHERE v = $1", [`${w}`]);
              return row.id;
            });
            acknowledged.push(id);
          } catch (e) {
            const code = String((e as { code?: string }).code ?? (e as Error).name);
            errors.set(code, (errors.get(code) ?? 0) + 1);
            await new Promise((r) => setTimeout(r, 20));
          }
        }
      };
      const writers = Array.from({ length: 16 }, (_, w) => writer(w));
      for (let round = 0; round < 3; round++) {
        await new Promise((r) => setTimeout(r, 400));
        await pg.restart();
      }
      // Back to work: inserts succeed again within a few seconds.
      const before = acknowledged.length;
      const deadline = Date.now() + 10_000;
      while (acknowledged.length < before + 50 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      stop = true;
      await Promise.all(writers);
      assert.ok(acknowledged.length >= before + 50, "the pool did not reconnect");
      // Failures are connection errors, never a TypeError.
      for (const code of errors.keys()) {
        assert.match(code, /^(CONNECTION_|ECONN|57P0|08|EPIPE|ERR_)|^Error$/, `unexpected ${code}`);
        assert.notEqual(code, "TypeError");
      }
      const [{ n }] = await db.query<{ n: string }>(
        "SELECT count(*) AS n FROM t WHERE id = ANY($1::int[])",
        [acknowledged],
      );
      assert.equal(Number(n), new Set(acknowledged).size, "an acknowledged insert is missing");
    } finally {
      await db.close().catch(() => {});
      await pg.close();
    }
  },
});
