/**
 * @module The object sweep: removes DICOM objects that no instance row points at. STOW-RS puts an
 * object before its row commits and deletes it when the row does not (`store.ts`, and
 * `db/object_cleanup.ts` while the store is down), so such an object is left only when the process
 * died between the two. The sweep lists `dicom/`, reads the SOP Instance UID from each key
 * (`dicom/<study>/<series>/<sop>.<sha256:16>-<random:8>.dcm`), asks the rows of those instances
 * which keys they hold, and deletes the rest that are older than `olderThanMs` (an upload still in
 * progress is younger). Keys of another shape are left alone. One replica runs it every
 * OBJECT_SWEEP_HOURS (a claim in `maintenance_claim`); admins can run it now
 * (`POST /admin/objects/sweep`). The other way round, rows whose object is missing
 * (`sweepMissingObjects`) are reported, and removed only when an admin asks.
 */
import type { Db } from "../db/db.ts";
import { instanceObjectKeys } from "../db/dicom_repo.ts";
import { claimMaintenance } from "../db/maintenance_repo.ts";
import type { ObjectStore } from "../db/object_store.ts";
import { type DeletedInstance, instancesOfStudies, studyPage } from "./delete_repo.ts";

export interface SweepResult {
  /** Objects listed under `dicom/`. */
  listed: number;
  /** Objects without a row, older than the cutoff: deleted. */
  removed: number;
  /** Objects without a row, too recent to tell from an upload in progress: kept. */
  recent: number;
  /** Keys that are not of the shape STOW-RS writes: kept. */
  foreign: number;
  seconds: number;
}

/** Objects younger than this are never swept: an upload may still be committing their rows. */
export const OBJECT_SWEEP_MIN_AGE_MS = 3_600_000;

const KEY = /^dicom\/[^/]+\/[^/]+\/(.+)\.[0-9a-f]{16}-[0-9a-f]{8}\.dcm$/;
const BATCH = 500;

export async function sweepUnindexedObjects(
  deps: { db: Db; store: ObjectStore },
  options: { olderThanMs: number; now?: number },
): Promise<SweepResult> {
  const started = performance.now();
  const cutoff = (options.now ?? Date.now()) - options.olderThanMs;
  const result: SweepResult = { listed: 0, removed: 0, recent: 0, foreign: 0, seconds: 0 };
  let batch: { key: string; sop: string; modified?: Date }[] = [];
  const settle = async () => {
    if (!batch.length) return;
    const live = new Set(
      await instanceObjectKeys(deps.db, [...new Set(batch.map((b) => b.sop))]),
    );
    for (const b of batch) {
      if (live.has(b.key)) continue;
      // Without a time the object's age is unknown: kept, as a recent one.
      if (!b.modified || b.modified.getTime() > cutoff) {
        result.recent++;
        continue;
      }
      await deps.store.delete(b.key);
      result.removed++;
    }
    batch = [];
  };
  for await (const o of deps.store.list("dicom/")) {
    result.listed++;
    const m = KEY.exec(o.key);
    if (!m) {
      result.foreign++;
      continue;
    }
    batch.push({ key: o.key, sop: m[1], modified: o.modified });
    if (batch.length >= BATCH) await settle();
  }
  await settle();
  result.seconds = Math.round((performance.now() - started) / 100) / 10;
  return result;
}

/** What the sweep of rows without objects found (`sweepMissingObjects`). */
export interface MissingResult {
  /** Instance rows checked: those last written before the cutoff. */
  checked: number;
  /** Rows whose object is not in the store. */
  missing: number;
  /** Of those, the rows removed (asked for, by `remove`). */
  removed: number;
  /** Up to 20 of the missing, as `study/series/sop`. */
  examples: string[];
  /** Why the rows were not removed though asked, if they were not. */
  refused?: string;
}

const STUDY_PAGE = 50;
const EXAMPLES = 20;

