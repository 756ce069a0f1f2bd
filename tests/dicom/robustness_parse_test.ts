/**
 * @module Robustness of the DICOM parser: seeded fuzzing of real DICOM files (Debian's pydicom test
 * files) through `parseInstance`, in a worker so that a hang can be seen and stopped: on any bytes
 * it returns or throws DicomInputError, within 5 s; and two files that once made it throw
 * something else. Set DICOM_FUZZ_SEED to fuzz with another seed. Failures name the seed, the salt
 * of the run's UIDs and the variant index: DICOM_FUZZ_SEED and DICOM_FUZZ_SALT reproduce them.
 */
import assert from "node:assert/strict";
import { DicomInputError, parseInstance } from "../../dicom/codec/parse.ts";
import { type FuzzVariant, fuzzVariants, RUN_SALT } from "./_dicom_helpers.ts";
import { implicitCutInsideUs, nestedSequenceMadeUndefined, SEED } from "./_robustness.ts";

const PARSE_VARIANTS = 20_000;

interface ParseFailure {
  index: number;
  description: string;
  error: string;
  ms: number;
}

/**
 * The fuzz loop, run in a worker so that a hang can be seen and stopped: it writes the index of
 * the variant it is parsing into shared memory before each parse.
 */
const PARSE_WORKER = `
import { DicomInputError, parseInstance } from "${new URL(
  "../../dicom/codec/parse.ts",
  import.meta.url,
)}";
import { fuzzVariants } from "${new URL("./_dicom_helpers.ts", import.meta.url)}";
self.onmessage = ({ data }) => {
  const progress = new Int32Array(data.progress);
  const failures = [];
  const counts = { returned: 0, inputError: 0, other: 0 };
  for (const v of fuzzVariants(data.seed, data.count, { salt: data.salt })) {
    Atomics.store(progress, 0, v.index + 1);
    const t0 = performance.now();
    let error;
    try {
      parseInstance(v.bytes);
      counts.returned++;
    } catch (e) {
      if (e instanceof DicomInputError) counts.inputError++;
      else {
        counts.other++;
        error = (e?.constructor?.name ?? typeof e) + ": " + String(e?.message ?? e).slice(0, 200);
      }
    }
    const ms = performance.now() - t0;
    if (error || ms > data.slowMs) {
      failures.push({ index: v.index, description: v.description, error: error ?? "slow", ms });
    }
  }
  self.postMessage({ counts, failures });
};
`;

Deno.test(
  `parseInstance() returns or throws DicomInputError for ${PARSE_VARIANTS} fuzzed files (seed ${SEED})`,
  async () => {
    const progress = new SharedArrayBuffer(4);
    const seen = new Int32Array(progress);
    const url = URL.createObjectURL(new Blob([PARSE_WORKER], { type: "text/javascript" }));
    const worker = new Worker(url, { type: "module" });
    const HANG_MS = 20_000;
    type Result = {
      counts: Record<string, number>;
      failures: ParseFailure[];
    };
    const done = new Promise<Result>((resolve, reject) => {
      worker.onmessage = (e) => resolve(e.data);
      worker.onerror = (e) => {
        e.preventDefault();
        reject(new Error(`fuzz worker failed: ${e.message}`));
      };
    });
    worker.postMessage({
      seed: SEED,
      salt: RUN_SALT,
      count: PARSE_VARIANTS,
      progress,
      slowMs: 5_000,
    });
    let result: Result | undefined;
    let last = -1, since = Date.now();
    try {
      while (!result) {
        result = await Promise.race([
          done,
          new Promise<undefined>((r) => setTimeout(() => r(undefined), 250)),
        ]);
        const now = Atomics.load(seen, 0);
        if (now !== last) [last, since] = [now, Date.now()];
        else if (now > 0 && Date.now() - since > HANG_MS) {
          const variant = variantAt(SEED, now - 1);
          assert.fail(
            `parseInstance() hung (no progress for ${HANG_MS / 1000} s) on variant ${
              now - 1
            } of seed ${SEED} (salt ${RUN_SALT}): ${variant.description}`,
          );
        }
      }
    } finally {
      worker.terminate();
      URL.revokeObjectURL(url);
    }
    const { counts, failures } = result;
    console.log(`parseInstance() on ${PARSE_VARIANTS} variants:`, counts);
    assert.equal(counts.returned + counts.inputError + counts.other, PARSE_VARIANTS);
    assert.ok(counts.returned > 100 && counts.inputError > 100, "the variants exercise both paths");
    assert.deepEqual(
      failures,
      [],
      `seed ${SEED}, salt ${RUN_SALT}: ${failures.length} variants threw something other than DicomInputError or ` +
        `took over 5 s; first:\n${
          failures.slice(0, 10).map((f) =>
            `  #${f.index} ${f.description}: ${f.error} (${f.ms.toFixed(0)} ms)`
          ).join("\n")
        }`,
    );
  },
);

function variantAt(seed: number, index: number): FuzzVariant {
  for (const v of fuzzVariants(seed, index + 1, { salt: RUN_SALT })) {
    if (v.index === index) return v;
  }
  throw new Error(`no variant ${index}`);
}

Deno.test("parseInstance() throws DicomInputError for an implicit VR file cut inside a US value", () => {
  // Regression (fixed): dicom-parser does not check that the last element of an implicit VR data set ends
  // inside the buffer; toDicomJson then reads past the end and dicom-parser throws a string.
  assert.throws(() => parseInstance(implicitCutInsideUs()), DicomInputError);
});

Deno.test("parseInstance() throws DicomInputError when dicom-parser fails with its own TypeError", () => {
  // Regression (fixed): dicom-parser throws { exception: TypeError }; parse.ts takes `exception` for a
  // string and cleanParserMessage() calls .replace on the TypeError.
  assert.throws(() => parseInstance(nestedSequenceMadeUndefined()), DicomInputError);
});
