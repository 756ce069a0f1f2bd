/**
 * @module Study and series downloads as one ZIP (PS3.18 allows application/zip for a retrieve of
 * bulk DICOM): the Part 10 files as `{Study}/{Series}/{SOP}.dcm` entries, stored (not deflated:
 * pixel data rarely compresses) with fflate's streaming `Zip` + `ZipPassThrough`, and a
 * `manifest.json` last. The archive is written as it is read: one instance at a time from the
 * object store (large ones streamed chunk by chunk), each chunk pulled only when the client has
 * taken the one before, so memory stays flat whatever the study's size. With a de-identification
 * session, every instance goes through `codec/deid.ts` first; instances at risk of burned-in text
 * are flagged (the index says so before the first byte, so the response headers list them) and
 * left out unless the caller includes them. No ZIP64: at most 65,535 entries and 4 GiB.
 */
import { Zip, ZipPassThrough } from "fflate";
import type { InstanceRow } from "../db/dicom_repo.ts";
import { burnedInFacts } from "./archive_repo.ts";
import { burnedInRisk, type DeidSession, methodNames } from "./codec/deid.ts";
import type { DicomContext } from "./context.ts";
import { deidentifiedInstances } from "./deid_stream.ts";
import { deidentifiedFhir } from "./deid_fhir.ts";
import { DicomwebError } from "./errors.ts";
import { instancesOf, storedInstances, type Target } from "./wado.ts";

/** An instance flagged for possible burned-in text (original UIDs; the manifest has new ones). */
export interface FlaggedInstance {
  row: InstanceRow;
  reason: string;
  included: boolean;
}

export interface ArchivePlan {
  target: Target;
  /** The instances to write, in index order (flagged ones left out unless included). */
  rows: InstanceRow[];
  /** Instances the index lists whose objects are gone (a 206, as for multipart). */
  missing: InstanceRow[];
  flagged: FlaggedInstance[];
  session?: DeidSession;
  includeBurnedIn: boolean;
  /** The bytes of the instances to write, as stored. */
  bytes: number;
}

export interface DeidRequest {
  session: DeidSession;
  /** `burnedInAnnotation=include`: flagged instances are written too (and still listed). */
  includeBurnedIn: boolean;
}

const MAX_ENTRIES = 65_000;
const MAX_BYTES = 4 * 1024 ** 3 - 64 * 1024 ** 2;
/** Objects up to this size are read whole; larger ones are streamed into the archive. */
const WHOLE_OBJECT_BYTES = 4 * 1024 * 1024;
/** Small objects fetched ahead of the one being written. */
const AHEAD = 4;

/** What a download will hold; 404 when the target has no instance (or none left in the store). */
export async function planArchive(
  deps: DicomContext,
  target: Target,
  deid?: DeidRequest,
): Promise<ArchivePlan> {
  const all = await instancesOf(deps, target);
  const { present, missing } = await storedInstances(deps, target, all);
  const flagged: FlaggedInstance[] = [];
  let rows = present;
  if (deid) {
    const facts = await burnedInFacts(deps.db, target.studyUid, target.seriesUid);
    rows = [];
    for (const row of present) {
      const f = facts.get(row.sop_uid);
      const reason = burnedInRisk({
        burnedInAnnotation: f?.burned_in ?? undefined,
        modality: f?.modality ?? undefined,
        sopClassUid: row.sop_class,
        hasPixelData: f ? f.has_pixels : row.frames > 0,
      });
      if (reason) flagged.push({ row, reason, included: deid.includeBurnedIn });
      if (!reason || deid.includeBurnedIn) rows.push(row);
    }
  }
  const bytes = rows.reduce((n, r) => n + Number(r.size), 0);
  if (rows.length > MAX_ENTRIES || bytes > MAX_BYTES) {
    throw new DicomwebError(
      413,
      `${rows.length} instances, ${bytes} bytes: more than one ZIP holds (${MAX_ENTRIES} entries, 4 GiB); retrieve the series one by one or as multipart/related`,
    );
  }
  const includeBurnedIn = deid?.includeBurnedIn ?? false;
  return { target, rows, missing, flagged, session: deid?.session, includeBurnedIn, bytes };
}

/** The ZIP of a plan, pulled a chunk at a time. */
export function archiveStream(deps: DicomContext, plan: ArchivePlan): ReadableStream<Uint8Array> {
  const chunks = zipChunks(plan.session ? deidEntries(deps, plan) : plainEntries(deps, plan));
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const next = await chunks.next();
      if (next.done) controller.close();
      else controller.enqueue(next.value);
    },
    async cancel() {
      await chunks.return(undefined);
    },
  }, { highWaterMark: 0 });
}

/** One ZIP entry: its name and its bytes, in chunks. */
interface Entry {
  name: string;
  chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
}

async function* zipChunks(entries: AsyncIterable<Entry>): AsyncGenerator<Uint8Array> {
  const out: Uint8Array[] = [];
  let failure: Error | undefined;
  const zip = new Zip((err, chunk) => {
    if (err) failure = err;
    else if (chunk.length) out.push(chunk);
  });
  const drain = function* () {
    if (failure) throw failure;
    while (out.length) yield out.shift()!;
  };
  for await (const entry of entries) {
    const file = new ZipPassThrough(entry.name);
    zip.add(file);
    for await (const chunk of entry.chunks) {
      if (!chunk.length) continue;
      file.push(chunk);
      yield* drain();
    }
    file.push(new Uint8Array(0), true);
    yield* drain();
  }
  zip.end();
  yield* drain();
}

function entryName(study: string, series: string, sop: string): string {
  return `${study}/${series}/${sop}.dcm`;
}

