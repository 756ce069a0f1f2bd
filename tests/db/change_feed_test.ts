/**
 * The change feed never skips a version (real Postgres: concurrent transactions). The case that
 * lost versions before migration 011: a transaction with a newer txid takes a lower seq and stays
 * open while an older transaction commits a higher seq; a reader that read the higher one must
 * still get the lower one once it commits. And many concurrent writers with readers polling all
 * the while: every reader gets every version exactly once, positions strictly increasing.
 */
import assert from "node:assert/strict";
import { changesAfter, headSeq } from "../../db/change_feed_repo.ts";
import { type Db, openDb, type Sql } from "../../db/db.ts";
import { migrate } from "../../db/migrate.ts";

const DATABASE_URL = Deno.env.get("DATABASE_URL") ?? "";
const skipped = DATABASE_URL ? "" : " [postgres: skipped, DATABASE_URL not set]";

async function database(): Promise<{ db: Db; drop: () => Promise<void> }> {
  const schema = `t_${Date.now().toString(36)}_feed${crypto.randomUUID().slice(0, 4)}`;
  const db = await openDb({ url: DATABASE_URL, schema, poolSize: 24 });
  await migrate(db);
  return {
    db,
    drop: async () => {
      await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
      await db.close();
    },
  };
}

/** Writes version 1 of Patient/{id} on `tx` (what a create stores in the version table). */
async function writeVersion(tx: Sql, id: string): Promise<void> {
  const [{ rid }] = await tx.query<{ rid: string }>(
    `INSERT INTO resource (type, id, version, last_updated, content)
     VALUES ('Patient', $1, 1, now(), '{}') RETURNING rid::text AS rid`,
    [id],
  );
  await tx.query(
    `INSERT INTO resource_version (rid, version, type, id, last_updated, deleted, method, content)
     VALUES ($1::bigint, 1, 'Patient', $2, now(), false, 'POST', '{}')`,
    [rid, id],
  );
}

function latch() {
  let open!: () => void;
  const opened = new Promise<void>((r) => open = r);
  return { open, opened };
}

Deno.test({
  name: `a version committed late under a lower seq is not skipped${skipped}`,
  ignore: !DATABASE_URL,
  fn: async () => {
    const { db, drop } = await database();
    try {
      const start = await headSeq(db);
      const aHasTxid = latch();
      const bWrote = latch();
      const bMayCommit = latch();
      // A takes its txid first; B (newer txid) writes first (lower seq) and stays open; then A
      // writes (higher seq) and commits.
      const a = db.transaction(async (tx) => {
        await tx.query(`SELECT pg_current_xact_id()`);
        aHasTxid.open();
        await bWrote.opened;
        await writeVersion(tx, "late-a");
      });
      await aHasTxid.opened;
      const b = db.transaction(async (tx) => {
        await tx.query(`SELECT pg_current_xact_id()`);
        await writeVersion(tx, "early-b");
        bWrote.open();
        await bMayCommit.opened;
      });
      await a;
      const first = await changesAfter(db, start);
      assert.deepEqual(first.map((c) => c.id), ["late-a"]);
      bMayCommit.open();
      await b;
      const second = await changesAfter(db, first[0].seq);
      assert.deepEqual(second.map((c) => c.id), ["early-b"], "B's version, committed last");
      assert.ok(second[0].seq > first[0].seq);
    } finally {
      await drop();
    }
  },
});

Deno.test({
  name:
    `concurrent writers, polling readers: every version once, in increasing positions${skipped}`,
  ignore: !DATABASE_URL,
  fn: async () => {
    const { db, drop } = await database();
    try {
      const start = await headSeq(db);
      const writers = 12;
      const perWriter = 15;
      let writing = true;
      const readers = [0, 1, 2].map(async () => {
        const seen: { id: string; seq: number }[] = [];
        let position = start;
        const poll = async () => {
          for (let batch; (batch = await changesAfter(db, position, 50)).length;) {
            for (const c of batch) seen.push({ id: c.id, seq: c.seq });
            position = batch[batch.length - 1].seq;
          }
        };
        while (writing) {
          await poll();
          await new Promise((r) => setTimeout(r, 3));
        }
        // A version gets its position once every transaction older than it has ended, on the
        // whole server: tests running beside this one can hold that back for a moment. Every
        // version must still come, once and in order.
        const deadline = Date.now() + 15_000;
        await poll();
        while (seen.length < writers * perWriter && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 50));
          await poll();
        }
        return seen;
      });
      await Promise.all(Array.from({ length: writers }, async (_, w) => {
        for (let i = 0; i < perWriter; i++) {
          await db.transaction(async (tx) => {
            await tx.query(`SELECT pg_current_xact_id()`);
            await new Promise((r) => setTimeout(r, Math.random() * 6));
            await writeVersion(tx, `w${w}-${i}`);
            await new Promise((r) => setTimeout(r, Math.random() * 6));
          });
        }
      }));
      writing = false;
      for (const seen of await Promise.all(readers)) {
        assert.equal(seen.length, writers * perWriter);
        assert.equal(new Set(seen.map((s) => s.id)).size, writers * perWriter, "each once");
        for (let i = 1; i < seen.length; i++) assert.ok(seen[i].seq > seen[i - 1].seq);
      }
    } finally {
      await drop();
    }
  },
});

for (const backend of ["pglite", "postgres"] as const) {
  const missing = backend === "postgres" && !DATABASE_URL;
  Deno.test({
    name: `one transaction of 2 500 versions: all read, once, in order [${backend}${
      missing ? ": skipped, DATABASE_URL not set" : ""
    }]`,
    ignore: missing,
    fn: async () => {
      const { db, drop } = backend === "postgres" ? await database() : await (async () => {
        const db = await openDb({});
        await migrate(db);
        return { db, drop: () => db.close() };
      })();
      try {
        const start = await headSeq(db);
        // More than one stamping round (1 000), seqs past 999 and 1 000 (text order differs).
        await db.transaction(async (tx) => {
          for (let i = 0; i < 2500; i++) await writeVersion(tx, `bulk-${i}`);
        });
        const seen: string[] = [];
        let position = start;
        for (let batch; (batch = await changesAfter(db, position, 400)).length;) {
          seen.push(...batch.map((c) => c.id));
          position = batch[batch.length - 1].seq;
        }
        assert.deepEqual(seen, Array.from({ length: 2500 }, (_, i) => `bulk-${i}`));
      } finally {
        await drop();
      }
    },
  });
}
