// deno-lint-ignore-file no-explicit-any
/**
 * DICOM deletion (`dicom/delete.ts`) on both backends (PGlite with a folder, Postgres with S3):
 * DICOMweb DELETE of an instance, then a series, then the study, each time checked through QIDO,
 * WADO and metadata, the object store, the ImagingStudy, the deliveries to DICOM destinations and
 * the AuditEvent; the study's derived results go with it (a series' deletion keeps them); a FHIR
 * delete of the ImagingStudy is refused, alone, conditional or in a transaction; the same study
 * stored again after its deletion is stored afresh.
 */
import assert from "node:assert/strict";
import { backendTest, fhirJson } from "../_harness.ts";
import { imagingStudyOf } from "../_analysis.ts";
import {
  create,
  deletionEvents,
  deriveResults,
  dicomweb,
  fhirStatus,
  objectsOf,
  qidoInstances,
  storeStudy,
  wadoStatus,
} from "./_delete.ts";
import { stowInstances } from "../../dicom/synth/stow.ts";

backendTest(
  "DICOMweb DELETE of an instance, a series, then the study: nothing of it is served or stored",
  async (ctx) => {
    const s = await storeStudy(ctx);
    const all = [...s.ctSops, ...s.otSops].sort();
    assert.deepEqual(await qidoInstances(ctx, s.studyUid), all);
    assert.equal((await objectsOf(ctx, s.studyUid)).length, 5);
    // A delivery queued and one made to DICOM destinations, for the instance that goes first.
    const [gone, ...kept] = s.ctSops;
    await ctx.services.db.query(
      `INSERT INTO dicom_forward (destination, study_uid, series_uid, sop_uid, sop_class, state)
     VALUES ('pacs', $1, $2, $3, '1.2', 'delivered'), ('archive', $1, $2, $3, '1.2', 'pending')`,
      [s.studyUid, s.ctSeries, gone],
    );

    // One instance.
    const instance = `/studies/${s.studyUid}/series/${s.ctSeries}/instances/${gone}`;
    assert.equal((await dicomweb(ctx, "DELETE", instance)).status, 204);
    assert.deepEqual(await qidoInstances(ctx, s.studyUid), all.filter((u) => u !== gone));
    assert.equal(await wadoStatus(ctx, instance), 404);
    assert.equal((await dicomweb(ctx, "GET", `${instance}/metadata`)).status, 404);
    assert.deepEqual(await objectsOf(ctx, s.studyUid, s.ctSeries, gone), []);
    assert.equal((await objectsOf(ctx, s.studyUid)).length, 4);
    let study = await imagingStudyOf(ctx, s.studyUid);
    assert.equal(study.id, s.imagingStudyId);
    assert.equal(study.numberOfInstances, 4);
    const ct = study.series.find((x: any) => x.uid === s.ctSeries);
    assert.equal(ct.numberOfInstances, 2);
    assert.ok(!ct.instance.some((i: any) => i.uid === gone));
    const studies = await dicomweb(ctx, "GET", `/studies?StudyInstanceUID=${s.studyUid}`);
    assert.equal(studies.body[0]["00201208"].Value[0], 4);
    const forwards = await ctx.services.db.query(`SELECT 1 FROM dicom_forward WHERE sop_uid = $1`, [
      gone,
    ]);
    assert.equal(forwards.length, 0, "the instance's deliveries are gone with it");
    let events = await deletionEvents(ctx, s.imagingStudyId);
    assert.equal(events.length, 1);
    assert.equal(events[0].action, "D");
    assert.match(events[0].outcomeDesc, new RegExp(`instance ${gone.replaceAll(".", "\\.")}`));
    assert.match(events[0].outcomeDesc, /1 instance row\(s\) removed; objects: 1 removed/);
    assert.match(events[0].outcomeDesc, /sent to the DICOM destinations pacs/);
    // Absent now: a 404 with the service's error body.
    const again = await dicomweb(ctx, "DELETE", instance);
    assert.equal(again.status, 404);
    assert.equal(again.body.resourceType, "OperationOutcome");
    assert.match(again.body.issue[0].diagnostics, /not found/);
    assert.equal(
      (await dicomweb(ctx, "DELETE", `/studies/${s.studyUid}/series/1.2.3`)).status,
      404,
    );

    // One series: the other stays.
    const series = `/studies/${s.studyUid}/series/${s.otSeries}`;
    assert.equal((await dicomweb(ctx, "DELETE", series)).status, 204);
    assert.deepEqual(await qidoInstances(ctx, s.studyUid), [...kept].sort());
    const listed = await dicomweb(ctx, "GET", `/studies/${s.studyUid}/series`);
    assert.deepEqual(listed.body.map((x: any) => x["0020000E"].Value[0]), [s.ctSeries]);
    assert.equal(await wadoStatus(ctx, series), 404);
    assert.equal((await dicomweb(ctx, "GET", `${series}/metadata`)).status, 404);
    assert.deepEqual(await objectsOf(ctx, s.studyUid, s.otSeries), []);
    study = await imagingStudyOf(ctx, s.studyUid);
    assert.equal(study.numberOfSeries, 1);
    assert.equal(study.numberOfInstances, 2);
    assert.deepEqual(study.modality.map((m: any) => m.code), ["CT"]);
    assert.equal(await wadoStatus(ctx, `/studies/${s.studyUid}`), 200);

    // The study: its rows, objects, quiet period and ImagingStudy.
    assert.equal((await dicomweb(ctx, "DELETE", `/studies/${s.studyUid}`)).status, 204);
    assert.deepEqual(await qidoInstances(ctx, s.studyUid), []);
    const none = await dicomweb(ctx, "GET", `/studies?StudyInstanceUID=${s.studyUid}`);
    assert.deepEqual(none.body, []);
    assert.equal(await wadoStatus(ctx, `/studies/${s.studyUid}`), 404);
    assert.equal((await dicomweb(ctx, "GET", `/studies/${s.studyUid}/metadata`)).status, 404);
    assert.deepEqual(await objectsOf(ctx, s.studyUid), []);
    assert.equal(await fhirStatus(ctx, `ImagingStudy/${s.imagingStudyId}`), 410);
    for (const table of ["dicom_study", "study_stability"]) {
      const rows = await ctx.services.db.query(`SELECT 1 FROM ${table} WHERE study_uid = $1`, [
        s.studyUid,
      ]);
      assert.equal(rows.length, 0, `${table} holds the deleted study`);
    }
    events = await deletionEvents(ctx, s.imagingStudyId);
    assert.equal(events.length, 3);
    assert.ok(
      events.some((e) => /the study is gone, ImagingStudy\/\S+ deleted/.test(e.outcomeDesc)),
    );
    assert.equal((await dicomweb(ctx, "DELETE", `/studies/${s.studyUid}`)).status, 404);
    // Each request's own event says what was asked, with the UIDs.
    await ctx.services.audit.flush();
    const asked = await ctx.services.db.query<{ query: string; status: number }>(
      `SELECT query, status FROM audit_event
      WHERE subtype = 'delete' AND action = 'D' AND entity = 'ImagingStudy' AND query LIKE $1`,
      [`StudyInstanceUID=${s.studyUid}%`],
    );
    assert.ok(
      asked.some((a) => a.query.endsWith(`SOPInstanceUID=${gone}`) && Number(a.status) === 204),
    );
    assert.ok(asked.some((a) => a.query.endsWith(`SeriesInstanceUID=${s.otSeries}`)));
    assert.ok(
      asked.some((a) => a.query === `StudyInstanceUID=${s.studyUid}` && Number(a.status) === 404),
    );
  },
);

