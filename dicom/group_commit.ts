/**
 * @module Group commit: the batches that concurrent requests of one process ask to commit are
 * committed together, in rounds, so requests of one instance each (as PACS forwarders and
 * modalities send) share a round's round trips, locks and commit instead of queueing one by one.
 */

/** A round's failure, when it held other requests' items too (each may then try its own alone). */
export class GroupFailed extends Error {
  constructor(override readonly cause: unknown) {
    super("a group transaction failed", { cause });
  }
}

export interface GroupCommitOptions<T> {
  /** Commits one round's items (of one or more requests). */
  commit(items: T[]): Promise<void>;
  /** Items with the same key never share a round (they are decided by two commits). */
  key(item: T): string;
  /** The most items one round takes (the rest wait for the next). */
  maxItems: number;
  /**
   * Rounds in flight at once. Rounds that touch the same rows queue on their locks in the database
   * whatever this number; the others overlap instead of waiting for each other.
   */
  rounds: number;
}

interface Member<T> {
  items: T[];
  resolve(): void;
  reject(e: unknown): void;
}

/**
 * A group commit: the returned function resolves once `items` are committed with whatever else
 * was waiting, and rejects with the round's error, wrapped in GroupFailed where the round held
 * other requests' items too.
 */
export function createGroupCommit<T>(opts: GroupCommitOptions<T>): (items: T[]) => Promise<void> {
  const queue: Member<T>[] = [];
  let inFlight = 0;
  /** Takes rounds off the queue until it is empty (one of at most `rounds` such loops). */
  const drain = async () => {
    inFlight++;
    try {
      while (queue.length) {
        const members: Member<T>[] = [];
        const keys = new Set<string>();
        let count = 0;
        // Members in arrival order, while they fit and share no key.
        while (queue.length) {
          const next = queue[0];
          if (members.length && count + next.items.length > opts.maxItems) break;
          if (next.items.some((item) => keys.has(opts.key(item)))) break;
          queue.shift();
          members.push(next);
          count += next.items.length;
          for (const item of next.items) keys.add(opts.key(item));
        }
        try {
          await opts.commit(members.flatMap((m) => m.items));
          for (const m of members) m.resolve();
        } catch (e) {
          for (const m of members) m.reject(members.length > 1 ? new GroupFailed(e) : e);
        }
      }
    } finally {
      inFlight--;
    }
  };
  return (items) => {
    const joined = new Promise<void>((resolve, reject) => queue.push({ items, resolve, reject }));
    if (inFlight < opts.rounds) void drain();
    return joined;
  };
}