/**
 * The stored instances as they are, then the manifest. Small objects are read whole, the next
 * few fetched while one is written (`AHEAD` requests in flight: the object store's latency, not
 * its bandwidth, bounds a study of many small instances); a large one streams.
 */
async function* plainEntries(deps: DicomContext, plan: ArchivePlan): AsyncGenerator<Entry> {
  const listed: ManifestInstance[] = [];
  const pending = new Map<number, Promise<Uint8Array | null>>();
  let started = 0;
  const fill = (upTo: number) => {
    for (; started < plan.rows.length && started <= upTo; started++) {
      const row = plan.rows[started];
      if (Number(row.size) > WHOLE_OBJECT_BYTES) continue;
      const get = deps.store.get(row.object_key);
      // Awaited in its turn; a download cancelled before then must not leave it unhandled.
      get.catch(() => {});
      pending.set(started, get);
    }
  };
  for (let i = 0; i < plan.rows.length; i++) {
    const row = plan.rows[i];
    fill(i + AHEAD);
    const ahead = pending.get(i);
    pending.delete(i);
    const body = ahead ? await ahead : await deps.store.getStream(row.object_key);
    if (!body) {
      deps.log("error", "DICOM object vanished from the store during a download; aborting it", {
        key: row.object_key,
        sopInstanceUid: row.sop_uid,
      });
      throw new Error(`The bytes of instance ${row.sop_uid} vanished during the download`);
    }
    const name = entryName(row.study_uid, row.series_uid, row.sop_uid);
    yield { name, chunks: body instanceof Uint8Array ? [body] : body };
    listed.push(manifestInstance(name, row));
  }
  yield manifestEntry(plan, listed, [], plan.missing.map((r) => ({ sopInstanceUid: r.sop_uid })));
}

/** The instances de-identified one at a time, then the manifest (new UIDs only). */
async function* deidEntries(deps: DicomContext, plan: ArchivePlan): AsyncGenerator<Entry> {
  const session = plan.session!;
  const listed: ManifestInstance[] = [];
  const refused: { sopInstanceUid: string; reason: string }[] = [];
  const flagged = new Map(plan.flagged.map((f) => [f.row.sop_uid, f]));
  let patient: { key: string; identifiers: readonly string[] } | undefined;
  for await (const item of deidentifiedInstances(deps, plan.rows, session)) {
    const { row, result } = item;
    if (result && !patient) patient = { key: result.patientKey, identifiers: result.identifiers };
    if (!result) {
      refused.push({ sopInstanceUid: session.keys.uid(row.sop_uid), reason: item.refused! });
      continue;
    }
    // The data set may say more than the index (an instance stored before its metadata had it).
    if (result.burnedIn && !flagged.has(row.sop_uid)) {
      const late = { row, reason: result.burnedIn, included: plan.includeBurnedIn };
      plan.flagged.push(late);
      flagged.set(row.sop_uid, late);
      if (!late.included) continue;
    }
    const name = entryName(result.studyUid, result.seriesUid, result.sopUid);
    yield { name, chunks: [result.bytes] };
    listed.push({
      ...manifestInstance(name, row),
      studyInstanceUid: result.studyUid,
      seriesInstanceUid: result.seriesUid,
      sopInstanceUid: result.sopUid,
      transferSyntaxUid: result.transferSyntaxUid,
      size: result.bytes.length,
    });
  }
  // The FHIR side of the same export: the study and its results, without identifiers.
  const known = new Set(plan.rows.flatMap((r) => [r.study_uid, r.series_uid, r.sop_uid]));
  const fhir = patient &&
    await deidentifiedFhir(deps, plan.target.studyUid, session, patient, known);
  if (fhir) {
    yield { name: "fhir.json", chunks: [new TextEncoder().encode(JSON.stringify(fhir, null, 2))] };
  }
  yield manifestEntry(
    plan,
    listed,
    refused,
    plan.missing.map((r) => ({ sopInstanceUid: session.keys.uid(r.sop_uid) })),
  );
}

interface ManifestInstance {
  path: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  sopInstanceUid: string;
  sopClassUid: string;
  transferSyntaxUid: string;
  size: number;
}

function manifestInstance(path: string, row: InstanceRow): ManifestInstance {
  return {
    path,
    studyInstanceUid: row.study_uid,
    seriesInstanceUid: row.series_uid,
    sopInstanceUid: row.sop_uid,
    sopClassUid: row.sop_class,
    transferSyntaxUid: row.transfer_syntax,
    size: Number(row.size),
  };
}

/** The manifest's description of the de-identification (null for a plain download). */
export function deidDescription(session: DeidSession | undefined) {
  if (!session) return null;
  const codes = [
    "113100",
    ...(session.options.modifiedDates ? ["113107"] : []),
    ...(session.options.cleanDescriptors ? ["113105"] : []),
  ];
  return {
    standard: "DICOM PS3.15 Annex E, Table E.1-1",
    methods: methodNames(session.options),
    methodCodes: codes.map((code) => ({ code, scheme: "DCM" })),
    patientIdentityRemoved: true,
  };
}

function manifestEntry(
  plan: ArchivePlan,
  instances: ManifestInstance[],
  refused: { sopInstanceUid: string; reason: string }[],
  missing: { sopInstanceUid: string }[],
): Entry {
  const session = plan.session;
  const manifest = {
    created: new Date().toISOString(),
    deidentification: deidDescription(session),
    instances,
    flagged: plan.flagged.map((f) => ({
      sopInstanceUid: session ? session.keys.uid(f.row.sop_uid) : f.row.sop_uid,
      reason: f.reason,
      included: f.included,
    })),
    refused,
    missing,
  };
  return {
    name: "manifest.json",
    chunks: [new TextEncoder().encode(JSON.stringify(manifest, null, 2))],
  };
}
