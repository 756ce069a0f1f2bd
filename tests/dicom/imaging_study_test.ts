// deno-lint-ignore-file no-explicit-any
/**
 * @module The DICOM → FHIR mapping, black-box: what STOW-RS makes of a study in FHIR (ImagingStudy,
 * Patient, Endpoint), exactly as PITFALLS.md and the issue ask, kept in step as instances arrive.
 */
import assert from "node:assert/strict";
import { generateStudy } from "../../dicom/synth/ct.ts";
import { backendTest, fhirJson, type TestContext } from "../_harness.ts";
import {
  CT_IMAGE,
  makeInstance,
  newUid,
  pydicom,
  pydicomFiles,
  stow,
  value,
} from "./_dicomweb_util.ts";

const DCM = "http://dicom.nema.org/resources/ontology/DCM";
const V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203";

/** The study's ImagingStudy once its pending rebuild ran (it trails the index by ≤ 1 s). */
async function imagingStudy(ctx: TestContext, studyUid: string): Promise<any> {
  await ctx.services.dicom.deps.studySync.flush();
  const q = encodeURIComponent(`urn:dicom:uid|urn:oid:${studyUid}`);
  const res = await fhirJson(ctx, "GET", `ImagingStudy?identifier=${q}`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.entry?.length, 1, `one ImagingStudy for ${studyUid}`);
  return res.body.entry[0].resource;
}

async function read(ctx: TestContext, reference: string): Promise<any> {
  const res = await fhirJson(ctx, "GET", reference);
  assert.equal(res.status, 200, `${reference}: ${JSON.stringify(res.body)}`);
  return res.body;
}

/** Paths of empty strings, arrays or objects anywhere in a resource (FHIR JSON allows none). */
function empties(x: unknown, path = ""): string[] {
  if (x === "" || x === null) return [path];
  if (Array.isArray(x)) return x.length ? x.flatMap((v, i) => empties(v, `${path}[${i}]`)) : [path];
  if (typeof x === "object") {
    const entries = Object.entries(x as object);
    return entries.length ? entries.flatMap(([k, v]) => empties(v, `${path}.${k}`)) : [path];
  }
  return [];
}

const synth = (seed: number, slices: number) =>
  generateStudy({ seed, slices, rows: 64, cols: 64, lesions: 0 });

backendTest(
  "ImagingStudy of a synthetic CT: identifiers, codings, series, instances, counts",
  async (ctx) => {
    const { instances, study, patient, plan } = synth(5001, 4);
    const res = await stow(ctx, instances);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const is = await imagingStudy(ctx, study.studyInstanceUid);
    assert.deepEqual(empties(is), []);
    assert.equal(is.status, "available");
    assert.deepEqual(is.identifier, [
      { system: "urn:dicom:uid", value: `urn:oid:${study.studyInstanceUid}` },
      { type: { coding: [{ system: V2_0203, code: "ACSN" }] }, value: study.accessionNumber },
    ]);
    const date = `${study.studyDate.slice(0, 4)}-${study.studyDate.slice(4, 6)}-${
      study.studyDate.slice(6)
    }`;
    // No (0008,0201) in the files: a time without a zone is not a FHIR dateTime, so the date alone.
    assert.equal(is.started, date);
    assert.deepEqual(is.modality, [{ system: DCM, code: "CT" }]);
    assert.equal(is.description, "CT CHEST");
    assert.equal(is.numberOfSeries, 1);
    assert.equal(is.numberOfInstances, 4);
    assert.equal(is.series.length, 1);
    const [series] = is.series;
    assert.equal(series.uid, study.seriesInstanceUid);
    assert.equal(series.number, study.seriesNumber);
    assert.equal(series.description, study.seriesDescription);
    assert.deepEqual(series.modality, { system: DCM, code: "CT" });
    assert.deepEqual(series.bodySite, {
      system: "http://snomed.info/sct",
      code: "816094009",
      display: "Chest",
    });
    assert.equal(series.started, date);
    assert.equal(series.numberOfInstances, 4);
    assert.deepEqual(
      series.instance.map((i: any) => [i.uid, i.number]),
      plan.sopInstanceUids.map((uid, i) => [uid, i + 1]),
    );
    for (const i of series.instance) {
      assert.deepEqual(i.sopClass, { system: "urn:ietf:rfc:3986", code: `urn:oid:${CT_IMAGE}` });
    }

    // The Endpoint: this server's DICOMweb base, WADO-RS.
    assert.deepEqual(is.endpoint, [{ reference: "Endpoint/dicomweb" }]);
    const endpoint = await read(ctx, "Endpoint/dicomweb");
    assert.equal(endpoint.status, "active");
    assert.equal(endpoint.connectionType.code, "dicom-wado-rs");
    assert.equal(
      endpoint.connectionType.system,
      "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
    );
    assert.equal(endpoint.address, `${ctx.origin}/dicomweb`);

    // The subject: a Patient from the patient module.
    const p = await read(ctx, is.subject.reference);
    assert.deepEqual(empties(p), []);
    const id = p.identifier.find((i: any) => i.value === patient.id);
    assert.ok(id, `identifier ${patient.id}: ${JSON.stringify(p.identifier)}`);
    assert.deepEqual(id.type.coding, [{ system: V2_0203, code: "MR" }]);
    assert.ok(id.system);
    const [family, given, middle] = patient.name.split("^");
    assert.equal(p.name[0].family, family);
    assert.deepEqual(p.name[0].given, [given, middle]);
    const b = patient.birthDate;
    assert.equal(p.birthDate, `${b.slice(0, 4)}-${b.slice(4, 6)}-${b.slice(6)}`);
    assert.equal(p.gender, patient.sex === "F" ? "female" : "male");
  },
);

