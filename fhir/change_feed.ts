/**
 * @module The change feed: every committed resource version, in order, to in-process listeners
 * (SSE clients, Subscription delivery, analysis rules). It polls the version table (migration 005)
 * rather than hooking writes, so it sees what any replica committed and misses nothing a
 * transaction wrote late; a listener that throws does not stop the others.
 */
import type { Db } from "../db/db.ts";
import { type ChangeRow, changesAfter, headSeq } from "../db/change_feed_repo.ts";

export type ResourceChange = ChangeRow;

export interface ChangeFeed {
  /** Calls `listener` with each batch of changes committed after it subscribed. */
  subscribe(listener: (changes: ResourceChange[]) => void | Promise<void>): () => void;
  /** Resolves once every change committed before the call has been delivered (for tests). */
  caughtUp(): Promise<void>;
  close(): void;
}

export function createChangeFeed(
  db: Db,
  options: { intervalMs: number; onError?: (e: unknown) => void },
): ChangeFeed {
  const listeners = new Set<(changes: ResourceChange[]) => void | Promise<void>>();
  let position: number | undefined;
  let timer: number | undefined;
  let closed = false;
  let running: Promise<void> | undefined;
  const waiters: { target: number; resolve: () => void }[] = [];

  const poll = async () => {
    if (position === undefined) position = await headSeq(db);
    while (!closed) {
      const changes = await changesAfter(db, position);
      if (!changes.length) break;
      position = changes[changes.length - 1].seq;
      await Promise.all(
        [...listeners].map((l) =>
          Promise.resolve().then(() => l(changes)).catch((e) => options.onError?.(e))
        ),
      );
    }
    for (const w of waiters.splice(0)) {
      if (position! >= w.target) w.resolve();
      else waiters.push(w);
    }
  };
  const tick = () => {
    if (closed) return;
    running = poll().catch((e) => options.onError?.(e)).finally(() => {
      running = undefined;
      if (!closed) {
        timer = setTimeout(tick, options.intervalMs) as unknown as number;
        Deno.unrefTimer(timer);
      }
    });
  };
  let started = false;
  const start = () => {
    if (started) return;
    started = true;
    tick();
  };
  return {
    subscribe(listener) {
      listeners.add(listener);
      start();
      return () => listeners.delete(listener);
    },
    async caughtUp() {
      start();
      const target = await headSeq(db);
      if (position !== undefined && position >= target) return;
      await new Promise<void>((resolve) => waiters.push({ target, resolve }));
    },
    close() {
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      listeners.clear();
      for (const w of waiters.splice(0)) w.resolve();
      void running;
    },
  };
}
