/**
 * @module Storing a batch of DICOM instances: parse, dedupe on SOPInstanceUID, put the bytes in
 * the object store, then one database transaction that indexes them and brings the study's
 * Patient and ImagingStudy in step. Objects are put before their rows and removed again when the
 * rows do not commit, under keys unique to the upload, so there is never a row without its object
 * and a failed batch leaves no object behind.
 */
import { createHash } from "node:crypto";
import type { Sql } from "../db/db.ts";
import * as repo from "../db/dicom_repo.ts";
import { type DependencyFault, dependencyFault } from "../db/unavailable.ts";
import { indexRows } from "./attributes.ts";
import type { DicomContext } from "./context.ts";
import { syncStudyResources } from "./fhir_sync.ts";
import { createGroupCommit, GroupFailed } from "./group_commit.ts";
import { DicomInputError, type ParsedInstance, parseInstance } from "./codec/parse.ts";

/** PS3.18 / PS3.4 failure reasons used in FailedSOPSequence. */
export const FailureReason = {
  ProcessingFailure: 0x0110,
  DuplicateSopInstance: 0x0111,
  OutOfResources: 0xa700,
  DataSetDoesNotMatch: 0xa900,
  CannotUnderstand: 0xc000,
} as const;
/** Warning reason: attributes were coerced or are not what their VR says. */
export const WARNING_COERCED = 0xb000;

export interface StoreOutcome {
  /** Position of the part in the request. */
  index: number;
  /** `pending` only while the batch is being stored. */
  status: "pending" | "stored" | "duplicate" | "replaced" | "failed";
  sopClassUid?: string;
  sopUid?: string;
  studyUid?: string;
  seriesUid?: string;
  failureReason?: number;
  /** Why it failed, or what was coerced. */
  reason?: string;
  /** It failed because the database or the object store is down: worth sending again later. */
  unavailable?: DependencyFault;
  warnings: string[];
}

export interface StoreItem {
  index: number;
  bytes: Uint8Array;
}

interface Pending {
  outcome: StoreOutcome;
  parsed: ParsedInstance;
  bytes: Uint8Array;
  sha256: string;
  key?: string;
  /** The stored instance's object, to remove once a replacement commits. */
  replacesKey?: string;
}