/**
 * Rows without objects: the instance rows (last written before the cutoff) whose object the store
 * does not hold, found one study at a time (one listing of the study's folder on S3). A deletion
 * removes rows before objects and STOW-RS puts objects before rows, so such a row means bytes lost
 * outside the service (or a store that is not the one the rows were written to). They are
 * reported; with `remove` (an admin asking: `?missing=remove`) each study's missing rows are
 * passed to it once checked again one by one, unless the store holds no DICOM object at all: a
 * store mounted wrong must not empty the index.
 */
export async function sweepMissingObjects(
  deps: { db: Db; store: ObjectStore },
  options: {
    olderThanMs: number;
    now?: number;
    remove?: (studyUid: string, rows: DeletedInstance[]) => Promise<number>;
  },
): Promise<MissingResult> {
  const cutoff = new Date((options.now ?? Date.now()) - options.olderThanMs);
  const result: MissingResult = { checked: 0, missing: 0, removed: 0, examples: [] };
  let remove = options.remove;
  if (remove) {
    let any = false;
    for await (const _ of deps.store.list("dicom/")) {
      any = true;
      break;
    }
    if (!any) {
      remove = undefined;
      result.refused = "the object store holds no DICOM object at all: is it the right one?";
    }
  }
  for (let after = "";;) {
    const studies = await studyPage(deps.db, after, STUDY_PAGE);
    if (!studies.length) break;
    after = studies[studies.length - 1];
    const byStudy = Map.groupBy(
      await instancesOfStudies(deps.db, studies, cutoff),
      (r) => r.study_uid,
    );
    for (const [studyUid, rows] of byStudy) {
      result.checked += rows.length;
      const present = await deps.store.existing(rows.map((r) => r.object_key));
      let missing = rows.filter((r) => !present.has(r.object_key));
      if (!missing.length) continue;
      result.missing += missing.length;
      for (const r of missing.slice(0, EXAMPLES - result.examples.length)) {
        result.examples.push(`${r.study_uid}/${r.series_uid}/${r.sop_uid}`);
      }
      if (!remove) continue;
      const heads = await Promise.all(missing.map((r) => deps.store.head(r.object_key)));
      missing = missing.filter((_, i) => !heads[i]);
      if (missing.length) result.removed += await remove(studyUid, missing);
    }
  }
  return result;
}

/**
 * Runs the sweep every `everyHours` on whichever replica claims it (the first try a few minutes
 * after start); `close()` stops the timer. Failures are logged and tried at the next period.
 */
export function scheduleObjectSweep(
  deps: {
    db: Db;
    store: ObjectStore;
    log(level: "info" | "warn", msg: string, data?: Record<string, unknown>): void;
  },
  options: { everyHours: number; olderThanMs: number; firstAfterMs?: number },
): { close(): void } {
  if (options.everyHours <= 0) return { close() {} };
  const everyMs = options.everyHours * 3_600_000;
  let timer: number | undefined;
  let closed = false;
  const run = async () => {
    try {
      if (!(await claimMaintenance(deps.db, "object-sweep", everyMs))) return;
      const result = await sweepUnindexedObjects(deps, { olderThanMs: options.olderThanMs });
      deps.log("info", "object sweep done", { ...result });
      // Rows without objects are reported, never removed unasked (`POST /admin/objects/sweep`).
      const missing = await sweepMissingObjects(deps, { olderThanMs: options.olderThanMs });
      if (missing.missing) {
        deps.log("warn", "instance rows whose object is missing from the store", { ...missing });
      }
    } catch (e) {
      deps.log("warn", "object sweep failed", { error: String(e) });
    }
  };
  const next = (ms: number) => {
    if (closed) return;
    timer = setTimeout(() => void run().finally(() => next(everyMs)), ms) as unknown as number;
    Deno.unrefTimer(timer);
  };
  next(options.firstAfterMs ?? 5 * 60_000);
  return {
    close() {
      closed = true;
      clearTimeout(timer);
    },
  };
}
