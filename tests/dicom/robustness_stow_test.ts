/**
 * @module Robustness of STOW-RS against bad parts: a part that trips the parser, or that cannot be
 * indexed, fails alone (0xC000), never the request or the other parts of its request; and seeded
 * fuzzing of real DICOM files (Debian's pydicom test files) through STOW-RS: never a 5xx, every
 * part answered, objects and rows in step. Set DICOM_FUZZ_SEED to fuzz with another seed.
 * Failures name the seed, the salt of the run's UIDs and the variant index: DICOM_FUZZ_SEED and
 * DICOM_FUZZ_SALT reproduce them.
 */
import assert from "node:assert/strict";
import { parseInstance } from "../../dicom/codec/parse.ts";
import { backendTest, type TestContext } from "../_harness.ts";
import {
  createRng,
  type DicomJsonBody,
  type FuzzVariant,
  fuzzVariants,
  patchValue,
  readTestFile,
  RUN_SALT,
  sequenceUids,
  storeInvariant,
  stow,
  withFreshUids,
} from "./_dicom_helpers.ts";
import { healthy, implicitCutInsideUs, nestedSequenceMadeUndefined, SEED } from "./_robustness.ts";

const STOW_VARIANTS = 3_000;
const PARTS_PER_REQUEST = 50;
/** Reason codes of FailedSOPSequence items (PS3.18 / PS3.4). */
const CANNOT_UNDERSTAND = 0xc000;

// ---------------------------------------------------------------------------------------------
// STOW-RS parts that trip the parser or cannot be indexed

const OK_STOW = new Set([200, 202, 409]);

/** Resends each part of a request that got a 5xx alone: which variants cause it. */
async function pinpoint(ctx: TestContext, batch: FuzzVariant[]): Promise<string[]> {
  const guilty: string[] = [];
  for (const v of batch) {
    const r = await stow(ctx.origin, [v.bytes]);
    if (r.status >= 500) {
      guilty.push(`#${v.index} ${v.description} → ${r.status} ${r.text.slice(0, 120)}`);
    }
  }
  return guilty;
}

backendTest(
  "STOW-RS: a part that trips the parser is a failed part (0xC000), not a 500 for the request",
  async (ctx) => {
    // Regression (fixed): both files make parseInstance() throw something other than DicomInputError;
    // store.ts rethrows it and the whole request answers 500 (text/plain, not an OperationOutcome:
    // Hono's onError never sees a thrown string), so the good part is not stored either.
    const good = withFreshUids(readTestFile("CT_small.dcm"), createRng(3));
    const res = await stow(ctx.origin, [
      good.bytes,
      implicitCutInsideUs(),
      nestedSequenceMadeUndefined(),
    ]);
    assert.equal(
      res.status,
      202,
      `HTTP ${res.status} ${res.headers.get("content-type")}: ${res.text.slice(0, 200)}`,
    );
    assert.deepEqual(sequenceUids(res.body, "00081199"), [good.sopUid]);
    const failed = (res.body["00081198"]?.Value ?? []) as DicomJsonBody[];
    assert.deepEqual(failed.map((f) => f["00081197"].Value[0]), [
      CANNOT_UNDERSTAND,
      CANNOT_UNDERSTAND,
    ]);
    assert.ok(await healthy(ctx));
  },
);

backendTest(
  "STOW-RS: a part that cannot be indexed does not fail the other parts of its request",
  async (ctx) => {
    // Regression (fixed): store.ts writes a batch (up to 32 parts, any studies) in one transaction; a NUL
    // in a string (Postgres: invalid byte sequence 0x00) or a control character that fails FHIR
    // validation of the Patient ("Invalid string format") rolls back every part of the batch.
    const rng = createRng(4);
    const cases: [string, string, string][] = [
      ["a NUL inside PatientName", "00100010", "Compr\0ssedSamples^CT1"],
      ["control characters in PatientName", "00100010", "\x01\x02\x03"],
      ["control characters in PatientID", "00100020", "\x00\x01"],
    ];
    const problems: string[] = [];
    const studies: string[] = [];
    for (const [what, tag, value] of cases) {
      const good = withFreshUids(readTestFile("MR_small.dcm"), rng);
      const badFile = withFreshUids(readTestFile("CT_small.dcm"), rng);
      studies.push(good.studyUid, badFile.studyUid);
      const res = await stow(ctx.origin, [good.bytes, patchValue(badFile.bytes, tag, value)]);
      assert.ok(OK_STOW.has(res.status), `${what}: HTTP ${res.status}`);
      const stored = sequenceUids(res.body, "00081199");
      if (!stored.includes(good.sopUid)) {
        problems.push(
          `${what}: the good part was not stored (HTTP ${res.status}; ${
            res.headers.get("warning")
          })`,
        );
      }
    }
    const inv = await storeInvariant(ctx, studies);
    assert.deepEqual([...inv.rowsWithoutObject, ...inv.objectsWithoutRow], []);
    assert.deepEqual(problems, []);
  },
);