backendTest("ImagingStudy of CT_small.dcm: started with the zone of (0008,0201)", async (ctx) => {
  const res = await stow(ctx, [pydicom("CT_small.dcm")]);
  assert.equal(res.status, 200);
  const is = await imagingStudy(ctx, "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322");
  assert.equal(is.started, "2004-01-19T07:27:30-05:00");
  assert.equal(is.series[0].started, "1997-04-30T11:27:49-05:00");
  assert.equal(is.identifier.length, 1, "no accession number, no ACSN identifier");
  const p = await read(ctx, is.subject.reference);
  assert.equal(p.identifier[0].value, "1CT1");
  assert.equal(p.gender, "other");
  assert.equal(p.birthDate, undefined);
  assert.deepEqual(p.name[0].given, ["CT1"]);
});

backendTest(
  "the ImagingStudy follows the index: more instances and series, same id",
  async (ctx) => {
    const study = newUid();
    const series = [newUid(), newUid()];
    const make = (s: number, n: number, modality: string) =>
      makeInstance({
        StudyInstanceUID: study,
        SeriesInstanceUID: series[s],
        Modality: modality,
        SeriesNumber: s + 1,
        InstanceNumber: n,
        PatientID: `P${study.slice(-10)}`,
        BodyPartExamined: "KNEE",
        SeriesDescription: `S${s + 1}`,
      });
    assert.equal((await stow(ctx, [make(0, 1, "MR")])).status, 200);
    const first = await imagingStudy(ctx, study);
    assert.equal(first.numberOfInstances, 1);
    assert.equal(
      (await stow(ctx, [make(0, 2, "MR"), make(1, 1, "SR"), make(1, 2, "SR")])).status,
      200,
    );
    const now = await imagingStudy(ctx, study);
    assert.equal(now.id, first.id);
    assert.equal(Number(now.meta.versionId), Number(first.meta.versionId) + 1);
    assert.equal(now.numberOfSeries, 2);
    assert.equal(now.numberOfInstances, 4);
    assert.deepEqual(now.modality, [{ system: DCM, code: "MR" }, { system: DCM, code: "SR" }]);
    assert.deepEqual(
      now.series.map((s: any) => [s.uid, s.number, s.numberOfInstances, s.modality.code]),
      [
        [series[0], 1, 2, "MR"],
        [series[1], 2, 2, "SR"],
      ],
    );
    assert.deepEqual(now.series[0].bodySite.code, "72696002");
    assert.deepEqual(now.series[1].instance.map((i: any) => i.number), [1, 2]);
    assert.equal(now.subject.reference, first.subject.reference);
  },
);

