/**
 * @module Live updates for `GET /events`: one change-feed listener (held while anyone listens)
 * fans changes out to the connected clients, each with its own filter (types, focus). A client
 * that resumes after a feed position first gets the changes it missed, read from the version
 * table, then the live ones; feed positions are the event ids, so nothing is sent twice.
 */
import type { Resource, Task } from "@medplum/fhirtypes";
import type { Db } from "../../db/db.ts";
import { changesAfter, headSeq } from "../../db/change_feed_repo.ts";
import type { ChangeFeed, ResourceChange } from "../change_feed.ts";
import type { FhirService } from "../service.ts";

export interface LiveEventFilter {
  types: ReadonlySet<string>;
  /** `ImagingStudy/{id}`: only Tasks with that focus, DiagnosticReports of that study, or it. */
  focus?: string;
}

export interface LiveEventData {
  resourceType: string;
  id: string;
  versionId: string;
  lastUpdated: string;
  deleted?: true;
  status?: string;
  statusReason?: Task["statusReason"];
  focus?: string;
}

export interface LiveEvent {
  /** The change-feed position: the SSE event id that `Last-Event-ID` resumes after. */
  seq: number;
  type: string;
  data: LiveEventData;
}

export interface LiveEvents {
  /** Starts sending `filter`'s events (after feed position `after`, when given); returns stop. */
  open(
    filter: LiveEventFilter,
    after: number | undefined,
    send: (e: LiveEvent) => void,
  ): () => void;
  /** Clients connected now. */
  readonly clients: number;
  /** Whether the change-feed listener is held (only while clients are connected). */
  readonly listening: boolean;
  close(): void;
}

interface Client {
  filter: LiveEventFilter;
  send(e: LiveEvent): void;
  /** The last feed position looked at (sent or filtered out). */
  seen: number;
  chain: Promise<void>;
  closed: boolean;
}

const CACHE_SIZE = 2000;

export function createLiveEvents(deps: {
  db: Db;
  fhir: FhirService;
  changes: ChangeFeed;
  log(level: "debug" | "info" | "warn" | "error", msg: string, data?: object): void;
}): LiveEvents {
  const clients = new Set<Client>();
  const versions = new Map<string, Promise<Resource | undefined>>();
  let unsubscribe: (() => void) | undefined;

  /** The content of one version, shared by every client that wants it. */
  const load = (c: ResourceChange): Promise<Resource | undefined> => {
    const key = `${c.type}/${c.id}/${c.version}`;
    let p = versions.get(key);
    if (!p) {
      const path = [c.type, c.id, "_history", String(c.version)];
      p = deps.fhir.interact({ method: "GET", path, query: [] })
        .then((r) => r.body as Resource, (e) => {
          deps.log("warn", "live events could not read a version", { key, error: String(e) });
          versions.delete(key);
          return undefined;
        });
      versions.set(key, p);
      if (versions.size > CACHE_SIZE) versions.delete(versions.keys().next().value!);
    }
    return p;
  };

  const deliver = async (client: Client, changes: ResourceChange[]) => {
    for (const change of changes) {
      if (client.closed) return;
      if (change.seq <= client.seen) continue;
      client.seen = change.seq;
      if (!client.filter.types.has(change.type)) continue;
      const data: LiveEventData = {
        resourceType: change.type,
        id: change.id,
        versionId: String(change.version),
        lastUpdated: change.lastUpdated,
      };
      if (change.deleted) {
        if (client.filter.focus) continue; // a deletion has no content to tell its focus by
        data.deleted = true;
      } else {
        const resource = await load(change);
        if (resource) {
          if (client.filter.focus && !hasFocus(resource, client.filter.focus)) continue;
          Object.assign(data, summary(resource));
        } else if (client.filter.focus) continue;
      }
      if (!client.closed) client.send({ seq: change.seq, type: change.type, data });
    }
  };

  const onChanges = (changes: ResourceChange[]) => {
    for (const client of clients) {
      client.chain = client.chain.then(() => deliver(client, changes)).catch((e) => {
        deps.log("error", "live events delivery failed", { error: String(e) });
      });
    }
  };

  return {
    open(filter, after, send) {
      const client: Client = {
        filter,
        send,
        seen: after ?? 0,
        chain: Promise.resolve(),
        closed: false,
      };
      clients.add(client);
      unsubscribe ??= deps.changes.subscribe(onChanges);
      if (after !== undefined) {
        // Registered first, so live changes queue behind the replay and none falls in between.
        client.chain = (async () => {
          // An id from before a database reset (or another server) must not hide new events.
          client.seen = Math.min(client.seen, await headSeq(deps.db));
          for (
            let batch;
            !client.closed && (batch = await changesAfter(deps.db, client.seen)).length;
          ) {
            await deliver(client, batch);
          }
        })();
      }
      client.chain = client.chain.catch((e) => {
        deps.log("error", "live events replay failed", { error: String(e) });
      });
      return () => {
        client.closed = true;
        clients.delete(client);
        if (!clients.size && unsubscribe) {
          unsubscribe();
          unsubscribe = undefined;
          versions.clear();
        }
      };
    },
    get clients() {
      return clients.size;
    },
    get listening() {
      return unsubscribe !== undefined;
    },
    close() {
      for (const c of clients) c.closed = true;
      clients.clear();
      unsubscribe?.();
      unsubscribe = undefined;
    },
  };
}

/** status, statusReason (Tasks) and focus (Tasks) of a resource, for the event data. */
function summary(resource: Resource): Partial<LiveEventData> {
  const r = resource as Resource & { status?: string };
  const out: Partial<LiveEventData> = {};
  if (typeof r.status === "string") out.status = r.status;
  if (r.resourceType === "Task") {
    if (r.statusReason) out.statusReason = r.statusReason;
    if (r.focus?.reference) out.focus = r.focus.reference;
  }
  return out;
}

/** Whether `resource` is `focus`, or a Task focused on it, or a DiagnosticReport of that study. */
function hasFocus(resource: Resource, focus: string): boolean {
  if (`${resource.resourceType}/${resource.id}` === focus) return true;
  const refs: (string | undefined)[] = [];
  if (resource.resourceType === "Task") refs.push(resource.focus?.reference);
  if (resource.resourceType === "DiagnosticReport") {
    refs.push(...(resource.imagingStudy ?? []).map((s) => s.reference));
  }
  return refs.some((ref) => ref !== undefined && relative(ref) === focus);
}

/** `http://x/fhir/ImagingStudy/1/_history/2` → `ImagingStudy/1`. */
function relative(ref: string): string {
  return ref.split("/_history/")[0].split("/").slice(-2).join("/");
}
