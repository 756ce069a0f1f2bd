/**
 * @module A TCP proxy between the API and a dependency (S3, Redis), for fault tests that must not
 * touch the shared server other tests use: `cut()` resets every connection and refuses new ones (a
 * server restarting or gone), `stall()` keeps connections open and passes nothing either way (a
 * stalled network or a SIGSTOPped server), `restore()` lets traffic through again.
 */

export interface TcpProxy {
  /** `127.0.0.1:<port>` the proxy listens on. */
  readonly port: number;
  /** Closes every connection and refuses new ones until `restore()`. */
  cut(): void;
  /** Passes no byte either way until `restore()`; connections stay open. */
  stall(): void;
  restore(): void;
  close(): Promise<void>;
}

export function startTcpProxy(target: { hostname: string; port: number }): TcpProxy {
  let state: "open" | "stalled" | "cut" = "open";
  let waiters: (() => void)[] = [];
  const conns = new Set<Deno.Conn>();
  /** Resolves once traffic may flow (at once when open). */
  const gate = () =>
    state === "stalled" ? new Promise<void>((r) => waiters.push(r)) : Promise.resolve();
  const pipe = async (from: Deno.Conn, to: Deno.Conn) => {
    const buf = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        await gate();
        const n = await from.read(buf);
        if (n === null) break;
        await gate();
        if (state === "cut") break;
        let off = 0;
        while (off < n) off += await to.write(buf.subarray(off, n));
      }
    } catch { /* the other side went away */ }
    for (const c of [from, to]) {
      if (conns.delete(c)) {
        try {
          c.close();
        } catch { /* closed */ }
      }
    }
  };
  let listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const accept = async (l: Deno.Listener) => {
    try {
      for await (const client of l) {
        conns.add(client);
        (async () => {
          await gate();
          let upstream: Deno.Conn;
          try {
            upstream = await Deno.connect(target);
          } catch {
            conns.delete(client);
            client.close();
            return;
          }
          conns.add(upstream);
          void pipe(client, upstream);
          void pipe(upstream, client);
        })();
      }
    } catch { /* closed */ }
  };
  void accept(listener);
  const closeAll = () => {
    for (const c of conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    conns.clear();
  };
  const release = () => {
    const w = waiters;
    waiters = [];
    for (const r of w) r();
  };
  return {
    port,
    cut() {
      if (state === "cut") return;
      state = "cut";
      listener.close();
      closeAll();
      release();
    },
    stall() {
      if (state === "open") state = "stalled";
    },
    restore() {
      if (state === "cut") {
        listener = Deno.listen({ hostname: "127.0.0.1", port });
        void accept(listener);
      }
      state = "open";
      release();
    },
    close() {
      if (state !== "cut") {
        try {
          listener.close();
        } catch { /* closed */ }
      }
      state = "cut";
      closeAll();
      release();
      return Promise.resolve();
    },
  };
}
