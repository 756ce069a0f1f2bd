// deno-lint-ignore-file no-explicit-any
/**
 * @module Injection sweep (security) of DICOMweb: SQL metacharacters, control characters (NUL
 * included), unicode, wildcards, bad dates, times, UID lists and numbers, and very long values in
 * every QIDO-RS query key at each level, hostile keys, and hostile UIDs in the paths of WADO-RS.
 * Proves that each answer is a client error (with an OperationOutcome) or a normal answer (a DICOM
 * JSON array), never a 5xx, that the seeded studies are unchanged and still found afterwards, and
 * that the audit trail still writes. Values past 64 KiB go on a raw socket.
 */
import assert from "node:assert/strict";
import { backendTest } from "../_harness.ts";
import { dicomJson, seedStudy, uids, value } from "../dicom/_dicomweb_util.ts";
import {
  assertAuditWrites,
  assertNoFailures,
  enc,
  GENERIC,
  type Hostile,
  LONG_100K,
  LONG_10K,
  pair,
  type Probe,
  rawGet,
  sweep,
} from "./_injection.ts";

/** Hostile values for QIDO-RS keys: the generic ones and DICOM-shaped ones with wildcards. */
const QIDO_VALUES: Hostile[] = [
  ...GENERIC,
  "*'*",
  "'*",
  "?'",
  "%*",
  "_?",
  "\\*",
  "*\u0000*",
  "O'Brien*",
  "*' OR '1'='1",
  "20200101-'",
  "'-20200101",
  "20200101-20201399",
  "99999999",
  "00000000-99999999",
  "20200101--",
  "-",
  "--",
  "12'",
  "120000-'",
  "250000",
  "12.1234567",
  "1.2,'",
  "1.2\\'",
  "','",
  "1.2,,",
  "1.2,\u0000",
  "CT,'",
  "CT\\'",
  "99999999999999999999",
  "2147483648",
  "-2147483649",
  "1,99999999999999999999",
  "1e3",
  "0x1",
  "1.2.3.".repeat(2_000),
];

/** The matching keys, by keyword and by tag, and the result parameters. */
const QIDO_KEYS = [
  "PatientName",
  "PatientID",
  "StudyDate",
  "StudyTime",
  "AccessionNumber",
  "ModalitiesInStudy",
  "ReferringPhysicianName",
  "StudyDescription",
  "StudyID",
  "StudyInstanceUID",
  "SeriesInstanceUID",
  "SeriesDescription",
  "BodyPartExamined",
  "SOPInstanceUID",
  "SOPClassUID",
  "Modality",
  "SeriesNumber",
  "InstanceNumber",
  "PatientBirthDate",
  "00100010",
  "00100020",
  "00080020",
  "00080030",
  "00080050",
  "00080061",
  "00080090",
  "00081030",
  "00200010",
  "0020000D",
  "0020000E",
  "0008103E",
  "00180015",
  "00080018",
  "00080016",
  "00080060",
  "00200011",
  "00200013",
  "0020000d",
  "includefield",
  "limit",
  "offset",
  "fuzzymatching",
];

