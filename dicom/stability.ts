/**
 * @module When a study is stable: no new instance for `seconds` after its last one, across every
 * API replica. Each stored batch `touch`es its studies in the `study_stability` table (migration
 * 010: the last arrival by the database's clock); every replica polls for studies whose quiet
 * period is over and claims them with `FOR UPDATE SKIP LOCKED`, so exactly one replica's listeners
 * hear `studyStable`, once per quiet period, whichever replicas received the instances. A replica
 * also polls right when its own touch falls due, so one process fires on time, not on the poll.
 * A claim is a lease: the period is marked fired only after its listeners ran, so a replica that
 * stops in between (or a listener that fails) leaves it to another try (migration 012). The SQL
 * is in `stability_repo.ts`.
 */
import type { Db, Sql } from "../db/db.ts";
import { isTransientFailure } from "../db/unavailable.ts";
import {
  claimDueStudies,
  deleteOldFired,
  giveBackAttempt,
  markFired,
  touchStudy,
} from "./stability_repo.ts";

export interface StudyStableEvent {
  studyUid: string;
  /** When the last instance arrived. */
  lastInstanceAt: Date;
}

export interface StudyStability {
  /**
   * A new instance of the study was stored: its quiet period starts again. Given `tx`, the touch is
   * part of that transaction (committed with the instances' rows, or not at all).
   */
  touch(studyUid: string, tx?: Sql): Promise<void>;
  /**
   * The study's quiet period was started again by a statement of the caller's own (migration
   * 015's `dicom_index_batch` writes `study_stability` itself): this process polls when it falls
   * due, as after `touch`.
   */
  touched(studyUid: string): void;
  onStable(listener: (event: StudyStableEvent) => void | Promise<void>): () => void;
  close(): void;
}

export interface StabilityOptions {
  /** How often every replica looks for studies touched elsewhere (default 1000 ms). */
  pollMs?: number;
  /**
   * How long a replica's claim on a quiet period holds while its listeners run (default 60 s;
   * longer than `$analyze`'s ORPHANED_AFTER_MS, so a rerun also requeues a Task left `requested`).
   */
  leaseMs?: number;
  onError?: (error: unknown) => void;
}

/** A claimed quiet period: the event, and the claim that marks it fired. */
interface Claimed extends StudyStableEvent {
  claimed: string;
  attempts: number;
}

/** Tries of a quiet period whose listeners fail, before it is given up (and logged). */
const MAX_ATTEMPTS = 3;
/** Claimed per poll at most; the next poll takes the rest. */
const CLAIM_BATCH = 100;

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

  const leaseSeconds = (options.leaseMs ?? 60_000) / 1000;
  const claim = async (): Promise<Claimed[]> => {
    const rows = await claimDueStudies(db, seconds, leaseSeconds, CLAIM_BATCH);
    if (++polls % 3600 === 0) await deleteOldFired(db);
    return rows.map((r) => ({
      studyUid: r.study_uid,
      lastInstanceAt: new Date(r.last_instance_at),
      claimed: r.claimed,
      attempts: Number(r.attempts),
    }));
  };
  /**
   * Runs the listeners; then marks the quiet period fired (unless a new instance started another
   * one meanwhile). A failed listener leaves the claim to lapse, so it is tried again after the
   * lease, up to MAX_ATTEMPTS times; a transient failure (a dependency down: `isTransientFailure`)
   * gives its attempt back, so it is tried after every lease until the dependency is back.
   */
  const fire = async (event: Claimed) => {
    const { claimed, attempts, ...stable } = event;
    const results = await Promise.allSettled(
      [...listeners].map((listener) => Promise.resolve().then(() => listener(stable))),
    );
    const failures = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    for (const f of failures) onError(f.reason);
    if (failures.length && failures.every((f) => isTransientFailure(f.reason))) {
      await giveBackAttempt(db, event.studyUid, claimed);
      return;
    }
    if (failures.length && attempts < MAX_ATTEMPTS) return;
    await markFired(db, event.studyUid, claimed);
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
          let events: Claimed[];
          do {
            events = await claim();
            await Promise.all(events.map(fire));
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

  /** Falls due here first, unless another touch (here or elsewhere) moves it on. */
  const touched = () => after(seconds * 1000 + 15, () => void poll());

  return {
    async touch(studyUid, tx) {
      await touchStudy(tx ?? db, studyUid);
      touched();
    },
    touched,
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
