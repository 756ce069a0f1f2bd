/**
 * @module Upload of a ZIP archive of DICOM files (for people and scripts; not part of PS3.18):
 * entries are read as they stream in, DICOM files stored in batches like STOW-RS parts, and
 * entries that are not DICOM (no `DICM` at byte 128, DICOMDIR, folders) reported and skipped.
 * The answer is the same PS3.18 store response, the skipped entries in its Warning notes.
 */
import type { DicomContext } from "./context.ts";
import { DicomwebError } from "./errors.ts";
import { createBatcher } from "./store.ts";
import { storeResponse, type StowResult } from "./stow.ts";
import { zipEntries, ZipError } from "./codec/zip_entries.ts";

export interface ZipStowResult extends StowResult {
  /** Entries that were not DICOM, with why. */
  skipped: { name: string; reason: string }[];
}

export async function stowZip(
  deps: DicomContext,
  body: ReadableStream<Uint8Array>,
  expectedStudy?: string,
): Promise<ZipStowResult> {
  const batcher = createBatcher(deps, expectedStudy);
  const { outcomes, flush } = batcher;
  const skipped: { name: string; reason: string }[] = [];
  const names: string[] = [];
  try {
    for await (
      const entry of zipEntries(body, {
        maxEntryBytes: deps.config.maxInstanceBytes,
        maxTotalBytes: deps.config.maxRequestBytes,
      })
    ) {
      const base = entry.name.split("/").pop() ?? entry.name;
      if (base.toUpperCase() === "DICOMDIR") {
        skipped.push({ name: entry.name, reason: "a DICOMDIR (media directory), not an instance" });
        continue;
      }
      if (entry.name.startsWith("__MACOSX/") || base.startsWith("._")) {
        skipped.push({ name: entry.name, reason: "macOS resource fork" });
        continue;
      }
      const b = entry.bytes;
      if (
        b.length < 132 || b[128] !== 0x44 || b[129] !== 0x49 || b[130] !== 0x43 || b[131] !== 0x4d
      ) {
        skipped.push({ name: entry.name, reason: "not a DICOM Part 10 file" });
        continue;
      }
      names.push(entry.name);
      await batcher.add({ index: names.length - 1, bytes: b });
    }
  } catch (e) {
    if (!(e instanceof ZipError)) throw e;
    await flush();
    const stored = outcomes.filter((o) => o.status !== "failed").length;
    const note = stored ? ` (${stored} instances before it were stored)` : "";
    throw new DicomwebError(e.kind === "too-large" ? 413 : 400, `${e.message}${note}`);
  }
  await flush();
  if (!outcomes.length) {
    throw new DicomwebError(
      400,
      `The archive holds no DICOM files${
        skipped.length ? ` (${skipped.length} entries skipped)` : ""
      }`,
    );
  }
  const result = storeResponse(deps, outcomes);
  // Name the entries, not part numbers.
  result.notes = result.notes.map((n) =>
    n.replace(/^part (\d+)/, (_, i) => `${names[Number(i) - 1]}`)
  );
  result.notes.push(...skipped.map((s) => `${s.name}: skipped, ${s.reason}`));
  return { ...result, skipped };
}
