/**
 * @module The loop behind the service's outboxes (Subscription notifications, DICOM forwarding):
 * rows queued in the database are claimed when due, a few at a time, and handled concurrently;
 * the loop sleeps until the next row falls due (or `pollMs`, to see what other replicas queued)
 * and wakes early when told something was queued or a handler finished. Claiming leases the rows,
 * so replicas share the work and a row whose process died is claimed again when its lease ends.
 */

export interface DueLoopOptions<T> {
  /** Names the loop in its log lines. */
  name: string;
  /** Rows handled at once. */
  concurrency: number;
  /** The longest sleep: rows other replicas queued are seen within it. */
  pollMs: number;
  /** Claims (and leases) up to `limit` due rows. */
  claim(limit: number): Promise<T[]>;
  /** Milliseconds until the next row falls due (≤ 0: now); undefined when none is queued. */
  nextDueIn(): Promise<number | undefined>;
  /** Handles one row; `signal` aborts when the loop closes (the lease then runs out). */
  handle(row: T, signal: AbortSignal): Promise<void>;
  log(
    level: "debug" | "info" | "warn" | "error",
    msg: string,
    data?: Record<string, unknown>,
  ): void;
}

export interface DueLoop {
  /** Looks for due rows now (after new ones were queued). */
  wake(): void;
  /** Resolves when nothing is due now and nothing is in flight (for tests). */
  idle(): Promise<void>;
  close(): Promise<void>;
}

/** A due row not claimed (another replica is claiming it): looked for again this soon. */
const RECHECK_MS = 20;

export function createDueLoop<T>(o: DueLoopOptions<T>): DueLoop {
  const inFlight = new Set<Promise<void>>();
  const aborts = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running: Promise<void> | undefined;
  let again = false;
  let closed = false;

  const track = (row: T) => {
    const p: Promise<void> = o.handle(row, aborts.signal)
      .catch((e) => o.log("error", `${o.name} crashed`, { error: String(e) }))
      .finally(() => {
        inFlight.delete(p);
        wake();
      });
    inFlight.add(p);
  };

  const pass = async () => {
    do {
      again = false;
      for (const row of await o.claim(o.concurrency - inFlight.size)) track(row);
    } while (again && !closed);
    if (closed || inFlight.size >= o.concurrency) return; // a finishing handler wakes it
    const due = await o.nextDueIn();
    const delay = due === undefined ? o.pollMs : Math.min(Math.max(due, RECHECK_MS), o.pollMs);
    schedule(delay);
  };

  const schedule = (delay: number) => {
    clearTimeout(timer);
    const t = setTimeout(wake, delay);
    Deno.unrefTimer(t);
    timer = t;
  };

  function wake() {
    if (closed) return;
    if (running) {
      again = true;
      return;
    }
    running = pass()
      .catch((e) => {
        if (!closed) o.log("error", `${o.name} failed`, { error: String(e) });
        if (!closed) schedule(o.pollMs);
      })
      .finally(() => running = undefined);
  }

  return {
    wake,
    async idle(): Promise<void> {
      for (let i = 0; i < 1000 && !closed; i++) {
        if (running) await running;
        if (inFlight.size) await Promise.all(inFlight);
        else {
          const due = await o.nextDueIn();
          if (due === undefined || due > 0) return;
          wake();
          await new Promise((r) => setTimeout(r, 5));
        }
      }
    },
    async close(): Promise<void> {
      closed = true;
      clearTimeout(timer);
      aborts.abort();
      await running;
      await Promise.allSettled(inFlight);
    },
  };
}

/** The delay before retry `attempts` + 1: base × 2^(attempts − 1), capped. */
export function backoffDelay(
  o: { backoffBaseMs: number; backoffMaxMs: number },
  attempts: number,
): number {
  return Math.min(o.backoffBaseMs * 2 ** Math.max(0, attempts - 1), o.backoffMaxMs);
}
