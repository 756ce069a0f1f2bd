/**
 * @module Runs one claimed `$export` job: for each type of its plan, pages through the snapshot
 * (`last_updated <= transactionTime`, live resources only) by the resource table's keys, a page of
 * PAGE_ROWS at a time, and writes NDJSON files of at most `fileResources` resources (or
 * `fileBytes`) to the object store, so memory holds one file at most whatever the export's size.
 * After each page the lease is renewed (which also tells a cancelled job to stop); after each file
 * the checkpoint (type, key position, file number) is saved with the file list, so a job whose
 * replica stopped resumes from its last file. A system-level `_since` export then lists what was
 * deleted in between (`writeDeleted`).
 */
import type { Db } from "../../db/db.ts";
import type { ObjectStore } from "../../db/object_store.ts";
import { compartmentFilter, compartmentParams } from "../compartment.ts";
import { scopeFilter } from "../scope_queries.ts";
import type { FhirContext } from "../context.ts";
import type { Filter } from "../search/model.ts";
import { parseSearch } from "../search/parse.ts";
import {
  completeExport,
  countScan,
  deletedPage,
  type ExportRow,
  findExport,
  renewExport,
  type ResourceScan,
  scanPage,
  snapshotCounts,
} from "./export_repo.ts";
import {
  exportPrefix,
  type ExportProgress,
  NDJSON,
  type OutputFile,
  type ScanKey,
  type TypePlan,
} from "./model.ts";

/** Rows read per statement. */
export const PAGE_ROWS = 1000;

export interface RunnerDeps {
  db: Db;
  store: ObjectStore;
  /** For `baseUrl` (references in scope queries and `_typeFilter`). */
  fhir: FhirContext;
  leaseMs: number;
  retentionMs: number;
  fileResources: number;
  fileBytes: number;
}

/** Why a run stopped before the end. */
export type Stopped = "cancelled" | "lost";

const encoder = new TextEncoder();

/** Runs (or resumes) `job`; answers how it ended. */
export async function runExport(
  deps: RunnerDeps,
  job: ExportRow,
  signal: AbortSignal,
): Promise<"completed" | Stopped> {
  const { db, store } = deps;
  const token = job.leaseToken!;
  const plan = job.plan;
  const output = [...job.output];
  const progress: ExportProgress = { ...job.progress };
  if (!progress.types) {
    const counts = await snapshotCounts(
      db,
      plan.types.map((t) => t.type),
      job.transactionTime,
      plan.since,
    );
    progress.types = plan.types.map((t) => t.type).filter((t) => (counts.get(t) ?? 0) > 0);
    progress.index = 0;
  }
  const byType = new Map(plan.types.map((t) => [t.type, t]));
  /** Saves progress (and files); false when the job is no longer this worker's to run. */
  const renew = (withFiles: boolean) =>
    renewExport(db, job.id, token, deps.leaseMs, progress, withFiles ? output : undefined);

  for (let i = progress.index ?? 0; i < progress.types.length; i++) {
    const typePlan = byType.get(progress.types[i])!;
    const scan: ResourceScan = {
      type: typePlan.type,
      transactionTime: job.transactionTime,
      since: plan.since,
      filters: filtersOf(deps.fhir, typePlan),
      ...(plan.level === "system" ? {} : {
        compartment: {
          codes: [...compartmentParams(typePlan.type) ?? []],
          ...(plan.patients ? { patients: plan.patients } : {}),
        },
      }),
    };
    if (progress.index !== i || progress.typeTotal === undefined) {
      Object.assign(progress, { index: i, after: undefined, part: 1, written: 0, read: 0 });
      progress.typeTotal = await countScan(db, scan);
      if (!await renew(false)) return stopped(deps, job);
    }
    let cursor: ScanKey | undefined = progress.after;
    progress.read = progress.written ?? 0;
    let lines: string[] = [];
    let bytes = 0;
    const flush = async () => {
      if (!lines.length) return;
      const name = `${typePlan.type}-${progress.part ?? 1}.ndjson`;
      const body = encoder.encode(lines.join("\n") + "\n");
      await store.put(`${exportPrefix(job.id)}${name}`, body, { contentType: NDJSON });
      const at = output.findIndex((f) => f.name === name);
      const file: OutputFile = {
        type: typePlan.type,
        name,
        count: lines.length,
        bytes: body.length,
      };
      if (at >= 0) output[at] = file; // written again after a resume
      else output.push(file);
      progress.after = cursor;
      progress.part = (progress.part ?? 1) + 1;
      progress.written = (progress.written ?? 0) + lines.length;
      lines = [];
      bytes = 0;
    };
    while (true) {
      if (signal.aborted) return "lost";
      const page = await scanPage(db, scan, cursor, PAGE_ROWS);
      let flushed = false;
      for (let j = 0; j < page.lines.length; j++) {
        const line = page.lines[j];
        lines.push(line);
        bytes += line.length + 1;
        progress.read = (progress.read ?? 0) + 1;
        if (lines.length >= deps.fileResources || bytes >= deps.fileBytes) {
          cursor = page.keys[j]; // the file ends at this resource
          await flush();
          flushed = true;
        }
      }
      cursor = page.keys[page.keys.length - 1] ?? cursor;
      if (page.lines.length < PAGE_ROWS) break;
      if (!await renew(flushed)) return stopped(deps, job);
    }
    await flush();
    Object.assign(progress, {
      index: i + 1,
      typeTotal: undefined,
      after: undefined,
      part: 1,
      written: 0,
      read: 0,
    });
    if (!await renew(true)) return stopped(deps, job);
  }
  if (!await writeDeleted(deps, job, output, progress)) return stopped(deps, job);
  if (job.errors.length && !output.some((f) => f.type === "OperationOutcome")) {
    // The kick-off's warnings (lenient handling), as the manifest's `error` file.
    const name = "OperationOutcome-1.ndjson";
    const body = encoder.encode(
      job.errors.map((text) => JSON.stringify(warning(text))).join("\n") + "\n",
    );
    await store.put(`${exportPrefix(job.id)}${name}`, body, { contentType: NDJSON });
    output.push({ type: "OperationOutcome", name, count: job.errors.length, bytes: body.length });
  }
  const done = await completeExport(db, job.id, token, {
    progress,
    output,
    errors: job.errors,
    retentionMs: deps.retentionMs,
  });
  return done ? "completed" : stopped(deps, job);
}