backendTest("the same study stored again after its deletion is stored afresh", async (ctx) => {
  const s = await storeStudy(ctx);
  assert.equal((await dicomweb(ctx, "DELETE", `/studies/${s.studyUid}`)).status, 204);
  const again = await stowInstances(`${ctx.origin}/dicomweb`, s.files);
  assert.equal(again.status, 200, again.text);
  assert.equal(again.stored, 5);
  assert.equal(again.failed ?? 0, 0);
  assert.equal((await objectsOf(ctx, s.studyUid)).length, 5);
  assert.deepEqual(await qidoInstances(ctx, s.studyUid), [...s.ctSops, ...s.otSops].sort());
  assert.equal(await wadoStatus(ctx, `/studies/${s.studyUid}`), 200);
  const study = await imagingStudyOf(ctx, s.studyUid);
  assert.notEqual(study.id, s.imagingStudyId, "a new ImagingStudy, not the deleted one");
  assert.equal(study.numberOfInstances, 5);
  assert.equal((await dicomweb(ctx, "DELETE", `/studies/${s.studyUid}`)).status, 204);
  assert.deepEqual(await objectsOf(ctx, s.studyUid), []);
});

backendTest("a study's derived results go with it; a series' deletion keeps them", async (ctx) => {
  const s = await storeStudy(ctx);
  const { derived, unrelated, file } = await deriveResults(ctx, s);
  assert.ok(await ctx.services.store.head(file));

  assert.equal(
    (await dicomweb(ctx, "DELETE", `/studies/${s.studyUid}/series/${s.otSeries}`)).status,
    204,
  );
  for (const ref of derived) assert.equal(await fhirStatus(ctx, ref), 200, ref);
  assert.ok(await ctx.services.store.head(file));

  assert.equal((await dicomweb(ctx, "DELETE", `/studies/${s.studyUid}`)).status, 204);
  for (const ref of derived) assert.equal(await fhirStatus(ctx, ref), 410, ref);
  assert.equal(await fhirStatus(ctx, unrelated), 200);
  assert.equal(await ctx.services.store.head(file), null, "the report's result file is gone");
  const events = await deletionEvents(ctx, s.imagingStudyId);
  const last = events.find((e) => /the study is gone/.test(e.outcomeDesc));
  for (const ref of derived) assert.ok(last.outcomeDesc.includes(ref), ref);
  assert.ok(!last.outcomeDesc.includes(unrelated));
});

