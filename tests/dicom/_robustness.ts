/**
 * @module Helpers of the DICOM robustness tests (tests/dicom/robustness_*_test.ts), not a test
 * file itself: the fuzzing seed (DICOM_FUZZ_SEED), two files that once made `parseInstance` throw
 * something other than DicomInputError, the server's /health, and the check that an answer is an
 * OperationOutcome with a reason.
 */
import assert from "node:assert/strict";
import dicomParser from "dicom-parser";
import { createRng, readTestFile, withFreshUids } from "./_dicom_helpers.ts";

export const SEED = Number(Deno.env.get("DICOM_FUZZ_SEED") ?? 20261125);

/**
 * MR_small_implicit cut inside the value of Rows (US): implicit VR, so the parser does not see
 * it.
 */
export function implicitCutInsideUs(): Uint8Array {
  const bytes = withFreshUids(readTestFile("MR_small_implicit.dcm"), createRng(1)).bytes;
  const rows = dicomParser.parseDicom(bytes).elements.x00280010;
  return bytes.slice(0, rows.dataOffset + 1);
}

/**
 * test-SR with a nested sequence of defined length turned into an undefined length
 * (0xFFFFFFFF).
 */
export function nestedSequenceMadeUndefined(): Uint8Array {
  const bytes = withFreshUids(readTestFile("test-SR.dcm"), createRng(2)).bytes;
  const ds = dicomParser.parseDicom(bytes);
  const nested: dicomParser.Element[] = [];
  const visit = (set: dicomParser.DataSet, depth: number) => {
    for (const el of Object.values(set.elements)) {
      if (el.items && depth > 0 && !el.hadUndefinedLength) nested.push(el);
      for (const item of el.items ?? []) if (item.dataSet) visit(item.dataSet, depth + 1);
    }
  };
  visit(ds, 0);
  // The first whose change makes dicom-parser fail with an internal error (not a message string).
  for (const el of nested) {
    const out = bytes.slice();
    new DataView(out.buffer).setUint32(el.dataOffset - 4, 0xffffffff, true);
    try {
      dicomParser.parseDicom(out);
    } catch (e) {
      if ((e as { exception?: unknown }).exception instanceof Error) return out;
    }
  }
  throw new Error("no nested sequence of test-SR.dcm trips dicom-parser");
}

export async function healthy(ctx: { origin: string }): Promise<boolean> {
  const res = await fetch(`${ctx.origin}/health`);
  await res.body?.cancel();
  return res.status === 200;
}

export async function assertOutcome(
  res: Response,
  status: number | ((s: number) => boolean),
  what: string,
) {
  const text = await res.text();
  const ok = typeof status === "number" ? res.status === status : status(res.status);
  assert.ok(ok, `${what}: HTTP ${res.status} ${text.slice(0, 300)}`);
  assert.match(res.headers.get("content-type") ?? "", /json/, `${what}: content type`);
  const body = JSON.parse(text);
  assert.equal(body.resourceType, "OperationOutcome", `${what}: ${text.slice(0, 200)}`);
  assert.ok(body.issue?.[0]?.diagnostics || body.issue?.[0]?.details?.text, `${what}: a reason`);
  return body;
}