/** Stores a batch; returns one outcome per item, in order. Never throws for bad input. */
export async function storeInstances(
  deps: DicomContext,
  items: StoreItem[],
  options: { expectedStudy?: string } = {},
): Promise<StoreOutcome[]> {
  const outcomes: StoreOutcome[] = [];
  const parsedItems: { item: StoreItem; outcome: StoreOutcome; parsed: ParsedInstance }[] = [];
  for (const item of items) {
    const outcome: StoreOutcome = { index: item.index, status: "pending", warnings: [] };
    outcomes.push(outcome);
    let parsed: ParsedInstance;
    try {
      parsed = parseInstance(item.bytes);
    } catch (e) {
      if (!(e instanceof DicomInputError)) throw e;
      fail(outcome, FailureReason.CannotUnderstand, e.message);
      continue;
    }
    Object.assign(outcome, {
      sopClassUid: parsed.sopClassUid,
      sopUid: parsed.sopUid,
      studyUid: parsed.studyUid,
      seriesUid: parsed.seriesUid,
      warnings: parsed.warnings,
    });
    if (options.expectedStudy && parsed.studyUid !== options.expectedStudy) {
      fail(
        outcome,
        FailureReason.DataSetDoesNotMatch,
        `Study Instance UID ${parsed.studyUid} is not the study of the request (${options.expectedStudy})`,
      );
      continue;
    }
    parsedItems.push({ item, outcome, parsed });
  }
  if (!parsedItems.length) return outcomes;

  // Known instances (the same bytes are a no-op; different bytes follow the policy) are looked up
  // while the bytes are hashed.
  const lookup = repo.findInstances(deps.db, [...new Set(parsedItems.map((x) => x.parsed.sopUid))])
    .then(
      (rows) => ({ rows, error: null as unknown }),
      (error: unknown) => ({ rows: null, error }),
    );
  const pending: Pending[] = [];
  const seen = new Map<string, Pending>();
  for (const { item, outcome, parsed } of parsedItems) {
    const sha256 = digest(item.bytes);
    const earlier = seen.get(parsed.sopUid);
    if (earlier) {
      if (earlier.sha256 === sha256) outcome.status = "duplicate";
      else {
        fail(
          outcome,
          FailureReason.DuplicateSopInstance,
          "The same SOP Instance UID came twice in this request with different content",
        );
      }
      continue;
    }
    const p: Pending = { outcome, parsed, bytes: item.bytes, sha256 };
    seen.set(parsed.sopUid, p);
    pending.push(p);
  }
  const { rows, error } = await lookup;
  if (!rows) {
    const fault = dependencyFault(error);
    if (!fault) throw error;
    for (const p of pending) unavailable(p.outcome, FailureReason.ProcessingFailure, fault);
    return outcomes;
  }
  const known = new Map(rows.map((r) => [r.sop_uid, r]));
  const toStore = pending.filter((p) => {
    const row = known.get(p.parsed.sopUid);
    if (!row) return true;
    return decideKnown(deps, p, row);
  });
  await putAll(deps, toStore);

  const done = new Set<Pending>();
  const write = (list: Pending[]) => commitRows(deps, list);
  try {
    try {
      try {
        await groupWrite(deps, toStore);
      } catch (e) {
        // A failed group transaction may have failed for another request's parts: this request's
        // parts are tried on their own first (then one by one below).
        if (!(e instanceof GroupFailed)) throw e;
        if (dependencyFault(e.cause)) throw e.cause;
        for (const p of toStore) if (p.outcome.status !== "failed") p.outcome.status = "pending";
        await write(toStore);
      }
      for (const p of toStore) done.add(p);
    } catch (e0) {
      const e = e0 instanceof GroupFailed ? e0.cause : e0;
      const fault = dependencyFault(e);
      deps.log(fault ? "warn" : "error", "DICOM batch rolled back", { error: message(e) });
      for (const p of toStore) {
        if (p.outcome.status === "failed") continue;
        p.outcome.status = "pending";
        if (fault) {
          // The database is down: trying the parts one by one would only fail again.
          unavailable(p.outcome, FailureReason.ProcessingFailure, fault);
          continue;
        }
        if (toStore.length === 1) {
          fail(p.outcome, FailureReason.ProcessingFailure, `Could not be indexed: ${message(e)}`);
          continue;
        }
        try {
          await write([p]);
          done.add(p);
        } catch (e2) {
          p.outcome.status = "pending";
          const fault2 = dependencyFault(e2);
          if (fault2) unavailable(p.outcome, FailureReason.ProcessingFailure, fault2);
          else {
            fail(
              p.outcome,
              FailureReason.ProcessingFailure,
              `Could not be indexed: ${message(e2)}`,
            );
          }
        }
      }
    }
  } finally {
    const orphans = toStore.filter((p) =>
      p.key && (!done.has(p) || p.outcome.status === "failed" || p.outcome.status === "duplicate")
    );
    const replaced = toStore.filter((p) =>
      done.has(p) && p.outcome.status === "replaced" && p.replacesKey
    );
    // With the store down these deletes can fail too: the cleanup tries again until they succeed.
    await Promise.all([
      ...orphans.map((p) => deps.store.delete(p.key!).catch(() => deps.cleanup.add(p.key!))),
      ...replaced.map((p) =>
        deps.store.delete(p.replacesKey!).catch(() => deps.cleanup.add(p.replacesKey!))
      ),
    ]);
  }
  for (const o of outcomes) {
    if (o.status === "pending") fail(o, FailureReason.ProcessingFailure, "Not stored");
  }
  return outcomes;
}

const groups = new WeakMap<DicomContext["db"], (list: Pending[]) => Promise<void>>();

/**
 * The group commit of `deps.db` (`group_commit.ts`): rounds of up to 256 parts, 4 at once. Rounds
 * of one study queue on its lock in the database; rounds of different studies (new studies above
 * all, whose first batch is a transaction of some twenty statements) overlap. The same SOP Instance
 * UID from two senders is decided by two rounds, as without grouping.
 */
