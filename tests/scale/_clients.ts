/**
 * @module The scale test's clients, talking to the load balancer only: a request ledger that
 * retries what a dying replica could not answer and records every failure (HAProxy's own 5xx,
 * marked `X-LB-Error`, apart from the API's), the uploading client (STOW-RS in parts, find the
 * ImagingStudy, `$analyze`, poll the Task to its end), and an SSE client of `GET /events` that
 * reconnects with `Last-Event-ID` when its stream ends.
 */
import { stowInstances } from "../../dicom/synth/stow.ts";
import type { TestStudy } from "../sidecar/_study.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

const FINAL = new Set(["completed", "failed", "cancelled", "rejected", "entered-in-error"]);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One failed attempt: a connection error, a 5xx HAProxy made, or a 5xx the API answered. */
export interface Failure {
  kind: "connection" | "lb" | "app";
  at: number;
  method: string;
  path: string;
  status?: number;
  detail: string;
}

/** Every request the clients made, and every attempt that failed. */
export class Ledger {
  requests = 0;
  readonly failures: Failure[] = [];
  readonly servedBy: Record<string, number> = {};

  constructor(readonly origin: string) {}

  /**
   * `fetch` through the load balancer, retried (up to `attempts`, 250 ms apart) after a connection
   * error or any 5xx; each failed attempt is recorded. Other statuses are returned as they are.
   */
  async fetch(input: string | URL | Request, init: RequestInit = {}): Promise<Response> {
    const url = new URL(String(input), this.origin);
    const method = init.method ?? "GET";
    const path = url.pathname + url.search;
    for (let attempt = 1;; attempt++) {
      this.requests++;
      let res: Response;
      try {
        res = await fetch(url, init);
      } catch (e) {
        this.failures.push({ kind: "connection", at: Date.now(), method, path, detail: String(e) });
        if (attempt >= 20) throw e;
        await sleep(250);
        continue;
      }
      const by = res.headers.get("x-served-by");
      if (by) this.servedBy[by] = (this.servedBy[by] ?? 0) + 1;
      if (res.status < 500 || attempt >= 20) return res;
      const text = await res.text();
      const lb = res.headers.has("x-lb-error");
      this.failures.push({
        kind: lb ? "lb" : "app",
        at: Date.now(),
        method,
        path,
        status: res.status,
        detail: `${by ?? "haproxy"}: ${text.slice(0, 300)}`,
      });
      await sleep(250);
    }
  }

