/**
 * @module SQL for periodic maintenance run by one replica at a time (`maintenance_claim`,
 * migration 013): a task is claimed by the replica whose UPDATE finds its last claim old enough.
 */
import type { Db } from "./db.ts";

/**
 * True when this replica may run `task` now: its last claim (by any replica) is older than
 * `everyMs`, and this replica's claim replaced it (one UPDATE, so two replicas never both win).
 */
export async function claimMaintenance(db: Db, task: string, everyMs: number): Promise<boolean> {
  const rows = await db.query<{ task: string }>(
    `INSERT INTO maintenance_claim (task, claimed_at) VALUES ($1, now())
     ON CONFLICT (task) DO UPDATE SET claimed_at = now()
       WHERE maintenance_claim.claimed_at <= now() - make_interval(secs => $2)
     RETURNING task`,
    [task, everyMs / 1000],
  );
  return rows.length === 1;
}