function groupWrite(deps: DicomContext, list: Pending[]): Promise<void> {
  let write = groups.get(deps.db);
  if (!write) {
    write = createGroupCommit<Pending>({
      commit: (items) => commitRows(deps, items),
      key: (p) => p.parsed.sopUid,
      maxItems: 256,
      rounds: 4,
    });
    groups.set(deps.db, write);
  }
  return write(list);
}

/**
 * Indexes `list`: in one statement when its studies are stored already (`indexFast`: a study
 * arriving), else in one transaction of the general path (`writeRows`: a study's first batch,
 * replacements, a series under another study). Then schedules the rebuild of the studies it left
 * stale.
 */
async function commitRows(deps: DicomContext, list: Pending[]): Promise<void> {
  // Nothing to index (every part known already, or its object not stored): no round trip.
  if (!list.some((p) => p.key && p.outcome.status !== "failed")) return;
  const stale = await indexFast(deps, list) ?? await transactRows(deps, list);
  for (const study of stale) deps.studySync.schedule(study);
}

/**
 * The one-statement path of `commitRows` (`repo.indexBatch`); null, having written nothing, where
 * the general path must run. Parts it could not insert because their SOP Instance UID is stored
 * are decided as `decideKnown` says; replacements then go through the general path.
 */
async function indexFast(deps: DicomContext, list: Pending[]): Promise<Set<string> | null> {
  const ready = list.filter((p) => p.key && p.outcome.status !== "failed");
  if (!ready.length || ready.some((p) => p.replacesKey)) return null;
  const series = new Map<string, ReturnType<typeof indexRows>["series"]>();
  const instances: repo.InstanceRow[] = [];
  for (const p of ready) {
    const r = indexRows(p.parsed, { objectKey: p.key!, size: p.bytes.length, sha256: p.sha256 });
    const other = series.get(r.series.series_uid);
    // One series in two studies within the batch: the general path fails the later parts.
    if (other && other.study_uid !== r.series.study_uid) return null;
    if (!other) series.set(r.series.series_uid, r.series);
    instances.push(r.instance);
  }
  const studies = [...new Set(ready.map((p) => p.parsed.studyUid))].sort();
  const result = await repo.indexBatch(deps.db, studies, [...series.values()], instances);
  if (!result) return null;
  const stale = new Set<string>();
  const again: Pending[] = [];
  for (const p of ready) {
    if (result.inserted.has(p.parsed.sopUid)) {
      p.outcome.status = "stored";
      stale.add(p.parsed.studyUid);
    } else if (decideKnown(deps, p, result.stored.get(p.parsed.sopUid)!)) again.push(p);
    if (p.outcome.status !== "failed" && p.outcome.warnings.length) {
      p.outcome.reason = p.outcome.warnings.join("; ");
    }
  }
  // The statement started their quiet periods: this process polls when they fall due.
  for (const study of stale) deps.stability.touched(study);
  if (again.length) { for (const study of await transactRows(deps, again)) stale.add(study); }
  return stale;
}

/** Tries of a general-path transaction that Postgres ended to break a deadlock. */
const CONFLICT_TRIES = 4;

/**
 * The general path's transaction (`writeRows`), run again when Postgres ends it to break a
 * deadlock or a serialization conflict (40P01, 40001). Concurrent rounds that make new studies can
 * meet: each holds its studies' locks, then takes its Patients' conditional-create locks in its
 * own order, so two rounds with the same patients in opposite orders deadlock; the one Postgres
 * ends simply runs again.
 */
async function transactRows(deps: DicomContext, list: Pending[]): Promise<Set<string>> {
  for (let attempt = 1;; attempt++) {
    try {
      return await deps.db.transaction((tx) => writeRows(deps, tx, list));
    } catch (e) {
      const code = (e as { code?: unknown })?.code;
      if ((code !== "40P01" && code !== "40001") || attempt >= CONFLICT_TRIES) throw e;
      // What the rolled-back try decided is decided again.
      for (const p of list) if (p.outcome.status !== "failed") p.outcome.status = "pending";
      await new Promise((r) => setTimeout(r, Math.random() * 50 * attempt));
    }
  }
}

const BATCH_PARTS = 32;
const BATCH_BYTES = 64 * 2 ** 20;

