// deno-lint-ignore-file no-explicit-any
/**
 * @module QIDO-RS black-box tests: the three query levels and their nested forms, the standard
 * matching (wildcards, date and time ranges, UID lists, hex tags), paging, includefield, computed
 * attributes, and hostile values that must match literally and break nothing.
 */
import assert from "node:assert/strict";
import { backendTest, uniq } from "../_harness.ts";
import {
  CT_IMAGE,
  CT_SMALL,
  dicomJson,
  makeInstance,
  newUid,
  qido,
  seedFiles,
  seedStudy,
  stow,
  uids,
  value,
  values,
} from "./_dicomweb_util.ts";

backendTest(
  "QIDO-RS: studies, series and instances, nested forms, computed attributes",
  async (ctx) => {
    const { patientId, study, series, instances } = await seedStudy(ctx);
    const [st] = await qido(ctx, `studies?PatientID=${patientId}`);
    assert.equal(value(st, "0020000D"), study);
    assert.equal(value(st, "00201206"), 2, "NumberOfStudyRelatedSeries");
    assert.equal(value(st, "00201208"), 4, "NumberOfStudyRelatedInstances");
    assert.deepEqual(values(st, "00080061"), ["CT", "MR"], "ModalitiesInStudy");
    assert.equal(value(st, "00081190"), `${ctx.origin}/dicomweb/studies/${study}`);
    assert.equal(value(st, "00100010"), `Qido^${patientId}`);
    assert.equal(st["00100010"].vr, "PN");
    assert.equal(value(st, "00080050"), `A${patientId}`);

    const allSeries = await qido(ctx, `studies/${study}/series`);
    assert.deepEqual(uids(allSeries, "0020000E"), [...series].sort());
    for (const s of allSeries) {
      assert.equal(value(s, "00201209"), 2, "NumberOfSeriesRelatedInstances");
      assert.equal(
        value(s, "00081190"),
        `${ctx.origin}/dicomweb/studies/${study}/series/${value(s, "0020000E")}`,
      );
    }
    assert.deepEqual(
      uids(await qido(ctx, `series?PatientID=${patientId}&Modality=MR`), "0020000E"),
      [series[1]],
    );
    const all = await qido(ctx, `studies/${study}/instances`);
    assert.deepEqual(uids(all, "00080018"), instances.map((i) => i.sop).sort());
    const inSeries = await qido(ctx, `studies/${study}/series/${series[0]}/instances`);
    assert.deepEqual(uids(inSeries, "00080018"), instances.slice(0, 2).map((i) => i.sop).sort());
    for (const i of inSeries) {
      assert.equal(value(i, "00080016"), CT_IMAGE);
      assert.equal(
        value(i, "00081190"),
        `${ctx.origin}/dicomweb/studies/${study}/series/${series[0]}/instances/${
          value(i, "00080018")
        }`,
      );
    }
    assert.equal((await qido(ctx, `instances?PatientID=${patientId}`)).length, 4);
    assert.equal((await qido(ctx, `studies/${newUid()}/series`)).length, 0);
  },
);

backendTest(
  "QIDO-RS matching: IDs, names with wildcards, dates, UID lists, hex tags",
  async (ctx) => {
    const a = await seedStudy(ctx, { StudyDate: "20040315" });
    const b = await seedStudy(ctx, { StudyDate: "20051120" });
    const mine = (rows: any[]) =>
      uids(rows, "0020000D").filter((u: string) => u === a.study || u === b.study);
    const both = [a.study, b.study].sort();
    const key = `PatientName=Qido^${a.patientId.slice(0, -2)}*`; // a prefix of a's ID only
    assert.deepEqual(mine(await qido(ctx, `studies?${key}`)), [a.study]);
    // Case-insensitive names, `?` for one character.
    const lower = `qido^${a.patientId.toLowerCase().slice(0, -1)}?`;
    assert.deepEqual(mine(await qido(ctx, `studies?PatientName=${lower}`)), [a.study]);
    assert.deepEqual(mine(await qido(ctx, `studies?00100020=${b.patientId}`)), [b.study]);
    assert.deepEqual(mine(await qido(ctx, `studies?PatientID=${b.patientId.toLowerCase()}`)), []);
    assert.deepEqual(mine(await qido(ctx, `studies?AccessionNumber=A${a.patientId}`)), [a.study]);
    assert.deepEqual(mine(await qido(ctx, `studies?StudyInstanceUID=${a.study},${b.study}`)), both);
    assert.deepEqual(mine(await qido(ctx, `studies?0020000D=${b.study}`)), [b.study]);
    const ids = `PatientID=${a.patientId},${b.patientId}`;
    const dated = async (q: string) =>
      mine([
        ...await qido(ctx, `studies?PatientID=${a.patientId}&${q}`),
        ...await qido(ctx, `studies?PatientID=${b.patientId}&${q}`),
      ]);
    assert.equal((await qido(ctx, `studies?${ids}`)).length, 0, "PatientID is single-valued");
    assert.deepEqual(await dated("StudyDate=20040315"), [a.study]);
    assert.deepEqual(await dated("StudyDate=20040101-20041231"), [a.study]);
    assert.deepEqual(await dated("StudyDate=-20041231"), [a.study]);
    assert.deepEqual(await dated("StudyDate=20050101-"), [b.study]);
    assert.deepEqual(await dated("00080020=20040316-20051120"), [b.study]);
    assert.deepEqual(await dated("StudyDate=20060101-"), []);
    assert.deepEqual(await dated("ModalitiesInStudy=MR"), both);
    assert.deepEqual(await dated("StudyTime=12"), both, "12 is 12:00:00 to 12:59:59");
    assert.deepEqual(await dated("StudyTime=1200-120001"), both);
    assert.deepEqual(await dated("StudyTime=1201-"), []);
    assert.deepEqual(await dated("ModalitiesInStudy=US"), []);
    // Series and instance keys.
    assert.deepEqual(
      uids(await qido(ctx, `series?SeriesInstanceUID=${a.series[1]}`), "0020000E"),
      [a.series[1]],
    );
    const sop = b.instances[3].sop;
    const found = await qido(ctx, `instances?SOPInstanceUID=${sop}`);
    assert.deepEqual(uids(found, "00080018"), [sop]);
    assert.equal(value(found[0], "0020000E"), b.series[1]);
    assert.equal(value(found[0], "0020000D"), b.study);
    assert.deepEqual(
      uids(
        await qido(ctx, `studies/${a.study}/instances?Modality=CT&InstanceNumber=2`),
        "00080018",
      ),
      [a.instances[1].sop],
    );
  },
);

