/**
 * @module Robustness of the DICOMweb response headers, on a server in a child process (such
 * values crashed it): STOW-RS failure reasons and warnings, and a QIDO-RS includefield, that carry
 * control or non-Latin-1 characters neither end the server process nor give a 500.
 */
import assert from "node:assert/strict";
import {
  createRng,
  patchValue,
  readTestFile,
  spawnServer,
  stow,
  withFreshUids,
} from "./_dicom_helpers.ts";

/** STOW-RS files whose failure reason or warning carries a character no header may hold. */
const HEADER_CASES: [string, string, string, "stored" | "failed"][] = [
  [
    "a control character in the SOP Instance UID (failure reason)",
    "00080018",
    "1.2.3\x01",
    "failed",
  ],
  ["DEL in InstanceNumber (IS warning)", "00200013", "\x7f", "stored"],
  ["0x80 in InstanceNumber, € in windows-1252 (IS warning)", "00200013", "\x80", "stored"],
];

Deno.test({
  name:
    "STOW-RS notes with control or non-Latin-1 characters neither crash the server nor give 500",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    // Regression (fixed): routes/dicomweb.ts warningHeader() strips only CR, LF, " and \ from the notes,
    // which quote DICOM values. A control character (0x01–0x1F but TAB, 0x7F) makes Deno's HTTP
    // server panic ("invalid response header value"): the whole process dies. A character above
    // U+00FF makes Headers.set throw: 500, although the instance was stored.
    const problems: string[] = [];
    const rng = createRng(41);
    let server = await spawnServer();
    try {
      for (const [what, tag, value, expected] of HEADER_CASES) {
        const file = withFreshUids(readTestFile("MR_small.dcm"), rng);
        let res;
        try {
          res = await stow(server.origin, [patchValue(file.bytes, tag, value)]);
        } catch (e) {
          res = { status: 0, text: String(e), body: undefined };
        }
        const want = expected === "stored" ? [200, 202] : [409];
        if (!want.includes(res.status)) {
          problems.push(`${what}: HTTP ${res.status || "none"} ${res.text.slice(0, 120)}`);
        }
        if (!(await server.alive())) {
          const stderr = await server.close();
          const panic = stderr.split("\n").find((l) => /panicked|invalid/.test(l));
          problems.push(`${what}: the server process died (${panic ?? "no message"})`);
          server = await spawnServer();
        }
      }
    } finally {
      await server.close();
    }
    assert.deepEqual(problems, []);
  },
});

Deno.test({
  name: "QIDO-RS includefield with control or non-Latin-1 characters neither crashes nor gives 500",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    // Regression (fixed): the same warningHeader(): qido.ts puts the includefield value in a warning, so
    // one GET /dicomweb/studies?includefield=%01 ends the server process.
    const problems: string[] = [];
    let server = await spawnServer();
    try {
      for (const value of ["%01", "%7F", "%E2%82%AC", "%00"]) {
        let status = 0;
        try {
          const res = await fetch(`${server.origin}/dicomweb/studies?includefield=${value}`);
          await res.body?.cancel();
          status = res.status;
        } catch { /* no answer */ }
        if (status !== 200 && status !== 400) {
          problems.push(`includefield=${value}: HTTP ${status}`);
        }
        if (!(await server.alive())) {
          await server.close();
          problems.push(`includefield=${value}: the server process died`);
          server = await spawnServer();
        }
      }
    } finally {
      await server.close();
    }
    assert.deepEqual(problems, []);
  },
});
