/**
 * @module Sends stored DICOM instances to the destinations of DICOM_DESTINATIONS (a PACS, an
 * archive, a reading workstation's DICOMweb) over STOW-RS: by default every Segmentation and
 * Structured Report, so the AI results (SEG + SR) reach the PACS beside the images it holds.
 *
 * A destination given as `dimse` (AE@host:port) gets the same by C-STORE from DIMSE_AE_TITLE.
 *
 * Every instance a STOW-RS stores, or is sent again, of a kind a destination wants is queued for it
 * in the database (an outbox: it survives restarts, replicas share it). Each delivery is one
 * STOW-RS of the instance's stored bytes with the destination's credentials. A network failure, a
 * timeout, a 5xx, 408 or 429 is retried with exponential backoff (after Retry-After when given);
 * after the last attempt, or at once on a refusal (another 4xx, a redirect, the instance failed in
 * the answer), the delivery is dead: in the delivery log for an admin, who may queue it again
 * (`POST /admin/forwarding/retry`) once the destination is mended.
 */
import type { DicomDestination } from "../../platform/dicom_destinations.ts";
import { wants } from "../../platform/dicom_destinations.ts";
import type { ForwardingConfig } from "../../platform/config.ts";
import { backoffDelay, createDueLoop } from "../../platform/due_loop.ts";
import type { Db } from "../../db/db.ts";
import type { Logger } from "../../platform/log.ts";
import type { ObjectStore } from "../../db/object_store.ts";
import { findInstances } from "../../db/dicom_repo.ts";
import { failedInstances, stowBody } from "../codec/stow_client.ts";
import { sendByCMove } from "../dimse/retrieve.ts";
import type { StoreOutcome } from "../store.ts";
import {
  claimDueForwards,
  enqueueForward,
  forwardCounts,
  type ForwardDelivery,
  type ForwardItem,
  forwardLog,
  type ForwardLogEntry,
  type ForwardState,
  markForwardCancelled,
  markForwarded,
  markForwardFailed,
  nextForwardDueIn,
  requeueDead,
} from "./forward_repo.ts";

export interface Forwarding {
  readonly destinations: readonly DicomDestination[];
  /** Queues the stored (or sent again) instances for the destinations that want them. */
  queue(outcomes: readonly StoreOutcome[]): Promise<void>;
  /** Each destination (no credentials) with its deliveries by state. */
  summary(): Promise<DestinationSummary[]>;
  log(filter: {
    destination?: string;
    state?: ForwardState;
    studyUid?: string;
    limit: number;
  }): Promise<ForwardLogEntry[]>;
  /** Queues dead deliveries again; answers how many. */
  retry(filter: { destination?: string; id?: number }): Promise<number>;
  /** Resolves when nothing is due now and nothing is in flight (for tests). */
  idle(): Promise<void>;
  close(): Promise<void>;
}

export interface DestinationSummary {
  name: string;
  url: string;
  authentication: "bearer" | "basic" | "none";
  send: string[];
  deliveries: Record<ForwardState, number>;
}

/** STOW-RS's reason for a SOP Instance UID held already with other content (PS3.4 B.2.3). */
const DUPLICATE_SOP_INSTANCE = 0x0111;
/** Statuses worth trying again: the destination may take it later. */
const TRANSIENT = new Set([408, 425, 429]);

