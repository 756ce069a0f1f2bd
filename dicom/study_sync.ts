/**
 * @module The ImagingStudy brought up to date from the DICOM index, coalesced. A stored batch of an
 * existing study only marks the study stale (`dicom_study.fhir_stale_seq`, in its transaction) and
 * schedules a rebuild here; the rebuild runs at most once per `intervalMs` per study, whatever the
 * number of batches, so an instance costs O(1) however large its study already is (a rebuild that
 * ran per batch made a 1000-instance study cost O(n²)). One replica rebuilds a study at a time (a
 * transaction-scoped advisory lock); the rebuild reads the stale counter before the index and
 * records it as synced after writing, so a batch that commits meanwhile leaves the study stale for
 * the next rebuild. A poll picks up studies left stale by a replica that stopped. Before the
 * study-stable listeners run, the study is rebuilt if stale: they see exact counts.
 *
 * What a reader sees while a study arrives: the ImagingStudy exists from the first stored batch;
 * its series, instances and counts trail the index by at most `intervalMs` plus one rebuild, and
 * are exact within that time after the last instance (QIDO-RS reads the index: always exact).
 */
import type { Db, Sql } from "../db/db.ts";
import * as repo from "../db/dicom_repo.ts";

export interface StudySync {
  /** A batch of the study committed: rebuild its ImagingStudy within `intervalMs`. */
  schedule(studyUid: string): void;
  /** Rebuilds the study's ImagingStudy now if it is stale (waits for a rebuild elsewhere). */
  syncNow(studyUid: string): Promise<void>;
  /** Rebuilds every scheduled study now (tests, shutdown). */
  flush(): Promise<void>;
  close(): void;
}

export interface StudySyncOptions {
  /** The longest an ImagingStudy trails its index while batches arrive (default 1000 ms). */
  intervalMs?: number;
  /** How often to look for studies another replica left stale (default 5000 ms). */
  pollMs?: number;
  onError?: (studyUid: string, error: unknown) => void;
}

export function createStudySync(
  db: Db,
  rebuild: (tx: Sql, studyUid: string) => Promise<void>,
  options: StudySyncOptions = {},
): StudySync {
  const intervalMs = options.intervalMs ?? 1000;
  const timers = new Map<string, number>();
  const running = new Map<string, Promise<boolean>>();
  let closed = false;

  /** One rebuild of the study if stale; false when another replica holds the study's rebuild. */
  const once = (studyUid: string): Promise<boolean> => {
    const current = running.get(studyUid);
    if (current) return current.then(() => once(studyUid));
    const work = db.transaction(async (tx) => {
      if (!(await repo.tryLockStudySync(tx, studyUid))) return false;
      const row = await repo.fhirSyncSeqs(tx, studyUid);
      if (!row || Number(row.stale) <= Number(row.synced)) return true;
      await rebuild(tx, studyUid);
      await repo.markFhirSynced(tx, studyUid, Number(row.stale));
      return true;
    }).finally(() => running.delete(studyUid));
    running.set(studyUid, work);
    return work;
  };

  const run = async (studyUid: string) => {
    timers.delete(studyUid);
    try {
      // Held elsewhere: that rebuild may have missed this batch; look again after the interval.
      if (!(await once(studyUid))) schedule(studyUid);
    } catch (e) {
      options.onError?.(studyUid, e);
      schedule(studyUid);
    }
  };

  const schedule = (studyUid: string) => {
    if (closed || timers.has(studyUid)) return;
    const timer = setTimeout(() => void run(studyUid), intervalMs) as unknown as number;
    Deno.unrefTimer(timer);
    timers.set(studyUid, timer);
  };

  const poll = async () => {
    try {
      for (const studyUid of await repo.staleStudies(db, intervalMs * 3, 20)) {
        if (!timers.has(studyUid)) await run(studyUid);
      }
    } catch (e) {
      options.onError?.("(poll)", e);
    }
  };
  const interval = setInterval(() => void poll(), options.pollMs ?? 5000) as unknown as number;
  Deno.unrefTimer(interval);

  return {
    schedule,
    async syncNow(studyUid) {
      const deadline = Date.now() + 30_000;
      while (!(await once(studyUid))) {
        if (Date.now() > deadline) throw new Error(`study ${studyUid}: its rebuild is held`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async flush() {
      const due = [...timers.keys()];
      for (const t of timers.values()) clearTimeout(t);
      timers.clear();
      await Promise.all(due.map((s) => run(s)));
      await Promise.all(running.values());
    },
    close() {
      closed = true;
      clearInterval(interval);
      for (const t of timers.values()) clearTimeout(t);
      timers.clear();
    },
  };
}