backendTest(
  "a FHIR delete of an ImagingStudy the index made is refused; a FHIR-only one is deleted",
  async (ctx) => {
    const s = await storeStudy(ctx);
    const expectRefused = (r: { status: number; body: any }) => {
      assert.equal(r.status, 409, JSON.stringify(r.body));
      const text = JSON.stringify(r.body);
      assert.match(text, /OperationOutcome/);
      assert.ok(text.includes(`DELETE /dicomweb/studies/${s.studyUid}`), text);
    };
    expectRefused(await fhirJson(ctx, "DELETE", `ImagingStudy/${s.imagingStudyId}`));
    const identifier = encodeURIComponent(`urn:dicom:uid|urn:oid:${s.studyUid}`);
    expectRefused(await fhirJson(ctx, "DELETE", `ImagingStudy?identifier=${identifier}`));
    const transaction = await fhirJson(ctx, "POST", "", {
      resourceType: "Bundle",
      type: "transaction",
      entry: [{ request: { method: "DELETE", url: `ImagingStudy/${s.imagingStudyId}` } }],
    });
    expectRefused(transaction);
    const batch = await fhirJson(ctx, "POST", "", {
      resourceType: "Bundle",
      type: "batch",
      entry: [{ request: { method: "DELETE", url: `ImagingStudy/${s.imagingStudyId}` } }],
    });
    assert.equal(batch.status, 200);
    assert.match(batch.body.entry[0].response.status, /^409/);
    // Nothing was deleted: the study is served, its ImagingStudy read.
    assert.equal(await fhirStatus(ctx, `ImagingStudy/${s.imagingStudyId}`), 200);
    assert.equal(await wadoStatus(ctx, `/studies/${s.studyUid}`), 200);
    assert.equal((await objectsOf(ctx, s.studyUid)).length, 5);

    const patient = await create(ctx, { resourceType: "Patient" });
    const own = await create(ctx, {
      resourceType: "ImagingStudy",
      status: "available",
      subject: { reference: `Patient/${patient}` },
    });
    assert.equal((await fhirJson(ctx, "DELETE", `ImagingStudy/${own}`)).status, 200);
    assert.equal(await fhirStatus(ctx, `ImagingStudy/${own}`), 410);

    // Once the study is deleted through DICOMweb, the ImagingStudy is gone.
    assert.equal((await dicomweb(ctx, "DELETE", `/studies/${s.studyUid}`)).status, 204);
    assert.equal(await fhirStatus(ctx, `ImagingStudy/${s.imagingStudyId}`), 410);
  },
);