export function createForwarding(deps: {
  db: Db;
  store: ObjectStore;
  config: ForwardingConfig;
  /** Our AE title, calling DIMSE destinations. */
  aeTitle: string;
  log: Logger;
}): Forwarding {
  const { db, store, config: options, log } = deps;
  const destinations = options.destinations;
  const byName = new Map(destinations.map((d) => [d.name, d]));

  const fail = async (
    d: ForwardDelivery,
    error: string,
    o: { status?: number; retryAfterMs?: number; permanent?: boolean } = {},
  ) => {
    const { status, retryAfterMs = 0 } = o;
    const transient = !o.permanent &&
      (status === undefined || status >= 500 || TRANSIENT.has(status));
    const last = !transient || d.attempts >= options.maxAttempts;
    await markForwardFailed(db, d.id, {
      status,
      error,
      retryInMs: last ? undefined : Math.max(backoffDelay(options, d.attempts), retryAfterMs),
    });
    log(last ? "warn" : "info", last ? "DICOM delivery dead-lettered" : "DICOM delivery failed", {
      destination: d.destination,
      sopInstanceUid: d.sopUid,
      attempt: d.attempts,
      status,
      error,
    });
  };

  const send = async (d: ForwardDelivery, signal: AbortSignal) => {
    const destination = byName.get(d.destination);
    if (!destination) {
      return await markForwardCancelled(db, d.id, "the destination is no longer configured");
    }
    const [row] = await findInstances(db, [d.sopUid]);
    if (!row) return await markForwardCancelled(db, d.id, "the instance was deleted");
    if (destination.dimse) return await sendDimse(d, destination.dimse);
    const bytes = await store.get(row.object_key);
    if (!bytes) {
      return await fail(d, "the instance's bytes are missing from the object store", {
        permanent: true,
      });
    }
    const { body, contentType } = await stowBody([bytes]);
    const headers = new Headers({
      "Content-Type": contentType,
      Accept: "application/dicom+json",
    });
    if (destination.authorization) headers.set("Authorization", destination.authorization);
    const url = `${destination.url}/studies/${row.study_uid}`;
    let response: Response;
    try {
      response = await fetch(url, {
        method: "POST",
        headers,
        body,
        // Credentials never follow a redirect; a moved archive is a configuration to mend.
        redirect: "manual",
        signal: AbortSignal.any([signal, AbortSignal.timeout(options.timeoutMs)]),
      });
    } catch (e) {
      if (signal.aborted) return; // closing: the lease runs out and a later start sends it
      return await fail(d, `${(e as Error).name}: ${(e as Error).message}`);
    }
    const text = await response.text().catch(() => "");
    const status = response.status;
    if (status >= 300 && status < 400) {
      const to = response.headers.get("location") ?? "(no Location)";
      return await fail(d, `HTTP ${status}: redirected to ${to}; set the destination's url`, {
        status,
        permanent: true,
      });
    }
    const reason = failedInstances(text).get(d.sopUid);
    if ((status === 200 || status === 202) && reason === undefined) {
      return await markForwarded(db, d.id, status, status === 202 ? text.slice(0, 500) : undefined);
    }
    if (reason === DUPLICATE_SOP_INSTANCE) {
      // The destination holds this UID already (a redelivery whose first answer was lost).
      return await markForwarded(db, d.id, status, "held already under its UID (0x0111)");
    }
    const retryAfter = Number(response.headers.get("retry-after"));
    const detail = reason === undefined
      ? text.replace(/\s+/g, " ").slice(0, 300)
      : `failure reason 0x${reason.toString(16).padStart(4, "0")}`;
    const error = `HTTP ${status}${detail ? `: ${detail}` : ""}`;
    await fail(d, error, {
      status,
      retryAfterMs: Number.isFinite(retryAfter) ? retryAfter * 1000 : 0,
      // A 200 or 202 that failed this instance is a refusal, like a 409.
      permanent: reason !== undefined && status < 500,
    });
  };

  /** One C-STORE from our AE title; an unreachable or refusing peer is tried again later. */
  const sendDimse = async (d: ForwardDelivery, to: NonNullable<DicomDestination["dimse"]>) => {
    const r = await sendByCMove({ db, store, log }, [d.sopUid], to, deps.aeTitle);
    if (r.completed || r.warnings) return await markForwarded(db, d.id, 0);
    if (r.problem) return await fail(d, r.problem);
    const status = r.statuses?.[0] ?? 0xa700;
    // Out of resources (0xA7xx) may pass; a refusal of the data set will not (PS3.4 B.2.3).
    return await fail(d, `C-STORE status 0x${status.toString(16).padStart(4, "0")}`, {
      permanent: (status & 0xff00) !== 0xa700,
    });
  };

  const loop = createDueLoop({
    name: "DICOM forwarding",
    concurrency: options.concurrency,
    pollMs: options.pollMs,
    claim: (limit) => claimDueForwards(db, limit, options.timeoutMs + 30_000),
    nextDueIn: () => nextForwardDueIn(db),
    handle: send,
    log,
  });
  if (destinations.length) loop.wake(); // what an earlier run left pending

  return {
    destinations,
    async queue(outcomes) {
      if (!destinations.length) return;
      const items: ForwardItem[] = [];
      const replaced: ForwardItem[] = [];
      for (const o of outcomes) {
        if (!["stored", "duplicate", "replaced"].includes(o.status)) continue;
        if (!o.sopUid || !o.sopClassUid || !o.studyUid || !o.seriesUid) continue;
        for (const d of destinations) {
          if (!wants(d, o.sopClassUid)) continue;
          (o.status === "replaced" ? replaced : items).push({
            destination: d.name,
            studyUid: o.studyUid,
            seriesUid: o.seriesUid,
            sopUid: o.sopUid,
            sopClass: o.sopClassUid,
          });
        }
      }
      const queued = await enqueueForward(db, items) + await enqueueForward(db, replaced, true);
      if (queued) loop.wake();
    },
    async summary() {
      const counts = await forwardCounts(db);
      return destinations.map((d) => {
        const deliveries = { pending: 0, delivered: 0, dead: 0, cancelled: 0 };
        for (const c of counts) if (c.destination === d.name) deliveries[c.state] = c.count;
        return {
          name: d.name,
          url: d.url,
          authentication: d.authorization?.startsWith("Bearer ")
            ? "bearer"
            : d.authorization
            ? "basic"
            : "none",
          send: d.send,
          deliveries,
        };
      });
    },
    log: (filter) => forwardLog(db, filter),
    async retry(filter) {
      const n = await requeueDead(db, filter);
      if (n) loop.wake();
      return n;
    },
    idle: loop.idle,
    close: loop.close,
  };
}
