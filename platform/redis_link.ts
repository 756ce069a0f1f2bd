/**
 * @module Redis connections for the job queue: connected on demand with a bounded connect
 * timeout, never reconnecting behind the caller's back (a dropped connection is replaced on the
 * next command), with no offline queue, so a command while Redis is down fails at once instead
 * of hanging, and with an 'error' listener, so a lost connection never crashes the process.
 */
import { createClient } from "redis";

/** The small part of a node-redis client the queue uses. */
export interface RedisLink {
  sendCommand<T>(args: string[], options?: { timeout?: number }): Promise<T>;
  multi(): { addCommand(args: string[]): unknown; exec(): Promise<unknown[]> };
  readonly isReady: boolean;
  destroy(): void;
  close(): Promise<void>;
}

export interface LinkOptions {
  url: string;
  connectTimeoutMs: number;
  /** Runs on each new connection before it is used (e.g. creating consumer groups). */
  onConnect?: (link: RedisLink) => Promise<void>;
  onError?: (error: Error) => void;
}

/** Opens one connection, or rejects within about `connectTimeoutMs`. */
export async function openLink(options: LinkOptions): Promise<RedisLink> {
  const client = createClient({
    url: options.url,
    RESP: 2,
    disableOfflineQueue: true,
    socket: { connectTimeout: options.connectTimeoutMs, reconnectStrategy: false },
  });
  client.on("error", (error: Error) => options.onError?.(error));
  const link = client as unknown as RedisLink;
  try {
    // connectTimeout bounds the TCP connect; this bounds a server that accepts but never answers.
    await withTimeout(
      (async () => {
        await client.connect();
        await options.onConnect?.(link);
      })(),
      options.connectTimeoutMs,
      () => client.destroy(),
    );
  } catch (error) {
    try {
      client.destroy();
    } catch { /* already closed */ }
    throw error;
  }
  return link;
}

/** One shared connection for ordinary commands, (re)opened on first use after a failure. */
export interface SharedLink {
  get(): Promise<RedisLink>;
  close(): Promise<void>;
}

export function createSharedLink(options: LinkOptions): SharedLink {
  let link: RedisLink | undefined;
  let opening: Promise<RedisLink> | undefined;
  let closed = false;
  return {
    get() {
      if (closed) return Promise.reject(new Error("the job queue is closed"));
      if (link?.isReady) return Promise.resolve(link);
      if (!opening) {
        const stale = link;
        link = undefined;
        if (stale) destroyQuietly(stale);
        opening = openLink(options).then((opened) => {
          if (closed) {
            destroyQuietly(opened);
            throw new Error("the job queue is closed");
          }
          return link = opened;
        }).finally(() => opening = undefined);
      }
      return opening;
    },
    async close() {
      closed = true;
      await opening?.catch(() => {});
      if (link?.isReady) await link.close().catch(() => destroyQuietly(link!));
      else if (link) destroyQuietly(link);
      link = undefined;
    },
  };
}

/** Connections for blocking reads, one per concurrent `next`, kept for reuse. */
export interface BlockingLinks {
  acquire(): Promise<RedisLink>;
  release(link: RedisLink): void;
  /** Destroys them all: a blocked read is cut short and rejects. */
  close(): void;
}

export function createBlockingLinks(options: LinkOptions): BlockingLinks {
  const idle: RedisLink[] = [];
  const all = new Set<RedisLink>();
  let closed = false;
  return {
    async acquire() {
      if (closed) throw new Error("the job queue is closed");
      while (idle.length) {
        const link = idle.pop()!;
        if (link.isReady) return link;
        all.delete(link);
        destroyQuietly(link);
      }
      const link = await openLink({ ...options, onConnect: undefined });
      if (closed) {
        destroyQuietly(link);
        throw new Error("the job queue is closed");
      }
      all.add(link);
      return link;
    },
    release(link) {
      if (!closed && link.isReady) idle.push(link);
      else {
        all.delete(link);
        destroyQuietly(link);
      }
    },
    close() {
      closed = true;
      for (const link of all) destroyQuietly(link);
      all.clear();
      idle.length = 0;
    },
  };
}

/** `work`, or a rejection after `ms` (calling `onTimeout` first); the timer never outlives it. */
export async function withTimeout<T>(
  work: Promise<T>,
  ms: number,
  onTimeout: () => void,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      try {
        onTimeout();
      } catch { /* already closed */ }
      reject(new Error(`Redis did not answer within ${ms} ms`));
    }, ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

function destroyQuietly(link: RedisLink): void {
  try {
    link.destroy();
  } catch { /* already closed */ }
}