backendTest(
  "a second study of the same PatientID reuses the Patient, even when both race",
  async (ctx) => {
    const a = synth(5002, 5);
    const b = synth(5002, 6); // same seed: the same patient, another study
    const c = synth(5003, 5);
    const d = synth(5003, 6);
    assert.equal(a.patient.id, b.patient.id);
    assert.notEqual(a.study.studyInstanceUid, b.study.studyInstanceUid);
    assert.equal((await stow(ctx, a.instances)).status, 200);
    assert.equal((await stow(ctx, b.instances)).status, 200);
    const [ia, ib] = [
      await imagingStudy(ctx, a.study.studyInstanceUid),
      await imagingStudy(ctx, b.study.studyInstanceUid),
    ];
    assert.equal(ia.subject.reference, ib.subject.reference);
    const patients = async (id: string) =>
      (await fhirJson(ctx, "GET", `Patient?identifier=${encodeURIComponent(id)}`)).body.entry ?? [];
    assert.equal((await patients(a.patient.id)).length, 1);
    // Two new studies of one new patient at the same time.
    const raced = await Promise.all([
      stow(ctx, c.instances.slice(0, 3)),
      stow(ctx, d.instances.slice(0, 3)),
      stow(ctx, c.instances.slice(3)),
      stow(ctx, d.instances.slice(3)),
    ]);
    assert.deepEqual(raced.map((r) => r.status), [200, 200, 200, 200]);
    assert.equal((await patients(c.patient.id)).length, 1);
    const [ic, id] = [
      await imagingStudy(ctx, c.study.studyInstanceUid),
      await imagingStudy(ctx, d.study.studyInstanceUid),
    ];
    assert.equal(ic.subject.reference, id.subject.reference);
    assert.equal(ic.numberOfInstances, 5);
    assert.equal(id.numberOfInstances, 6);
  },
);

backendTest(
  "a PatientID with URL and FHIR search metacharacters still finds its one Patient",
  async (ctx) => {
    for (const odd of ["A&B", "A+B", "A%20B", "A|B,C$D", "A=B#C"]) {
      const patientId = `${odd}-${newUid().slice(-8)}`;
      const [s1, s2] = [newUid(), newUid()];
      for (const study of [s1, s2]) {
        const res = await stow(ctx, [
          makeInstance({ PatientID: patientId, StudyInstanceUID: study }),
        ]);
        assert.equal(res.status, 200, `${patientId}: ${res.headers.get("warning")}`);
      }
      const [a, b] = [await imagingStudy(ctx, s1), await imagingStudy(ctx, s2)];
      assert.equal(a.subject.reference, b.subject.reference, patientId);
      const p = await read(ctx, a.subject.reference);
      assert.equal(p.identifier[0].value, patientId);
    }
  },
);

backendTest(
  "an ImagingStudy created through FHIR first is taken over, not duplicated",
  async (ctx) => {
    const study = newUid();
    const patient = await fhirJson(ctx, "POST", "Patient", { resourceType: "Patient" });
    const created = await fhirJson(ctx, "POST", "ImagingStudy", {
      resourceType: "ImagingStudy",
      status: "registered",
      identifier: [{ system: "urn:dicom:uid", value: `urn:oid:${study}` }],
      subject: { reference: `Patient/${patient.body.id}` },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal((await stow(ctx, [makeInstance({ StudyInstanceUID: study })])).status, 200);
    const is = await imagingStudy(ctx, study);
    assert.equal(is.id, created.body.id);
    assert.equal(is.status, "available");
    assert.equal(is.numberOfInstances, 1);
  },
);

backendTest(
  "every stored pydicom file gives an ImagingStudy with no empty values, counts as in QIDO",
  async (ctx) => {
    for (const name of pydicomFiles()) await stow(ctx, [pydicom(name)]);
    const qido = await (await fetch(`${ctx.origin}/dicomweb/studies?limit=1000`)).json();
    assert.ok(qido.length >= 15, `${qido.length} studies`);
    for (const row of qido) {
      const uid = value(row, "0020000D");
      const is = await imagingStudy(ctx, uid);
      assert.deepEqual(empties(is), [], uid);
      assert.equal(is.numberOfInstances, value(row, "00201208"), uid);
      assert.equal(is.numberOfSeries, value(row, "00201206"), uid);
      const patient = await read(ctx, is.subject.reference);
      assert.deepEqual(empties(patient), [], uid);
    }
  },
);