backendTest("QIDO-RS: the pydicom CompressedSamples patients by name wildcard", async (ctx) => {
  await seedFiles(ctx);
  const names = (rows: any[]) => rows.map((r) => value(r, "00100010")).sort();
  assert.deepEqual(names(await qido(ctx, "studies?PatientName=CompressedSamples*")), [
    "CompressedSamples^CT1",
    "CompressedSamples^MR1",
    "CompressedSamples^NM1",
  ]);
  assert.deepEqual(names(await qido(ctx, "studies?PatientName=compressedsamples^?t1")), [
    "CompressedSamples^CT1",
  ]);
  assert.deepEqual(names(await qido(ctx, "studies?00100010=COMPRESSEDSAMPLES%5EMR1")), [
    "CompressedSamples^MR1",
  ]);
  const [ct] = await qido(ctx, "studies?PatientID=1CT1&StudyDate=20040119");
  assert.equal(value(ct, "0020000D"), CT_SMALL.study);
  assert.deepEqual(values(ct, "00080061"), ["CT"]);
  assert.equal(
    (await qido(ctx, "studies?StudyDate=-2003&PatientID=1CT1", 400)).resourceType,
    "OperationOutcome",
  );
});

backendTest("QIDO-RS StudyTime matches a partial stored time (HHMM)", async (ctx) => {
  const patientId = uniq("tm");
  const study = newUid();
  const r = await stow(ctx, [
    makeInstance({ PatientID: patientId, StudyInstanceUID: study, StudyTime: "0727" }),
  ]);
  assert.equal(r.status, 200);
  for (const time of ["0727", "072700", "07", "0700-0800", "072700-", "-0727", "072659-072700"]) {
    const rows = await qido(ctx, `studies?PatientID=${patientId}&StudyTime=${time}`);
    assert.deepEqual(uids(rows, "0020000D"), [study], `StudyTime=${time}`);
  }
  for (const time of ["0728", "072701-", "-072659", "08"]) {
    assert.deepEqual(await qido(ctx, `studies?PatientID=${patientId}&StudyTime=${time}`), [], time);
  }
  await qido(ctx, `studies?StudyTime=7`, 400);
});

backendTest("QIDO-RS paging with limit and offset", async (ctx) => {
  const patientId = uniq("page");
  const studies: string[] = [];
  for (let i = 0; i < 5; i++) {
    const study = newUid();
    studies.push(study);
    const r = await stow(ctx, [
      makeInstance({ PatientID: patientId, StudyInstanceUID: study, StudyDate: `2010010${i + 1}` }),
    ]);
    assert.equal(r.status, 200);
  }
  const page = (q: string) => qido(ctx, `studies?PatientID=${patientId}&${q}`);
  const p1 = await page("limit=2");
  const p2 = await page("limit=2&offset=2");
  const p3 = await page("limit=2&offset=4");
  assert.deepEqual([p1.length, p2.length, p3.length], [2, 2, 1]);
  assert.deepEqual(
    [...p1, ...p2, ...p3].map((r) => value(r, "0020000D")).sort(),
    [...studies].sort(),
    "pages neither repeat nor skip",
  );
  assert.equal((await page("offset=5")).length, 0);
  assert.equal((await page("limit=0")).length, 0);
  await qido(ctx, `studies?PatientID=${patientId}&limit=-1`, 400);
  await qido(ctx, `studies?PatientID=${patientId}&offset=x`, 400);
});