backendTest(
  "injection: hostile QIDO-RS keys and WADO-RS path UIDs answer < 500 and change nothing",
  async (ctx) => {
    const a = await seedStudy(ctx, { PatientName: "O'Brien^Mary", StudyDescription: "CT '; --" });
    const b = await seedStudy(ctx);
    const mine = (rows: any[]) =>
      uids(rows, "0020000D").filter((s: string) => s === a.study || s === b.study);
    const before = await dicomJson(ctx, `studies?PatientID=${a.patientId}&includefield=all`);
    assert.equal(before.status, 200);

    const probes: Probe[] = [];
    const qidoProbe = (path: string): Probe => ({
      label: `GET /dicomweb/${path}`,
      kind: "qido",
      run: () =>
        fetch(`${ctx.origin}/dicomweb/${path}`, { headers: { accept: "application/dicom+json" } }),
    });
    const levels = [
      "studies",
      "series",
      "instances",
      `studies/${a.study}/series`,
      `studies/${a.study}/instances`,
      `studies/${a.study}/series/${a.series[0]}/instances`,
    ];
    for (const key of QIDO_KEYS) {
      // Every value at the instance level (where every key matches), a sample at the others.
      for (const v of QIDO_VALUES) probes.push(qidoProbe(`instances?${pair(key, v)}`));
      for (const level of levels.filter((l) => l !== "instances")) {
        for (const v of ["'", "a\u0000b", "*'*", "20200101-'", "1.2,'", "2147483648", LONG_10K]) {
          probes.push(qidoProbe(`${level}?${pair(key, v)}`));
        }
      }
      probes.push({
        label: `GET (raw) /dicomweb/studies?${key}=<100 000 characters>`,
        kind: "raw",
        run: () => rawGet(ctx.origin, `/dicomweb/studies?${pair(key, LONG_100K)}`),
      });
    }
    // Hostile keys, several keys at once, repeated keys.
    for (
      const key of ["'", "\u0000", "PatientName'", "0010001G", "00100010'", "(0010,0010)", LONG_10K]
    ) {
      probes.push(qidoProbe(`studies?${pair(key, "x")}`));
    }
    probes.push(
      qidoProbe(
        `instances?${pair("PatientName", "'*")}&${pair("StudyDate", "-'")}&${
          pair("Modality", "CT\\'")
        }&${pair("limit", "'")}`,
      ),
    );
    probes.push(qidoProbe(`studies?${pair("PatientID", "'")}&${pair("PatientID", "\u0000")}`));

    // WADO-RS: hostile UIDs in the path (the route takes [0-9.]{1,64}; anything else is no route).
    const s = a.study;
    const se = a.series[0];
    const sop = a.instances[0].sop;
    const bad = [
      "'",
      "1.2'",
      "1.2%27",
      "%00",
      "1.2%00",
      "1.2;--",
      "..",
      "%2e%2e",
      "1..2",
      ".",
      "9".repeat(64),
      "9".repeat(65),
      "1".repeat(10_000),
      "%F0%9F%98%80",
      "1.2%2F3",
      "1.2%5C",
      "*",
      "1.2,3.4",
    ];
    const wadoPaths: string[] = [];
    for (const x of bad) {
      wadoPaths.push(
        `studies/${x}`,
        `studies/${x}/metadata`,
        `studies/${x}/series`,
        `studies/${x}/instances`,
        `studies/${s}/series/${x}`,
        `studies/${s}/series/${x}/metadata`,
        `studies/${s}/series/${x}/instances`,
        `studies/${s}/series/${se}/instances/${x}`,
        `studies/${s}/series/${se}/instances/${x}/metadata`,
        `studies/${s}/series/${se}/instances/${sop}/frames/${x}`,
        `studies/${s}/series/${se}/instances/${sop}/frames/${x}/rendered`,
        `studies/${s}/series/${se}/instances/${sop}/bulkdata/${x}`,
        `studies/${s}/series/${se}/instances/${sop}/rendered?window=${x}`,
        `studies/${s}/series/${se}/instances/${sop}/rendered?quality=${x}`,
        `studies/${s}/series/${se}/instances/${sop}/rendered?viewport=${x}`,
      );
    }
    for (const path of wadoPaths) {
      const accept = path.includes("rendered")
        ? "image/png"
        : /metadata$|series$|instances$/.test(path)
        ? "application/dicom+json"
        : 'multipart/related; type="application/dicom"';
      probes.push({
        label: `GET /dicomweb/${path}`,
        kind: "any",
        run: () => fetch(`${ctx.origin}/dicomweb/${path}`, { headers: { accept } }),
      });
    }
    const failures = await sweep(probes);
    console.log(
      `[${ctx.backend}] DICOMweb: ${probes.length} requests (${wadoPaths.length} WADO-RS paths)`,
    );
    assertNoFailures(failures, probes.length, "hostile DICOMweb requests");
    await assertAuditWrites(ctx);

    // Nothing changed: both studies found, the same attributes, WADO-RS still serves them.
    const after = await dicomJson(ctx, `studies?PatientID=${a.patientId}&includefield=all`);
    assert.deepEqual(after.body, before.body);
    const both = await dicomJson(ctx, `studies?PatientID=${a.patientId},${b.patientId}`);
    assert.equal(both.status, 200);
    assert.deepEqual(
      mine([
        ...(await dicomJson(ctx, `studies?PatientID=${a.patientId}`)).body,
        ...(await dicomJson(ctx, `studies?PatientID=${b.patientId}`)).body,
      ]),
      [a.study, b.study].sort(),
    );
    const named = await dicomJson(ctx, `studies?PatientName=${enc("o'brien^*")}`);
    assert.ok(mine(named.body).includes(a.study), "a name with a quote still matches");
    const instances = await dicomJson(ctx, `studies/${a.study}/instances`);
    assert.equal(instances.body.length, 4);
    assert.equal(value(instances.body[0], "0020000D"), a.study);
    const meta = await dicomJson(ctx, `studies/${a.study}/metadata`);
    assert.equal(meta.status, 200);
    assert.equal(meta.body.length, 4);
  },
);
