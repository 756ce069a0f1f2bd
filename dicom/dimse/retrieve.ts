/**
 * @module Sending stored instances over DIMSE: C-STORE sub-operations on the requester's own
 * association (C-GET) or on a new association to the C-MOVE destination, a batch at a time so a
 * large study is never all in memory. Each instance goes as stored (its own transfer syntax,
 * uncompressed ones converted to what the peer accepted by dcmjs-dimse).
 */
import dimse from "dcmjs-dimse";
import { Buffer } from "node:buffer";
import { findInstances } from "../../db/dicom_repo.ts";
import { dataSetOffset } from "../codec/part10.ts";
import type { Db } from "../../db/db.ts";
import type { ObjectStore } from "../../db/object_store.ts";
import type { Logger } from "../../platform/log.ts";

// deno-lint-ignore no-explicit-any
const d = dimse as any;
const { Client, Dataset } = d;
const { CStoreRequest } = d.requests;
const { Status } = d.constants;

/** Instances sent at once: one batch's datasets are in memory together. */
const BATCH = 16;

export interface Retrieval {
  completed: number;
  failed: number;
  warnings: number;
  /** Why nothing could be sent (the peer unreachable, or it refused the association). */
  problem?: string;
  /** The failure statuses the peer answered. */
  statuses?: number[];
}

interface Deps {
  db: Db;
  store: ObjectStore;
  log: Logger;
}

/** C-STORE requests for a batch of SOP Instance UIDs (missing ones counted as failed). */
async function storeRequests(
  deps: Deps,
  sopUids: string[],
): Promise<{ requests: unknown[]; missing: number }> {
  const rows = await findInstances(deps.db, sopUids);
  const requests: unknown[] = [];
  let missing = sopUids.length - rows.length;
  for (const row of rows) {
    const bytes = await deps.store.get(row.object_key);
    if (!bytes) {
      missing++;
      continue;
    }
    let body: Uint8Array;
    try {
      body = bytes.subarray(dataSetOffset(bytes));
    } catch (e) {
      deps.log("warn", "an instance cannot be sent over DIMSE", {
        sop: row.sop_uid,
        error: String(e),
      });
      missing++;
      continue;
    }
    requests.push(new CStoreRequest(new Dataset(Buffer.from(body), row.transfer_syntax)));
  }
  return { requests, missing };
}

/** Tallies the C-STORE responses of `requests` once each has one. */
function tally(requests: unknown[]): Promise<Retrieval> {
  const counts: Retrieval = { completed: 0, failed: 0, warnings: 0 };
  return new Promise((resolve) => {
    let left = requests.length;
    if (!left) return resolve(counts);
    for (const r of requests as { on(e: string, f: (x: unknown) => void): void }[]) {
      r.on("response", (response) => {
        const status = (response as { getStatus(): number }).getStatus();
        if (status === Status.Success) counts.completed++;
        else if ((status & 0xf000) === 0xb000) counts.warnings++;
        else {
          counts.failed++;
          (counts.statuses ??= []).push(status);
        }
        if (--left === 0) resolve(counts);
      });
    }
  });
}

function add(a: Retrieval, b: Retrieval): Retrieval {
  return {
    completed: a.completed + b.completed,
    failed: a.failed + b.failed,
    warnings: a.warnings + b.warnings,
    ...(a.problem ?? b.problem ? { problem: a.problem ?? b.problem } : {}),
    ...(a.statuses || b.statuses ? { statuses: [...a.statuses ?? [], ...b.statuses ?? []] } : {}),
  };
}

/** C-GET: the sub-operations go back on the requester's association. */
export async function sendByCGet(
  deps: Deps,
  sopUids: string[],
  send: (requests: unknown[]) => void,
): Promise<Retrieval> {
  let total: Retrieval = { completed: 0, failed: 0, warnings: 0 };
  for (let i = 0; i < sopUids.length; i += BATCH) {
    const { requests, missing } = await storeRequests(deps, sopUids.slice(i, i + BATCH));
    const done = tally(requests);
    if (requests.length) send(requests);
    total = add(total, { ...await done, failed: (await done).failed + missing });
  }
  return total;
}

/**
 * A new association from our AE to `to`, per batch: C-MOVE's sub-operations, and forwarding to a
 * DIMSE destination.
 */
export async function sendByCMove(
  deps: Deps,
  sopUids: string[],
  to: { aeTitle: string; host: string; port: number },
  ourAeTitle: string,
): Promise<Retrieval> {
  let total: Retrieval = { completed: 0, failed: 0, warnings: 0 };
  for (let i = 0; i < sopUids.length; i += BATCH) {
    const { requests, missing } = await storeRequests(deps, sopUids.slice(i, i + BATCH));
    if (!requests.length) {
      total = add(total, { completed: 0, failed: missing, warnings: 0 });
      continue;
    }
    const client = new Client();
    for (const r of requests) client.addRequest(r);
    const done = tally(requests);
    const failed = new Promise<Retrieval>((resolve) => {
      client.on("networkError", (e: unknown) => {
        deps.log("warn", "C-MOVE: the destination could not be reached", {
          destination: to.aeTitle,
          error: String(e),
        });
        resolve({ completed: 0, failed: requests.length, warnings: 0, problem: String(e) });
      });
      client.on("associationRejected", (reject: unknown) => {
        resolve({
          completed: 0,
          failed: requests.length,
          warnings: 0,
          problem: `association rejected (${JSON.stringify(reject)})`,
        });
      });
    });
    client.send(to.host, to.port, ourAeTitle, to.aeTitle);
    const result = await Promise.race([done, failed]);
    total = add(total, { ...result, failed: result.failed + missing });
  }
  return total;
}
