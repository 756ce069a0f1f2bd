/**
 * @module Server-Sent Events with a bearer token. `EventSource` cannot send an Authorization
 * header, so the stream is read with `fetch` and parsed here (the WHATWG event-stream format);
 * it reconnects after `retry` with `Last-Event-ID`, so nothing is missed while away.
 */

export interface SseEvent {
  event: string;
  data: string;
  id?: string;
}

/** An incremental parser: feed it text as it arrives, get the complete events. */
export class SseParser {
  #buffer = "";
  #event = "";
  #data: string[] = [];
  #id: string | undefined;
  lastEventId: string | undefined;
  retry: number | undefined;

  feed(text: string): SseEvent[] {
    this.#buffer += text;
    const out: SseEvent[] = [];
    let nl: number;
    while ((nl = this.#buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = this.#buffer.slice(0, nl);
      const width = this.#buffer.startsWith("\r\n", nl) ? 2 : 1;
      this.#buffer = this.#buffer.slice(nl + width);
      if (line === "") {
        if (this.#data.length) {
          if (this.#id !== undefined) this.lastEventId = this.#id;
          out.push({ event: this.#event || "message", data: this.#data.join("\n"), id: this.#id });
        }
        this.#event = "";
        this.#data = [];
        this.#id = undefined;
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") this.#event = value;
      else if (field === "data") this.#data.push(value);
      else if (field === "id") this.#id = value;
      else if (field === "retry" && /^\d+$/.test(value)) this.retry = Number(value);
    }
    return out;
  }
}

export interface StreamOptions {
  /** Returns the Authorization header value (a fresh token on each reconnect). */
  authorization(): Promise<string | undefined>;
  onEvent(e: SseEvent): void;
  onState?(state: "open" | "closed" | "error"): void;
}

/** Opens `url` as an event stream until the returned function is called. */
export function openEventStream(url: string, options: StreamOptions): () => void {
  const abort = new AbortController();
  let lastEventId: string | undefined;
  let retry = 3000;
  const run = async () => {
    while (!abort.signal.aborted) {
      try {
        const headers: Record<string, string> = { Accept: "text/event-stream" };
        const auth = await options.authorization();
        if (auth) headers.Authorization = auth;
        if (lastEventId) headers["Last-Event-ID"] = lastEventId;
        const res = await fetch(url, { headers, signal: abort.signal, cache: "no-store" });
        if (!res.ok || !res.body) throw new Error(`events: HTTP ${res.status}`);
        options.onState?.("open");
        const parser = new SseParser();
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        while (true) {
          const { value, done } = await reader.read();
          if (done) break;
          for (const e of parser.feed(value)) options.onEvent(e);
          if (parser.lastEventId) lastEventId = parser.lastEventId;
          if (parser.retry) retry = parser.retry;
        }
        options.onState?.("closed");
      } catch {
        if (abort.signal.aborted) return;
        options.onState?.("error");
      }
      await new Promise((r) => setTimeout(r, retry));
    }
  };
  run();
  return () => abort.abort();
}
