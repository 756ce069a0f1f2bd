/**
 * @module The instances of a study read from the object store and de-identified one at a time
 * (`codec/deid.ts`), the next ones' bytes fetched while the current one is processed. Shared by
 * the de-identified download (`archive.ts`) and the de-identified copy (`deidentify.ts`).
 */
import type { InstanceRow } from "../db/dicom_repo.ts";
import { deidentifyPart10, DeidError, type DeidResult, type DeidSession } from "./codec/deid.ts";
import type { DicomContext } from "./context.ts";

const AHEAD = 2;

export interface DeidentifiedInstance {
  row: InstanceRow;
  /** The de-identified instance; absent when it was refused. */
  result?: DeidResult;
  /** Why the instance could not be de-identified (it is left out, never passed through). */
  refused?: string;
}

export async function* deidentifiedInstances(
  deps: DicomContext,
  rows: readonly InstanceRow[],
  session: DeidSession,
): AsyncGenerator<DeidentifiedInstance> {
  // The next instances' bytes are fetched while one is de-identified (`AHEAD` in flight).
  const pending: Promise<Uint8Array | null>[] = [];
  let started = 0;
  const fill = (upTo: number) => {
    for (; started < rows.length && started <= upTo; started++) {
      const get = deps.store.get(rows[started].object_key);
      // Awaited in its turn; an export cancelled before then must not leave it unhandled.
      get.catch(() => {});
      pending.push(get);
    }
  };
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i];
    fill(i + AHEAD);
    const bytes = await pending.shift()!;
    if (!bytes) {
      throw new Error(`The bytes of instance ${row.sop_uid} vanished during the export`);
    }
    let result: DeidResult;
    try {
      result = deidentifyPart10(bytes, session);
    } catch (e) {
      // One instance the engine cannot handle is left out (and reported), never passed through.
      const reason = e instanceof DeidError ? e.message : `De-identification failed: ${e}`;
      deps.log(e instanceof DeidError ? "warn" : "error", "an instance is left out of an export", {
        sopInstanceUid: row.sop_uid,
        reason,
      });
      yield { row, refused: reason };
      continue;
    }
    yield { row, result };
  }
}
