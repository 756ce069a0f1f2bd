/**
 * @module FHIR R4 Subscriptions (rest-hook): listens to the change feed, hands each batch to the
 * matcher on its own worker (the feed's other listeners never wait for it), and runs the sender.
 * The matcher's feed position is saved, so changes committed while no replica ran are matched at
 * the next start; deliveries are rows, so their retries survive restarts too.
 */
import type { Db } from "../../db/db.ts";
import { changesAfter, headSeq } from "../../db/change_feed_repo.ts";
import type { ChangeFeed, ResourceChange } from "../change_feed.ts";
import type { FhirService } from "../service.ts";
import { readCursor, saveCursor } from "./delivery_repo.ts";
import { createMatcher } from "./matcher.ts";
import { createSender, type RetryOptions } from "./sender.ts";

export type SubscriptionOptions = RetryOptions;

export const DEFAULT_SUBSCRIPTION_OPTIONS: Readonly<SubscriptionOptions> = Object.freeze({
  maxAttempts: 6,
  backoffBaseMs: 2_000,
  backoffMaxMs: 300_000,
  timeoutMs: 10_000,
  pollMs: 1_000,
  concurrency: 16,
});

export interface SubscriptionService {
  /** The retry policy in use; its fields may be changed at run time (tests shorten it). */
  readonly options: SubscriptionOptions;
  /** Resolves once every change committed before the call is matched and nothing is due. */
  caughtUp(): Promise<void>;
  close(): Promise<void>;
}

const CURSOR = "subscriptions";

export function createSubscriptionService(deps: {
  db: Db;
  fhir: FhirService;
  changes: ChangeFeed;
  log(level: "debug" | "info" | "warn" | "error", msg: string, data?: object): void;
  options?: Partial<SubscriptionOptions>;
}): SubscriptionService {
  const { db, log } = deps;
  const options: SubscriptionOptions = { ...DEFAULT_SUBSCRIPTION_OPTIONS, ...deps.options };
  const sender = createSender({ db, fhir: deps.fhir, options, log });
  const matcher = createMatcher({ db, fhir: deps.fhir, log, queued: () => sender.wake() });
  const queue: ResourceChange[][] = [];
  let position: number | undefined; // the last change matched
  let working: Promise<void> | undefined;
  let closed = false;

  const handle = async (changes: ResourceChange[]) => {
    const fresh = changes.filter((c) => c.seq > position!);
    if (!fresh.length) return;
    for (let attempt = 1;; attempt++) {
      try {
        await matcher.process(fresh);
        break;
      } catch (e) {
        // A failing database: try again; anything else that keeps failing is skipped, logged.
        log("error", "subscription matching failed", { error: String(e), attempt });
        if (closed || attempt >= 3) break;
        await new Promise((r) => setTimeout(r, 1000 * attempt));
      }
    }
    position = fresh[fresh.length - 1].seq;
    await saveCursor(db, CURSOR, position);
  };

  const start = async () => {
    position = await readCursor(db, CURSOR);
    if (position === undefined) {
      position = await headSeq(db);
      await saveCursor(db, CURSOR, position);
      return;
    }
    for (let batch; !closed && (batch = await changesAfter(db, position)).length;) {
      await handle(batch);
    }
  };

  const drain = async () => {
    if (position === undefined) await start();
    while (queue.length && !closed) await handle(queue.shift()!);
  };
  const kick = () => {
    if (working || closed) return;
    working = drain()
      .catch(async (e) => {
        log("error", "subscription worker failed", { error: String(e) });
        if (!closed) await new Promise((r) => setTimeout(r, 1000));
      })
      .finally(() => {
        working = undefined;
        if (queue.length) kick();
      });
  };

  const unsubscribe = deps.changes.subscribe((changes) => {
    queue.push(changes);
    kick();
  });
  kick();
  sender.wake();

  return {
    options,
    async caughtUp() {
      await deps.changes.caughtUp();
      while (working && !closed) await working;
      await sender.idle();
    },
    async close() {
      closed = true;
      unsubscribe();
      await working;
      await sender.close();
    },
  };
}