  /** A FHIR JSON request; the body parsed. */
  async fhir(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: Json }> {
    let res: Response;
    let text: string;
    for (let attempt = 1;; attempt++) {
      res = await this.fetch(`/fhir/${path}`, {
        method,
        headers: {
          accept: "application/fhir+json",
          ...(body === undefined ? {} : { "content-type": "application/fhir+json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      try {
        text = await res.text();
        break;
      } catch (e) {
        // The API was killed while its answer was on the way: a connection failure, tried again
        // like one at connect time (the requests the clients make are idempotent).
        this.failures.push({
          kind: "connection",
          at: Date.now(),
          method,
          path: `/fhir/${path}`,
          detail: String(e),
        });
        if (attempt >= 20) throw e;
        await sleep(250);
      }
    }
    let parsed: Json = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch { /* not JSON */ }
    return { status: res.status, body: parsed };
  }
}

/** What one uploading client did. */
export interface ClientResult {
  client: number;
  studyUid: string;
  imagingStudyId: string;
  taskId: string;
  status: string;
  reason?: string;
  /** When `$analyze` answered, and when the client saw the Task end (epoch ms). */
  askedAt: number;
  endedAt: number;
}

/**
 * Client `n`: STOW-RS of the study in `parts` requests, the ImagingStudy found by its identifier
 * once it holds every instance, `$analyze` with `model`, then the Task polled until it ends.
 * `onAsked` is told when the Task exists (the test times its kill by it).
 */
export async function uploadAndAnalyse(
  ledger: Ledger,
  n: number,
  study: TestStudy,
  options: { model: string; parts: number; timeoutMs: number; onAsked?: () => void },
): Promise<ClientResult> {
  const doFetch =
    ((input: string | URL | Request, init?: RequestInit) =>
      ledger.fetch(input as string, init)) as typeof fetch;
  const per = Math.ceil(study.instances.length / options.parts);
  for (let i = 0; i < study.instances.length; i += per) {
    const stow = await stowInstances(
      `${ledger.origin}/dicomweb`,
      study.instances.slice(i, i + per),
      { fetch: doFetch },
    );
    if (stow.status !== 200) {
      throw new Error(`client ${n}: STOW-RS answered ${stow.status}: ${JSON.stringify(stow)}`);
    }
  }
  const uid = study.plan.study.studyInstanceUid;
  const query = `ImagingStudy?identifier=${encodeURIComponent(`urn:dicom:uid|urn:oid:${uid}`)}`;
  const deadline = Date.now() + options.timeoutMs;
  let imagingStudy: Json;
  while (!imagingStudy) {
    const found = (await ledger.fhir("GET", query)).body?.entry?.[0]?.resource;
    if (found?.numberOfInstances === study.instances.length) imagingStudy = found;
    else if (Date.now() > deadline) throw new Error(`client ${n}: no complete ImagingStudy`);
    else await sleep(200);
  }
  const asked = await ledger.fhir("POST", `ImagingStudy/${imagingStudy.id}/$analyze`, {
    resourceType: "Parameters",
    parameter: [{ name: "model", valueString: options.model }],
  });
  if (asked.status !== 202) {
    throw new Error(
      `client ${n}: $analyze answered ${asked.status}: ${JSON.stringify(asked.body)}`,
    );
  }
  const askedAt = Date.now();
  options.onAsked?.();
  const taskId = asked.body.id as string;
  for (;;) {
    const task = (await ledger.fhir("GET", `Task/${taskId}`)).body;
    if (FINAL.has(task?.status)) {
      return {
        client: n,
        studyUid: uid,
        imagingStudyId: imagingStudy.id,
        taskId,
        status: task.status,
        reason: task.statusReason?.text,
        askedAt,
        endedAt: Date.now(),
      };
    }
    if (Date.now() > deadline) {
      throw new Error(`client ${n}: Task/${taskId} still ${task?.status} after the deadline`);
    }
    await sleep(300);
  }
}

/** An SSE client of `GET /events?types=Task` that resumes with Last-Event-ID. */
export class EventClient {
  /** Task id → every status it was seen with, in order. */
  readonly statuses = new Map<string, string[]>();
  /** The replica that served each connection (X-Served-By), in order. */
  readonly connections: string[] = [];
  /** Each connection: when it opened, where, and the Last-Event-ID it sent. */
  readonly log: string[] = [];
  /** Task id → `seq:status` of every event about it. */
  readonly seqs = new Map<string, string[]>();
  /** Reasons each stream ended before `stop()`. */
  readonly ends: string[] = [];
  lastEventId?: string;
  #stopped = false;
  #abort = new AbortController();
  #running: Promise<void>;
  #connected = Promise.withResolvers<void>();

  constructor(readonly ledger: Ledger, readonly name: string) {
    this.#running = this.#run();
  }

  /** Resolves once the first stream is open (its `: connected` comment read). */
  get connected(): Promise<void> {
    return this.#connected.promise;
  }

  /** The replica the current (last) stream is on. */
  get replica(): string | undefined {
    return this.connections.at(-1);
  }

  /** Whether the Task's final status `status` was seen. */
  saw(taskId: string, status: string): boolean {
    return this.statuses.get(taskId)?.includes(status) ?? false;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#abort.abort();
    await this.#running;
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      try {
        const headers: Record<string, string> = { accept: "text/event-stream" };
        if (this.lastEventId) headers["last-event-id"] = this.lastEventId;
        // Not through the ledger's retries: a 5xx here is counted the same way, then retried.
        this.ledger.requests++;
        const res = await fetch(`${this.ledger.origin}/events?types=Task`, {
          headers,
          signal: this.#abort.signal,
        });
        const by = res.headers.get("x-served-by") ?? "haproxy";
        if (res.status >= 500) {
          this.ledger.failures.push({
            kind: res.headers.has("x-lb-error") ? "lb" : "app",
            at: Date.now(),
            method: "GET",
            path: "/events?types=Task",
            status: res.status,
            detail: `${by}: ${(await res.text()).slice(0, 300)}`,
          });
          await sleep(250);
          continue;
        }
        if (res.status !== 200 || !res.body) {
          throw new Error(`${this.name}: /events answered ${res.status}: ${await res.text()}`);
        }
        this.connections.push(by);
        this.log.push(`${new Date().toISOString()} ${by} after ${this.lastEventId ?? "-"}`);
        await this.#read(res.body);
        if (!this.#stopped) this.ends.push(`${by}: the stream ended`);
      } catch (e) {
        if (this.#stopped) return;
        this.ends.push(String(e));
      }
      await sleep(200);
    }
  }

  async #read(body: ReadableStream<Uint8Array>): Promise<void> {
    let buffer = "";
    let event: { id?: string; type?: string; data: string[] } = { data: [] };
    for await (const chunk of body.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      let nl: number;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl).replace(/\r$/, "");
        buffer = buffer.slice(nl + 1);
        if (line === "") {
          this.#dispatch(event);
          event = { data: [] };
        } else if (line.startsWith(":")) {
          if (line.startsWith(": connected")) this.#connected.resolve();
        } else {
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "id") event.id = value;
          else if (field === "event") event.type = value;
          else if (field === "data") event.data.push(value);
        }
      }
    }
  }

  #dispatch(event: { id?: string; type?: string; data: string[] }): void {
    if (event.id !== undefined) this.lastEventId = event.id;
    if (event.type !== "Task" || !event.data.length) return;
    const data = JSON.parse(event.data.join("\n"));
    const list = this.statuses.get(data.id) ?? [];
    if (data.status) list.push(data.status);
    this.statuses.set(data.id, list);
    const seqs = this.seqs.get(data.id) ?? [];
    seqs.push(`${event.id}:${data.versionId}:${data.status}`);
    this.seqs.set(data.id, seqs);
  }
}
