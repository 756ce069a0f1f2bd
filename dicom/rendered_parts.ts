/**
 * @module Rendered resources of several images (PS3.18 10.4.1.1.3): a study, a series, an instance
 * (every frame) or a list of frames, as multipart/related parts of one rendered frame each. What
 * cannot be rendered (no pixel data, a transfer syntax not decoded here, bytes missing from the
 * object store) is known from the index before the answer starts and left out with a note; the
 * rest is rendered lazily, one instance in memory at a time, as the client reads the response.
 */
import { parseDataSet } from "./codec/dataset.ts";
import type { OutgoingPart } from "./codec/multipart.ts";
import { SYNTAX_NAMES } from "./codec/pixels.ts";
import type { InstanceRow } from "../db/dicom_repo.ts";
import type { DicomContext } from "./context.ts";
import { DicomwebError } from "./errors.ts";
import { renderFrame, type RenderParams } from "./rendered.ts";
import * as wado from "./wado.ts";

/** The transfer syntaxes `codec/pixels.ts` decodes (native, deflated, RLE, JPEG baseline/lossless). */
export const RENDERABLE_SYNTAXES: ReadonlySet<string> = new Set([
  "1.2.840.10008.1.2",
  "1.2.840.10008.1.2.1",
  "1.2.840.10008.1.2.1.99",
  "1.2.840.10008.1.2.2",
  "1.2.840.10008.1.2.5",
  "1.2.840.10008.1.2.4.50",
  "1.2.840.10008.1.2.4.51",
  "1.2.840.10008.1.2.4.57",
  "1.2.840.10008.1.2.4.70",
]);

export interface RenderedParts {
  /** One part per rendered frame, produced as they are read. */
  parts: AsyncIterable<OutgoingPart>;
  /** What was left out, and why (for a Warning header and a 206). */
  notes: string[];
}

/** Why the instance of `row` cannot be rendered, judged from the index; undefined when it can. */
export function unrenderable(row: InstanceRow): string | undefined {
  if (!(row.frames > 0)) {
    return `Instance ${row.sop_uid} (SOP class ${row.sop_class}) has no pixel data to render`;
  }
  if (!RENDERABLE_SYNTAXES.has(row.transfer_syntax)) {
    const name = SYNTAX_NAMES[row.transfer_syntax] ?? "a transfer syntax";
    return `Instance ${row.sop_uid} is stored in ${name} (${row.transfer_syntax}), which is not rendered here`;
  }
  return undefined;
}

/**
 * The rendered frames of `t`: every frame of every renderable instance, or (for one instance)
 * the 1-based `frames` asked for. 404 for what does not exist, 406 when nothing can be rendered.
 */
export async function renderedResource(
  deps: DicomContext,
  t: wado.Target,
  params: RenderParams,
  frames?: number[],
): Promise<RenderedParts> {
  const rows = await wado.instancesOf(deps, t);
  const notes: string[] = [];
  const kept: InstanceRow[] = [];
  for (const row of rows) {
    const why = unrenderable(row);
    if (why) notes.push(why);
    else kept.push(row);
  }
  if (!kept.length) {
    throw new DicomwebError(406, `Nothing to render: ${notes.slice(0, 3).join("; ")}`);
  }
  if (frames) {
    const last = kept[0].frames;
    const beyond = frames.find((n) => n < 1 || n > last);
    if (beyond !== undefined) {
      throw new DicomwebError(
        404,
        `Frame ${beyond} does not exist (instance ${kept[0].sop_uid} has ${last})`,
      );
    }
  }
  const { present, missing } = await wado.storedInstances(deps, t, kept);
  for (const r of missing) notes.push(`Instance ${r.sop_uid} is missing from the object store`);
  return { parts: renderedParts(deps, present, params, frames), notes };
}

async function* renderedParts(
  deps: DicomContext,
  rows: InstanceRow[],
  params: RenderParams,
  frames?: number[],
): AsyncGenerator<OutgoingPart> {
  for (const row of rows) {
    const bytes = await deps.store.get(row.object_key);
    if (!bytes) {
      // Checked before the answer started: a vanished object ends the stream, never a part short.
      deps.log("error", "DICOM object vanished from the store during a rendered retrieve", {
        key: row.object_key,
        sopInstanceUid: row.sop_uid,
      });
      throw new Error(`The bytes of instance ${row.sop_uid} vanished during the retrieve`);
    }
    const ds = parseDataSet(bytes);
    const numbers = frames ?? Array.from({ length: row.frames }, (_, i) => i + 1);
    const url = wado.instanceUrl(deps, row);
    for (const n of numbers) {
      let body: Uint8Array;
      try {
        body = renderFrame(ds, n - 1, params);
      } catch (e) {
        deps.log("error", "rendering failed after the rendered retrieve had started", {
          sopInstanceUid: row.sop_uid,
          frame: n,
          error: String(e),
        });
        throw e;
      }
      yield {
        contentType: params.type,
        body,
        headers: { "Content-Location": `${url}/frames/${n}/rendered` },
      };
    }
  }
}