// ---------------------------------------------------------------------------------------------
// STOW-RS of fuzzed files (last: while a crash bug is open, it ends the test process)

backendTest(
  `STOW-RS of ${STOW_VARIANTS} fuzzed files: never a 5xx, every part answered, objects and rows in step`,
  async (ctx) => {
    const t0 = performance.now();
    const variants = [...fuzzVariants(SEED, STOW_VARIANTS, { freshUids: 0.4 })];
    const studies = new Set<string>();
    const referenced: string[] = [];
    const problems: string[] = [];
    let failedRequests = 0;
    const totals = { stored: 0, failed: 0, status: {} as Record<number, number> };
    for (
      let start = 0, request = 0;
      start < variants.length;
      start += PARTS_PER_REQUEST, request++
    ) {
      const batch = variants.slice(start, start + PARTS_PER_REQUEST);
      // The same parser, run here: which parts the server must refuse as not understood.
      let unreadable = 0;
      for (const v of batch) {
        try {
          studies.add(parseInstance(v.bytes).studyUid);
        } catch {
          unreadable++;
        }
      }
      const res = await stow(ctx.origin, batch.map((v) => v.bytes));
      totals.status[res.status] = (totals.status[res.status] ?? 0) + 1;
      const where = `request ${request} (variants ${start}–${
        start + batch.length - 1
      }, seed ${SEED}, salt ${RUN_SALT})`;
      if (!OK_STOW.has(res.status)) {
        const detail = `${where}: HTTP ${res.status} ${res.headers.get("content-type")} ${
          res.text.slice(0, 200)
        }`;
        problems.push(detail);
        if (res.status >= 500 && failedRequests++ < 3) {
          for (const g of await pinpoint(ctx, batch)) problems.push(`  alone: ${g}`);
        }
      } else {
        const ok = sequenceUids(res.body, "00081199");
        const failed = (res.body?.["00081198"]?.Value ?? []) as DicomJsonBody[];
        totals.stored += ok.length;
        totals.failed += failed.length;
        referenced.push(...ok);
        if (ok.length + failed.length !== batch.length) {
          problems.push(
            `${where}: ${batch.length} parts sent, ${ok.length} referenced + ${failed.length} failed`,
          );
        }
        const notUnderstood = failed.filter((f) =>
          f["00081197"]?.Value?.[0] === CANNOT_UNDERSTAND
        ).length;
        if (notUnderstood !== unreadable) {
          problems.push(
            `${where}: ${unreadable} parts do not parse, ${notUnderstood} failed with 0xC000`,
          );
        }
      }
      if (!(await healthy(ctx))) problems.push(`${where}: /health is not 200 afterwards`);
    }
    const seconds = ((performance.now() - t0) / 1000).toFixed(1);
    console.log(
      `[${ctx.backend}] ${variants.length} variants in ${
        Math.ceil(variants.length / PARTS_PER_REQUEST)
      } requests, ${seconds} s:`,
      totals,
    );

    // Every referenced instance is indexed, and objects and rows are in step.
    const stored = new Set(
      (await ctx.services.db.query<{ sop_uid: string }>(
        `SELECT sop_uid FROM dicom_instance WHERE sop_uid = ANY($1::text[])`,
        [[...new Set(referenced.filter(Boolean))]],
      )).map((r) => r.sop_uid),
    );
    const missing = [...new Set(referenced)].filter((uid) => uid && !stored.has(uid));
    if (missing.length) {
      problems.push(`referenced but not indexed: ${missing.slice(0, 5).join(", ")}`);
    }
    const inv = await storeInvariant(ctx, studies);
    console.log(`[${ctx.backend}] store invariant (${inv.scope}):`, {
      rows: inv.rows,
      objects: inv.objects,
    });
    assert.deepEqual(inv.rowsWithoutObject, [], "rows whose object is missing");
    assert.deepEqual(inv.objectsWithoutRow, [], "objects that no row points at");
    assert.ok(totals.stored > 0, "some variants were stored");
    assert.deepEqual(
      problems,
      [],
      `seed ${SEED}, salt ${RUN_SALT}:\n${problems.slice(0, 30).join("\n")}`,
    );
  },
);
