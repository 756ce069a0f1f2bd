/**
 * @module Objects that must go but could not be removed at once: a STOW part whose object was put
 * but whose row did not commit, with the store failing the delete too, and a part whose put timed
 * out (the server may still complete it after the client gave up: a stalled S3 that resumes).
 * Each key is deleted again every few seconds until a delete succeeds, and once more after its
 * `settleAt` (for a timed-out put, past the time a late write could still land), so no object is
 * left without its row once the store answers again. The list lives in the process: a key pending when the process
 * stops is in the log ("could not remove an unindexed object").
 */
import type { ObjectStore } from "./object_store.ts";

export interface ObjectCleanup {
  /**
   * Removes `key` in the background. `uncertainMs`: the put may still land that long from now,
   * so a delete only settles the key after it.
   */
  add(key: string, uncertainMs?: number): void;
  /** Keys not yet removed for good. */
  pending(): string[];
  /** Tries every pending key once now; resolves when done (tests, shutdown). */
  flush(): Promise<void>;
  close(): void;
}

export function createObjectCleanup(
  store: ObjectStore,
  options: {
    intervalMs?: number;
    onError?: (key: string, error: unknown) => void;
  } = {},
): ObjectCleanup {
  const intervalMs = options.intervalMs ?? 5_000;
  /** Key → when a delete settles it, and when to try next. */
  const keys = new Map<string, { settleAt: number; nextAt: number }>();
  let timer: number | undefined;
  let running: Promise<void> | undefined;
  let closed = false;

  const schedule = () => {
    if (timer || closed || !keys.size) return;
    timer = setTimeout(() => {
      timer = undefined;
      void run().finally(schedule);
    }, intervalMs) as unknown as number;
    Deno.unrefTimer(timer);
  };
  const sweep = async () => {
    for (const [key, entry] of [...keys]) {
      const started = Date.now();
      if (entry.nextAt > started) continue;
      try {
        await store.delete(key);
        if (started >= entry.settleAt) keys.delete(key);
        else entry.nextAt = entry.settleAt;
      } catch (e) {
        options.onError?.(key, e);
        // The store is still down: the rest would fail alike.
        return;
      }
    }
  };
  const run = () => running ??= sweep().finally(() => running = undefined);

  return {
    add(key, uncertainMs = 0) {
      const settleAt = Math.max(keys.get(key)?.settleAt ?? 0, Date.now() + uncertainMs);
      keys.set(key, { settleAt, nextAt: 0 });
      schedule();
    },
    pending: () => [...keys.keys()],
    async flush() {
      await running;
      for (const entry of keys.values()) entry.nextAt = 0;
      await run();
    },
    close() {
      closed = true;
      clearTimeout(timer);
    },
  };
}
