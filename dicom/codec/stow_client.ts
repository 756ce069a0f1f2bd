/**
 * @module What a STOW-RS client needs, shared by the sidecar storing its results and the
 * forwarding to DICOMweb destinations: the request body for Part 10 instances, and the failure
 * reasons an answer's Failed SOP Sequence (0008,1198) gives (PS3.18 10.5.3).
 */
import { newBoundary, writeMultipart } from "./multipart.ts";

/** A multipart/related body of Part 10 instances, in memory (so a retry can send it again). */
export async function stowBody(
  instances: readonly Uint8Array[],
): Promise<{ body: Uint8Array<ArrayBuffer>; contentType: string }> {
  const boundary = newBoundary();
  const body = new Uint8Array(
    await new Response(
      writeMultipart(
        (async function* () {
          for (const bytes of instances) yield { contentType: "application/dicom", body: bytes };
        })(),
        boundary,
      ),
    ).arrayBuffer(),
  );
  return { body, contentType: `multipart/related; type="application/dicom"; boundary=${boundary}` };
}

/**
 * The failure reason per SOP Instance UID of a STOW-RS answer; empty when it names none or is not
 * DICOM JSON (an OperationOutcome: the status says what happened). A missing reason counts as
 * 0xA700 (the store could not take it).
 */
export function failedInstances(text: string): Map<string, number> {
  const failed = new Map<string, number>();
  try {
    const json = JSON.parse(text) as Record<
      string,
      { Value?: Record<string, { Value?: unknown[] }>[] }
    >;
    for (const f of json?.["00081198"]?.Value ?? []) {
      failed.set(String(f["00081155"]?.Value?.[0]), Number(f["00081197"]?.Value?.[0] ?? 0xa700));
    }
  } catch {
    // Not JSON.
  }
  return failed;
}