/**
 * Collects instances as a request streams in and stores them in batches of at most 32 parts or
 * 64 MiB, so a request's memory is one batch whatever its size.
 */
export function createBatcher(deps: DicomContext, expectedStudy?: string) {
  const outcomes: StoreOutcome[] = [];
  let batch: StoreItem[] = [];
  let bytes = 0;
  const flush = async () => {
    if (!batch.length) return;
    const items = batch;
    batch = [];
    bytes = 0;
    outcomes.push(...await storeInstances(deps, items, { expectedStudy }));
  };
  return {
    outcomes,
    /** Adds an instance; stores the batch when it is full. */
    async add(item: StoreItem): Promise<void> {
      batch.push(item);
      bytes += item.bytes.length;
      if (batch.length >= BATCH_PARTS || bytes >= BATCH_BYTES) await flush();
    },
    flush,
  };
}

/**
 * Decides about an instance whose SOP Instance UID is stored; true when it must be written (a
 * replacement: `replacesKey` set). False with status `stored` for this upload's own row: an earlier
 * try committed it and its answer was lost (called a duplicate, its object would be removed from
 * under the row).
 */
function decideKnown(deps: DicomContext, p: Pending, row: repo.StoredInstance): boolean {
  if (p.key && row.object_key === p.key) {
    p.outcome.status = "stored";
    return false;
  }
  if (row.sha256 === p.sha256) {
    p.outcome.status = "duplicate";
    return false;
  }
  if (row.study_uid !== p.parsed.studyUid || row.series_uid !== p.parsed.seriesUid) {
    fail(
      p.outcome,
      FailureReason.DuplicateSopInstance,
      `SOP Instance UID ${row.sop_uid} is stored in another series or study`,
    );
    return false;
  }
  if (deps.config.duplicatePolicy === "reject") {
    fail(
      p.outcome,
      FailureReason.DuplicateSopInstance,
      "An instance with this SOP Instance UID and different content is already stored",
    );
    return false;
  }
  p.replacesKey = row.object_key;
  return true;
}

async function putAll(deps: DicomContext, list: Pending[]): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < list.length) {
      const p = list[next++];
      const { studyUid, seriesUid, sopUid } = p.parsed;
      // One folder per series; the hash and a random part make each upload's key its own.
      const key = `dicom/${studyUid}/${seriesUid}/${sopUid}.${p.sha256.slice(0, 16)}-${
        crypto.randomUUID().slice(0, 8)
      }.dcm`;
      try {
        await deps.store.put(key, p.bytes, {
          contentType: "application/dicom",
          sha256: p.sha256,
          fresh: true,
        });
        p.key = key;
      } catch (e) {
        const fault = dependencyFault(e);
        // The server may have had the whole request when the client gave up, and store it yet.
        if (deps.store.lateWriteMs) deps.cleanup.add(key, deps.store.lateWriteMs);
        if (fault) unavailable(p.outcome, FailureReason.OutOfResources, fault);
        else {
          fail(
            p.outcome,
            FailureReason.OutOfResources,
            `Could not store the object: ${message(e)}`,
          );
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(8, list.length) }, worker));
}

/**
 * Indexes the parts in `tx`: rows, counts (added, O(1)), the study's quiet period; a new study's
 * Patient and ImagingStudy are made here, an existing study's ImagingStudy is marked stale and
 * rebuilt coalesced after the commit (`study_sync.ts`). Answers the studies marked stale.
 */