/**
 * A system-level `_since` export's `deleted` files: each resource of an exported type deleted
 * between `_since` and the transaction time, one line each, a transaction Bundle with its DELETE
 * entry (Bulk Data 2.0.0, "deleted"). Only for types the caller reaches whole (no compartment,
 * scope query or `_typeFilter`): what a deleted resource was is gone, so whether it matched those
 * cannot be told. Written again from the start after a resume (the same file names).
 */
async function writeDeleted(
  deps: RunnerDeps,
  job: ExportRow,
  output: OutputFile[],
  progress: ExportProgress,
): Promise<boolean> {
  const plan = job.plan;
  if (plan.level !== "system" || !plan.since) return true;
  const types = plan.types.filter((t) =>
    t.patient === undefined && !t.queries && !t.typeFilters?.length
  ).map((t) => t.type);
  if (!types.length) return true;
  const q = { types, since: plan.since, transactionTime: job.transactionTime };
  let after: ScanKey | undefined;
  let part = 1;
  let lines: string[] = [];
  const flush = async () => {
    if (!lines.length) return;
    const name = `Bundle-deleted-${part++}.ndjson`;
    const body = encoder.encode(lines.join("\n") + "\n");
    await deps.store.put(`${exportPrefix(job.id)}${name}`, body, { contentType: NDJSON });
    const file: OutputFile = { type: "Bundle", name, count: lines.length, bytes: body.length };
    const at = output.findIndex((f) => f.name === name);
    if (at >= 0) output[at] = { ...file, deleted: true };
    else output.push({ ...file, deleted: true });
    lines = [];
  };
  while (true) {
    const page = await deletedPage(deps.db, q, after, PAGE_ROWS);
    for (const ref of page.refs) {
      lines.push(JSON.stringify({
        resourceType: "Bundle",
        type: "transaction",
        entry: [{ request: { method: "DELETE", url: ref } }],
      }));
      if (lines.length >= deps.fileResources) await flush();
    }
    after = page.keys[page.keys.length - 1] ?? after;
    if (page.refs.length < PAGE_ROWS) break;
    if (!await renewExport(deps.db, job.id, job.leaseToken!, deps.leaseMs, progress)) {
      return false;
    }
  }
  await flush();
  return true;
}

/**
 * The job is no longer this worker's: cancelled or removed (its files go), or claimed by another
 * replica after this one's lease ran out (that one carries on; nothing to remove).
 */
async function stopped(deps: RunnerDeps, job: ExportRow): Promise<Stopped> {
  const now = await findExport(deps.db, job.id);
  if (now && now.state !== "cancelled") return "lost";
  await removeFiles(deps.store, job.id);
  return "cancelled";
}

function warning(text: string) {
  return {
    resourceType: "OperationOutcome",
    issue: [{ severity: "warning", code: "not-supported", diagnostics: text }],
  };
}

/** Removes every file of a job. */
export async function removeFiles(store: ObjectStore, id: string): Promise<void> {
  const keys: string[] = [];
  for await (const o of store.list(exportPrefix(id))) keys.push(o.key);
  for (const key of keys) await store.delete(key);
}

/** The search filters of one type: the caller's compartment and scope queries, `_typeFilter`. */
function filtersOf(ctx: FhirContext, t: TypePlan): Filter[] {
  const filters: Filter[] = [];
  if (t.patient !== undefined) filters.push(compartmentFilter(t.type, t.patient));
  if (t.queries) filters.push(scopeFilter(ctx, t.type, t.queries));
  if (t.typeFilters) {
    filters.push({
      kind: "anyOf",
      groups: t.typeFilters.map((q) =>
        parseSearch(t.type, [...new URLSearchParams(q)], {
          lenient: true,
          defaultCount: 1,
          maxCount: 1,
          baseUrl: ctx.baseUrl,
        }).filters
      ),
    });
  }
  return filters;
}
