/**
 * @module FHIR Bulk Data Access (v2.0.0) `$export`: kick-off (the plan, a `bulk_export` row, 202
 * with the status URL), the status (progress, the manifest, a failure), the files, and DELETE
 * (cancel). Jobs run in the background of every API replica through `platform/due_loop.ts`: a
 * replica claims a due job with FOR UPDATE SKIP LOCKED and a lease (`export_repo.ts`), runs it
 * (`runner.ts`), and removes jobs and their files once they expire (BULK_EXPORT_RETENTION_HOURS
 * after they finished). Only the kick-off's caller (same kind and `sub`) sees a job or its files.
 */
import type { Caller } from "../../auth/access.ts";
import type { Db } from "../../db/db.ts";
import type { ObjectStore } from "../../db/object_store.ts";
import { isTransientFailure } from "../../db/unavailable.ts";
import { createDueLoop } from "../../platform/due_loop.ts";
import type { Logger } from "../../platform/log.ts";
import { notFound } from "../../platform/outcome.ts";
import type { FhirService } from "../service.ts";
import {
  cancelExport,
  claimExports,
  deleteExport,
  type ExportRow,
  failExport,
  findExport,
  insertExport,
  nextExportDueIn,
  releaseExport,
} from "./export_repo.ts";
import { type KickOff, planExport } from "./kickoff.ts";
import { exportPrefix } from "./model.ts";
import { removeFiles, runExport } from "./runner.ts";

export interface BulkExportOptions {
  db: Db;
  store: ObjectStore;
  fhir: FhirService;
  log: Logger;
  /** How long a finished job and its files are kept (BULK_EXPORT_RETENTION_HOURS). */
  retentionHours: number;
  /** Resources per file (BULK_EXPORT_FILE_RESOURCES). */
  fileResources: number;
  /** Bytes per file at most (a file ends at the resource that passes it). */
  fileBytes?: number;
  /** Jobs run at once per replica. */
  concurrency?: number;
}

/** What the status endpoint answers. */
export type ExportStatus =
  | { state: "in-progress"; progress: string }
  | { state: "completed"; manifest: Manifest; expires?: string }
  | { state: "failed"; message: string };

export interface Manifest {
  transactionTime: string;
  request: string;
  requiresAccessToken: true;
  output: { type: string; url: string; count: number }[];
  deleted: { type: string; url: string; count: number }[];
  /** OperationOutcomes: the warnings of a lenient kick-off (parameters ignored, types left out). */
  error: { type: string; url: string; count: number }[];
}

export interface BulkExportService {
  /** Starts a job; answers its id (the status URL is `statusUrl(id)`). */
  kickOff(k: KickOff & { requestUrl: string }): Promise<string>;
  statusUrl(id: string): string;
  status(caller: Caller | undefined, id: string): Promise<ExportStatus>;
  /** A file of a completed job as a stream. */
  file(caller: Caller | undefined, id: string, name: string): Promise<ReadableStream<Uint8Array>>;
  /** Cancels a job (or removes a finished one) and its files. */
  cancel(caller: Caller | undefined, id: string): Promise<void>;
  /** Resolves when no job is due and none is running (for tests). */
  idle(): Promise<void>;
  close(): Promise<void>;
}

/** The owner of a job: the caller's kind and subject. */
export function ownerOf(caller: Caller | undefined): string {
  return caller ? `${caller.kind}:${caller.sub}` : "internal:internal";
}

const LEASE_MS = 60_000;
/** A cancelled job's row stays this long (a worker still writing sees it and stops). */
const CANCEL_GRACE_MS = 2 * LEASE_MS;
const MAX_ATTEMPTS = 5;
const RETRY_MS = 15_000;