async function writeRows(deps: DicomContext, tx: Sql, list: Pending[]): Promise<Set<string>> {
  const ready = list.filter((p) => p.key && p.outcome.status !== "failed")
    .sort((a, b) => (a.parsed.sopUid < b.parsed.sopUid ? -1 : 1));
  const studies = [...new Set(ready.map((p) => p.parsed.studyUid))].sort();
  for (const study of studies) await repo.lockStudy(tx, study);
  const { owners, studies: known } = await repo.batchState(
    tx,
    [...new Set(ready.map((p) => p.parsed.seriesUid))],
    studies,
  );
  const rows = new Map<Pending, ReturnType<typeof indexRows>>();
  const newStudies = new Set<string>();
  /** Per study: series rows made by this batch, and their modalities. */
  const madeSeries = new Map<string, { count: number; modalities: string[] }>();
  for (const p of ready) {
    const owner = owners.get(p.parsed.seriesUid);
    if (owner && owner !== p.parsed.studyUid) {
      fail(
        p.outcome,
        FailureReason.DataSetDoesNotMatch,
        `Series Instance UID ${p.parsed.seriesUid} belongs to study ${owner}`,
      );
      continue;
    }
    const r = indexRows(p.parsed, { objectKey: p.key!, size: p.bytes.length, sha256: p.sha256 });
    rows.set(p, r);
    // One statement per new study and series, not per instance; none for a stored study.
    if (!known.has(p.parsed.studyUid) && !newStudies.has(p.parsed.studyUid)) {
      newStudies.add(p.parsed.studyUid);
      await repo.ensureStudy(tx, r.study);
    }
    if (!owner) {
      if (await repo.ensureSeries(tx, r.series)) {
        const made = madeSeries.get(p.parsed.studyUid) ?? { count: 0, modalities: [] };
        made.count++;
        if (r.series.modality) made.modalities.push(r.series.modality);
        madeSeries.set(p.parsed.studyUid, made);
      }
      owners.set(p.parsed.seriesUid, p.parsed.studyUid);
    }
  }
  const fresh = [...rows].filter(([p]) => !p.replacesKey);
  const inserted = await repo.insertInstances(tx, fresh.map(([, r]) => r.instance));
  /** Parts whose row this transaction inserted or replaced. */
  const changed: Pending[] = [];
  for (const [p, r] of rows) {
    if (p.replacesKey) {
      await repo.replaceInstance(tx, r.instance);
      p.outcome.status = "replaced";
    } else if (inserted.has(p.parsed.sopUid)) {
      p.outcome.status = "stored";
    } else {
      // Another upload stored this SOP Instance UID since we looked (or an earlier try of this
      // one, whose answer was lost).
      const [row] = await repo.findInstances(tx, [p.parsed.sopUid]);
      if (decideKnown(deps, p, row)) {
        await repo.replaceInstance(tx, r.instance);
        p.outcome.status = "replaced";
      } else {
        if (p.outcome.status !== "failed" && p.outcome.warnings.length) {
          p.outcome.reason = p.outcome.warnings.join("; ");
        }
        continue;
      }
    }
    if (p.outcome.warnings.length) p.outcome.reason = p.outcome.warnings.join("; ");
    changed.push(p);
  }
  const stale = new Set<string>();
  for (const study of [...new Set(changed.map((p) => p.parsed.studyUid))].sort()) {
    const perSeries = new Map<string, number>();
    for (const p of changed) {
      if (p.parsed.studyUid !== study || p.outcome.status !== "stored") continue;
      perSeries.set(p.parsed.seriesUid, (perSeries.get(p.parsed.seriesUid) ?? 0) + 1);
    }
    const made = madeSeries.get(study);
    // The study's first batch makes its Patient and ImagingStudy now, in this transaction (one per
    // study whatever the senders, under the study's lock). Later batches only mark it stale: it is
    // rebuilt from the index coalesced, after the commit (`study_sync.ts`), not once per batch
    // (which cost O(instances of the study) per instance).
    const first = !known.get(study);
    await repo.recordBatch(tx, study, {
      perSeries,
      newSeries: made?.count ?? 0,
      modalities: made?.modalities ?? [],
      stale: !first,
    });
    if (first) await syncStudyResources(deps, tx, study);
    else stale.add(study);
    // In the same transaction: a study whose instances committed always gets its quiet period.
    await deps.stability.touch(study, tx);
  }
  return stale;
}

function fail(outcome: StoreOutcome, reason: number, text: string): void {
  outcome.status = "failed";
  outcome.failureReason = reason;
  outcome.reason = text;
}

/** Fails the part because a dependency is down: `reason` 0xA700 (store) or 0x0110 (database). */
function unavailable(outcome: StoreOutcome, reason: number, fault: DependencyFault): void {
  fail(outcome, reason, `Not stored: the ${fault.dependency} is unavailable (${fault.reason})`);
  outcome.unavailable = fault;
}

/** Hex SHA-256 (node:crypto: synchronous, twice as fast as WebCrypto's for a slice here). */
function digest(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
