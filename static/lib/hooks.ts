/** @module Hooks the pages share: data loading with cancellation and reload, and live events. */
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { authorization } from "./session.ts";
import { openEventStream, type SseEvent } from "./sse.ts";

export interface Async<T> {
  data?: T;
  error?: string;
  loading: boolean;
  reload(): void;
}

/** Runs `load` when `deps` change (the previous run aborted) and on `reload()`. */
export function useAsync<T>(load: (signal: AbortSignal) => Promise<T>, deps: unknown[]): Async<T> {
  const [state, setState] = useState<{ data?: T; error?: string; loading: boolean }>({
    loading: true,
  });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const abort = new AbortController();
    setState((s) => ({ ...s, loading: true }));
    load(abort.signal).then(
      (data) => !abort.signal.aborted && setState({ data, loading: false }),
      (e) =>
        !abort.signal.aborted &&
        setState((s) => ({ ...s, error: (e as Error).message, loading: false })),
    );
    return () => abort.abort();
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, reload };
}

export interface LiveEvent {
  type: string;
  id: string;
  status?: string;
  statusReason?: { text?: string };
  focus?: string;
}

/** Live resource changes from `/events` (`query`: `types=…&focus=…`); `null` query: none. */
export function useLiveEvents(
  query: string | null,
  onEvent: (e: LiveEvent) => void,
): "connecting" | "open" | "error" {
  const [state, setState] = useState<"connecting" | "open" | "error">("connecting");
  const handler = useRef(onEvent);
  handler.current = onEvent;
  useEffect(() => {
    if (query === null) return;
    return openEventStream(`/events?${query}`, {
      authorization,
      onState: (s) => setState(s === "open" ? "open" : s === "error" ? "error" : "connecting"),
      onEvent: (e: SseEvent) => {
        try {
          const data = JSON.parse(e.data);
          handler.current({ type: e.event, id: data.id, ...data });
        } catch { /* a malformed event is skipped */ }
      },
    });
  }, [query]);
  return state;
}
