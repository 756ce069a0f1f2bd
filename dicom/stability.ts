/**
 * @module When a study is stable: no new instance for `seconds` after its last one, across every
 * API replica. Each stored batch `touch`es its studies in the `study_stability` table (migration
 * 010: the last arrival by the database's clock); every replica polls for studies whose quiet
 * period is over and claims them with `FOR UPDATE SKIP LOCKED`, so exactly one replica's listeners
 * hear `studyStable`, once per quiet period, whichever replicas received the instances. A replica
 * also polls right when its own touch falls due, so one process fires on time, not on the poll.
 */
import type { Db } from "../db/db.ts";

export interface StudyStableEvent {
  studyUid: string;
  /** When the last instance arrived. */
  lastInstanceAt: Date;
}

export interface StudyStability {
  /** A new instance of the study was stored: its quiet period starts again. */
  touch(studyUid: string): Promise<void>;
  onStable(listener: (event: StudyStableEvent) => void | Promise<void>): () => void;
  close(): void;
}

export interface StabilityOptions {
  /** How often every replica looks for studies touched elsewhere (default 1000 ms). */
  pollMs?: number;
  onError?: (error: unknown) => void;
}

/** Claimed per poll at most; the next poll takes the rest. */
const CLAIM_BATCH = 100;
/** Claimed rows are kept this long, then removed (a later touch makes a new one). */
const KEEP_FIRED = "1 day";

export function createStudyStability(
  db: Db,
  seconds: number,
  options: StabilityOptions = {},
): StudyStability {
  const onError = options.onError ?? (() => {});
  const listeners = new Set<(event: StudyStableEvent) => void | Promise<void>>();
  const timers = new Set<number>();
  let closed = false;
  let polling: Promise<void> | undefined;
  let again = false;
  let polls = 0;

  const claim = async (): Promise<StudyStableEvent[]> => {
    const rows = await db.query<{ study_uid: string; last_instance_at: string | Date }>(
      `UPDATE study_stability s SET fired_at = now()
         FROM (SELECT study_uid FROM study_stability
                WHERE fired_at IS NULL AND last_instance_at <= now() - make_interval(secs => $1)
                ORDER BY last_instance_at LIMIT ${CLAIM_BATCH} FOR UPDATE SKIP LOCKED) due
        WHERE s.study_uid = due.study_uid
        RETURNING s.study_uid, s.last_instance_at`,
      [seconds],
    );
    if (++polls % 3600 === 0) {
      await db.query(
        `DELETE FROM study_stability WHERE fired_at < now() - interval '${KEEP_FIRED}'`,
      );
    }
    return rows.map((r) => ({
      studyUid: r.study_uid,
      lastInstanceAt: new Date(r.last_instance_at),
    }));
  };
  const fire = (event: StudyStableEvent) => {
    for (const listener of listeners) {
      try {
        Promise.resolve(listener(event)).catch(onError);
      } catch (e) {
        onError(e);
      }
    }
  };
  /** One poll at a time; a poll asked for while one runs runs again after it. */
  const poll = (): Promise<void> => {
    if (closed) return Promise.resolve();
    if (polling) {
      again = true;
      return polling;
    }
    polling = (async () => {
      try {
        do {
          again = false;
          let events: StudyStableEvent[];
          do {
            events = await claim();
            events.forEach(fire);
          } while (events.length === CLAIM_BATCH && !closed);
        } while (again && !closed);
      } catch (e) {
        if (!closed) onError(e);
      } finally {
        polling = undefined;
      }
    })();
    return polling;
  };
  const after = (ms: number, fn: () => void): void => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn();
    }, ms) as unknown as number;
    Deno.unrefTimer(timer);
    timers.add(timer);
  };
  const interval = setInterval(() => void poll(), options.pollMs ?? 1000) as unknown as number;
  Deno.unrefTimer(interval);

  return {
    async touch(studyUid) {
      await db.query(
        `INSERT INTO study_stability (study_uid, last_instance_at) VALUES ($1, now())
         ON CONFLICT (study_uid) DO UPDATE SET last_instance_at = now(), fired_at = NULL`,
        [studyUid],
      );
      // Falls due here first, unless another touch (here or elsewhere) moves it on.
      after(seconds * 1000 + 15, () => void poll());
    },
    onStable(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close() {
      closed = true;
      clearInterval(interval);
      for (const t of timers) clearTimeout(t);
      timers.clear();
      listeners.clear();
    },
  };
}