backendTest("QIDO-RS includefield: a named field and all, at instance level", async (ctx) => {
  const { study, instances } = await seedStudy(ctx);
  const path = `studies/${study}/instances?SOPInstanceUID=${instances[0].sop}`;
  const [plain] = await qido(ctx, path);
  assert.equal(plain["00080070"], undefined, "Manufacturer is not returned by default");
  assert.equal(value(plain, "00280010"), 4, "Rows is");
  const [named] = await qido(ctx, `${path}&includefield=Manufacturer`);
  assert.equal(value(named, "00080070"), "ACME");
  const [hex] = await qido(ctx, `${path}&includefield=00080070`);
  assert.equal(value(hex, "00080070"), "ACME");
  const [all] = await qido(ctx, `${path}&includefield=all`);
  assert.equal(value(all, "00080070"), "ACME");
  assert.equal(value(all, "00280100"), 16);
  assert.equal(all["7FE00010"], undefined, "no bulk data in query results");
  assert.equal(value(all, "00081190").endsWith(instances[0].sop), true);
});

backendTest(
  "QIDO-RS errors: unknown key, bad date, fuzzy matching, SQL metacharacters",
  async (ctx) => {
    for (
      const q of [
        "studies?NoSuchKeyword=1",
        "studies?StudyDate=2004",
        "studies?StudyDate=20041301x",
        "studies?StudyDate=20040101-20050101-20060101",
        "series?SeriesNumber=one",
      ]
    ) {
      const body = await qido(ctx, q, 400);
      assert.equal(body.resourceType, "OperationOutcome", q);
    }
    // A Warning quoting a non-ASCII key is still a valid header (not a 500).
    const odd1 = await dicomJson(ctx, `studies?includefield=${encodeURIComponent("Größe✓")}`);
    assert.equal(odd1.status, 200);
    assert.match(odd1.headers.get("warning") ?? "", /^299 - "includefield Gr\?\?e\? /);
    const fuzzy = await dicomJson(ctx, "studies?PatientName=x*&fuzzymatching=true");
    assert.equal(fuzzy.status, 200);
    assert.match(fuzzy.headers.get("warning") ?? "", /^299 /);

    const odd = `P%_'x${uniq("")}`;
    const evil = "'; DROP TABLE dicom_study; --";
    const { study } = await seedStudy(ctx, { PatientID: odd, PatientName: "O'Brien^%_" });
    const q = (v: string) => qido(ctx, `studies?PatientID=${encodeURIComponent(v)}`);
    assert.deepEqual(uids(await q(odd), "0020000D"), [study]);
    assert.deepEqual(await q("P%"), [], "% is literal");
    assert.deepEqual(await q("P_*"), [], "_ is literal");
    assert.deepEqual(uids(await q("P%_*"), "0020000D").includes(study), true);
    assert.deepEqual(await q(`${odd.slice(0, 3)}\\*`), []);
    assert.deepEqual(await q(evil), []);
    assert.deepEqual(
      await qido(ctx, `studies?PatientName=${encodeURIComponent(evil)}*`),
      [],
    );
    const names = await qido(ctx, `studies?PatientName=${encodeURIComponent("o'brien^%_")}`);
    assert.deepEqual(uids(names, "0020000D"), [study]);
    assert.deepEqual(await qido(ctx, `studies?PatientName=${encodeURIComponent("o'brien^%")}`), []);
    assert.deepEqual(await qido(ctx, `studies?StudyInstanceUID=${encodeURIComponent(evil)}`), []);
    // Nothing broke.
    assert.deepEqual(uids(await q(odd), "0020000D"), [study]);
  },
);

backendTest(
  "QIDO-RS: a control character in a key or value, or an integer past 32 bits, is 400",
  async (ctx) => {
    const { patientId, study } = await seedStudy(ctx);
    for (
      const q of [
        "studies?PatientID=a%00b",
        "studies?PatientName=%00*",
        "studies?StudyInstanceUID=1.2%2C%00",
        "studies?ModalitiesInStudy=CT%5C%01",
        "studies?StudyDate=20200101%0A",
        "studies?Patient%00ID=x",
        "studies?includefield=%00",
        `studies/${study}/series?Modality=%1F`,
        "instances?SOPInstanceUID=%00",
        "series?SeriesNumber=2147483648",
        "series?SeriesNumber=-2147483649",
        "instances?InstanceNumber=1,99999999999999999999",
      ]
    ) {
      assert.equal((await qido(ctx, q, 400)).resourceType, "OperationOutcome", q);
    }
    // The 32-bit edges, and ESC (ISO 2022 code extensions in PN), are matching values.
    for (const n of ["2147483647", "-2147483648"]) {
      assert.deepEqual(await qido(ctx, `series?PatientID=${patientId}&SeriesNumber=${n}`), []);
    }
    assert.deepEqual(await qido(ctx, `studies?PatientName=${encodeURIComponent("\u001b$B*")}`), []);
    assert.deepEqual(uids(await qido(ctx, `studies?PatientID=${patientId}`), "0020000D"), [study]);
  },
);