export function createBulkExport(o: BulkExportOptions): BulkExportService {
  const { db, store, fhir, log } = o;
  const baseUrl = fhir.context.baseUrl;
  const retentionMs = o.retentionHours * 3_600_000;
  const deps = {
    db,
    store,
    fhir: fhir.context,
    leaseMs: LEASE_MS,
    retentionMs,
    fileResources: o.fileResources,
    fileBytes: o.fileBytes ?? 64 * 2 ** 20,
  };

  const handle = async (job: ExportRow, signal: AbortSignal) => {
    if (job.state !== "running") {
      // Expired, failed or cancelled: its files and then its row go.
      await removeFiles(store, job.id);
      await deleteExport(db, job.id, job.leaseToken!);
      log("info", "bulk export removed", { id: job.id, state: job.state });
      return;
    }
    if (job.attempts > MAX_ATTEMPTS) {
      // Its replica stopped mid-run this often (killed, out of memory): not tried again.
      const message = `gave up after ${MAX_ATTEMPTS} interrupted attempts`;
      log("error", "bulk export failed", { id: job.id, error: message });
      return await failExport(db, job.id, job.leaseToken!, message, retentionMs);
    }
    const started = performance.now();
    try {
      const ended = await runExport(deps, job, signal);
      log("info", `bulk export ${ended}`, {
        id: job.id,
        seconds: Math.round(performance.now() - started) / 1000,
      });
    } catch (e) {
      if (signal.aborted) return; // closing: the lease runs out and another start resumes it
      const message = `${(e as Error).name}: ${(e as Error).message}`;
      if (isTransientFailure(e) && job.attempts < MAX_ATTEMPTS) {
        log("warn", "bulk export interrupted; tried again", { id: job.id, error: message });
        await releaseExport(db, job.id, job.leaseToken!, RETRY_MS);
        return;
      }
      log("error", "bulk export failed", { id: job.id, error: message });
      await failExport(db, job.id, job.leaseToken!, message, retentionMs);
    }
  };

  const loop = createDueLoop<ExportRow>({
    name: "bulk export",
    concurrency: o.concurrency ?? 2,
    pollMs: 5_000,
    claim: (limit) => claimExports(db, limit, LEASE_MS),
    nextDueIn: () => nextExportDueIn(db),
    handle,
    log,
  });
  loop.wake();

  /** The caller's job, or a 404 (another caller's job does not exist to it). */
  const own = async (caller: Caller | undefined, id: string): Promise<ExportRow> => {
    const job = /^[0-9a-f-]{36}$/.test(id) ? await findExport(db, id) : undefined;
    if (!job || job.owner !== ownerOf(caller) || job.state === "cancelled") {
      throw notFound(`No export ${id}`);
    }
    return job;
  };
  const statusUrl = (id: string) => `${baseUrl}/$export-status/${id}`;

  return {
    async kickOff(k) {
      const { plan, warnings } = await planExport(fhir, k);
      const id = crypto.randomUUID();
      await insertExport(db, {
        id,
        owner: ownerOf(k.caller),
        request: k.requestUrl,
        plan,
        transactionTime: new Date().toISOString(),
        errors: warnings,
      });
      log("info", "bulk export queued", { id, level: plan.level, types: plan.types.length });
      loop.wake();
      return id;
    },
    statusUrl,
    async status(caller, id) {
      const job = await own(caller, id);
      if (job.state === "failed") return { state: "failed", message: job.message ?? "failed" };
      if (job.state !== "completed") return { state: "in-progress", progress: progressOf(job) };
      const files = job.output.map((f) => ({
        type: f.type,
        url: `${baseUrl}/$export-file/${job.id}/${f.name}`,
        count: f.count,
      }));
      return {
        state: "completed",
        expires: job.expiresAt,
        manifest: {
          transactionTime: job.transactionTime,
          request: job.request,
          requiresAccessToken: true,
          output: files.filter((f, i) => f.type !== "OperationOutcome" && !job.output[i].deleted),
          deleted: files.filter((_, i) => job.output[i].deleted),
          error: files.filter((f) => f.type === "OperationOutcome"),
        },
      };
    },
    async file(caller, id, name) {
      const job = await own(caller, id);
      if (job.state !== "completed" || !job.output.some((f) => f.name === name)) {
        throw notFound(`No file ${name} in export ${id}`);
      }
      const stream = await store.getStream(`${exportPrefix(id)}${name}`);
      if (!stream) throw notFound(`File ${name} of export ${id} is gone`);
      return stream;
    },
    async cancel(caller, id) {
      await own(caller, id);
      if (!await cancelExport(db, id, CANCEL_GRACE_MS)) throw notFound(`No export ${id}`);
      await removeFiles(store, id);
      log("info", "bulk export cancelled", { id });
    },
    idle: () => loop.idle(),
    close: () => loop.close(),
  };
}

/** `X-Progress`: what the job is doing, in words. */
function progressOf(job: ExportRow): string {
  const p = job.progress;
  if (job.state === "queued" || !p.types) return "Queued";
  const type = p.types[p.index ?? 0];
  if (type === undefined) return "Finishing";
  const of = p.typeTotal === undefined ? "" : ` of ${p.typeTotal}`;
  return `Exporting ${type}: ${p.read ?? 0}${of} (type ${(p.index ?? 0) + 1} of ${p.types.length})`;
}
