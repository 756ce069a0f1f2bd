/**
 * Study stability across replicas: two `createStudyStability` instances on one database (two API
 * processes) touched in turn by the instances of one study; exactly one of them hears the study
 * stable, once, a quiet period after the last touch, whichever touched last.
 */
import assert from "node:assert/strict";
import { type Db, openDb } from "../../db/db.ts";
import { migrate } from "../../db/migrate.ts";
import { createStudyStability, type StudyStableEvent } from "../../dicom/stability.ts";

const DATABASE_URL = Deno.env.get("DATABASE_URL") ?? "";

/** A migrated database: PGlite in memory, or a schema of its own on the real Postgres. */
async function database(backend: "pglite" | "postgres"): Promise<{ db: Db; schema?: string }> {
  const schema = backend === "postgres" ? `t_${Date.now().toString(36)}_stab` : undefined;
  const db = await openDb(schema ? { url: DATABASE_URL, schema, poolSize: 4 } : {});
  await migrate(db);
  return { db, schema };
}

for (const backend of ["pglite", "postgres"] as const) {
  const missing = backend === "postgres" && !DATABASE_URL;
  Deno.test({
    name: `two replicas: one stable event per quiet period, from one of them [${backend}${
      missing ? ": skipped, DATABASE_URL not set" : ""
    }]`,
    ignore: missing,
    fn: async () => {
      const { db, schema } = await database(backend);
      // A slow poll: only the touching replica's own due-time poll, or the other's, can fire it.
      const replicas = [0, 1].map(() => createStudyStability(db, 1, { pollMs: 300 }));
      const heard: (StudyStableEvent & { replica: number; at: number })[] = [];
      replicas.forEach((r, replica) =>
        r.onStable((e) => void heard.push({ ...e, replica, at: Date.now() }))
      );
      try {
        const study = `1.2.826.0.1.${Date.now()}`;
        await replicas[0].touch(study);
        await new Promise((r) => setTimeout(r, 500));
        const last = Date.now();
        await replicas[1].touch(study); // the quiet period starts again, on the other replica
        await new Promise((r) => setTimeout(r, 700));
        assert.equal(heard.length, 0, "replica 0's earlier due time did not fire it");
        const deadline = Date.now() + 3000;
        while (!heard.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        await new Promise((r) => setTimeout(r, 700)); // room for a second (wrong) event
        assert.equal(heard.length, 1, JSON.stringify(heard));
        assert.equal(heard[0].studyUid, study);
        const after = heard[0].at - last;
        assert.ok(after >= 990 && after < 2500, `fired ${after} ms after the last touch`);
        // A new instance later: a new quiet period, one more event.
        await replicas[0].touch(study);
        await new Promise((r) => setTimeout(r, 1800));
        assert.equal(heard.length, 2);
        // Many studies at once are claimed once each, across both replicas.
        const many = Array.from({ length: 150 }, (_, i) => `${study}.${i}`);
        await Promise.all(many.map((uid, i) => replicas[i % 2].touch(uid)));
        const end = Date.now() + 5000;
        while (heard.length < 152 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
        await new Promise((r) => setTimeout(r, 500));
        const counts = new Map<string, number>();
        for (const e of heard.slice(2)) counts.set(e.studyUid, (counts.get(e.studyUid) ?? 0) + 1);
        assert.equal(counts.size, 150);
        assert.ok([...counts.values()].every((n) => n === 1), "each study once");
      } finally {
        replicas.forEach((r) => r.close());
        if (schema) await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
        await db.close();
      }
    },
  });
}

for (const backend of ["pglite", "postgres"] as const) {
  const missing = backend === "postgres" && !DATABASE_URL;
  Deno.test({
    name:
      `a claim lapses: a replica that stops mid-listener, or a failing listener, is retried [${backend}${
        missing ? ": skipped, DATABASE_URL not set" : ""
      }]`,
    ignore: missing,
    fn: async () => {
      const { db, schema } = await database(backend);
      const options = { pollMs: 100, leaseMs: 800 };
      const stopped = createStudyStability(db, 0, options);
      const survivor = createStudyStability(db, 0, options);
      const heard: string[] = [];
      try {
        const study = `1.2.826.0.2.${Date.now()}`;
        // The first replica claims the quiet period and "stops" inside its listener.
        let claimedByStopped = false;
        stopped.onStable(() => {
          claimedByStopped = true;
          stopped.close();
          return new Promise<void>(() => {}); // never finishes: the process is gone
        });
        await stopped.touch(study);
        const t0 = Date.now();
        while (!claimedByStopped && Date.now() - t0 < 3000) {
          await new Promise((r) => setTimeout(r, 20));
        }
        assert.ok(claimedByStopped);
        survivor.onStable((e) => void heard.push(e.studyUid));
        const end = Date.now() + 5000;
        while (!heard.length && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
        assert.deepEqual(heard, [study], "the survivor ran it once the claim lapsed");
        assert.ok(Date.now() - t0 >= 700, "not before the lease ran out");

        // A listener that keeps failing: tried 3 times, then given up.
        const failing = `${study}.9`;
        let tries = 0;
        survivor.onStable((e) => {
          if (e.studyUid === failing) {
            tries++;
            throw new Error("rule failed");
          }
        });
        await survivor.touch(failing);
        await new Promise((r) => setTimeout(r, 3500));
        assert.equal(tries, 3);
        const [row] = await db.query<{ fired: boolean }>(
          `SELECT fired_at IS NOT NULL AS fired FROM study_stability WHERE study_uid = $1`,
          [failing],
        );
        assert.equal(row.fired, true);

        // A listener whose dependency is down (status 503): tried after every lease, past the
        // three attempts, until it passes.
        const waiting = `${study}.8`;
        let waits = 0;
        survivor.onStable((e) => {
          if (e.studyUid !== waiting) return;
          if (++waits <= 4) throw Object.assign(new Error("queue down"), { status: 503 });
        });
        await survivor.touch(waiting);
        const until = Date.now() + 8000;
        while (waits < 5 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
        assert.equal(waits, 5, "a transient failure was given up");
        await new Promise((r) => setTimeout(r, 300));
        const [done] = await db.query<{ fired: boolean }>(
          `SELECT fired_at IS NOT NULL AS fired FROM study_stability WHERE study_uid = $1`,
          [waiting],
        );
        assert.equal(done.fired, true);
      } finally {
        stopped.close();
        survivor.close();
        if (schema) await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
        await db.close();
      }
    },
  });
}
