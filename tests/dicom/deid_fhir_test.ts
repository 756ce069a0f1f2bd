// deno-lint-ignore-file no-explicit-any
/**
 * @module The FHIR side of a de-identified download: `fhir.json` in the ZIP holds the study's
 * ImagingStudy and its analysis (DiagnosticReport, Observations, DocumentReference) with no
 * patient name, Patient ID or original UID anywhere, the same replaced Study Instance UID and the
 * same date shift as the de-identified DICOM files beside it, and references that resolve inside
 * the Bundle (the patient a pseudonym).
 */
import assert from "node:assert/strict";
import { unzipSync } from "fflate";
import { generateStudy } from "../../dicom/synth/ct.ts";
import { stowInstances } from "../../dicom/synth/stow.ts";
import { parseDataSet } from "../../dicom/codec/dataset.ts";
import { backendTest } from "../_harness.ts";
import { analyseStudy, imagingStudyOf } from "../_analysis.ts";

backendTest(
  "a de-identified download carries its FHIR results without identifiers (fhir.json)",
  async (ctx) => {
    const study = generateStudy({ seed: 6161, slices: 30, rows: 192, cols: 192, lesions: 1 });
    const uid = study.plan.study.studyInstanceUid;
    assert.equal((await stowInstances(`${ctx.origin}/dicomweb`, study.instances)).stored, 30);
    const imagingStudy = await imagingStudyOf(ctx, uid);
    await analyseStudy(ctx, imagingStudy.id);

    const res = await fetch(`${ctx.origin}/dicomweb/studies/${uid}/archive?deidentify=basic`, {
      headers: { Accept: "application/zip" },
    });
    assert.equal(res.status, 200, await res.clone().text());
    const files = unzipSync(new Uint8Array(await res.arrayBuffer()));
    const text = new TextDecoder().decode(files["fhir.json"]);
    assert.ok(text, `fhir.json in ${Object.keys(files).join(", ")}`);
    const bundle = JSON.parse(text);
    assert.equal(bundle.resourceType, "Bundle");
    assert.equal(bundle.type, "collection");
    const byType = (t: string) =>
      bundle.entry.map((e: any) => e.resource).filter((r: any) => r.resourceType === t);
    assert.equal(byType("ImagingStudy").length, 1);
    assert.equal(byType("DiagnosticReport").length, 1);
    assert.ok(byType("Observation").length >= 2, "the study's and each finding's Observations");

    // Nothing that identifies: no name, no Patient ID, no original UID, no link back to us.
    const first = parseDataSet(study.instances[0]);
    const originals = [
      first.string("x00100010")!.split("^")[0],
      first.string("x00100020")!,
      uid,
      first.string("x0020000e")!,
      first.string("x00080018")!,
      imagingStudy.id,
      imagingStudy.subject.reference.split("/")[1],
      ctx.origin,
    ];
    for (const o of originals) assert.ok(!text.includes(o), `${o} is gone from fhir.json`);

    // The same study as the DICOM files beside it: the replaced UID, the same date shift.
    const dicom = Object.entries(files).find(([name]) => name.endsWith(".dcm"))![1];
    const ds = parseDataSet(dicom);
    const newUid = ds.string("x0020000d")!;
    const [is] = byType("ImagingStudy");
    assert.deepEqual(is.identifier, [{ system: "urn:dicom:uid", value: `urn:oid:${newUid}` }]);
    const day = (d: string) => Date.UTC(+d.slice(0, 4), +d.slice(4, 6) - 1, +d.slice(6, 8));
    const dicomShift = (day(ds.string("x00080020")!) - day(first.string("x00080020")!)) / 864e5;
    assert.ok(dicomShift < 0, "DICOM dates moved earlier");
    if (imagingStudy.started && is.started) {
      const fhirShift = (Date.parse(is.started.slice(0, 10)) -
        Date.parse(imagingStudy.started.slice(0, 10))) / 864e5;
      assert.equal(fhirShift, dicomShift, "FHIR and DICOM dates move together");
    }
    // References resolve inside the Bundle; the patient is a pseudonym and nothing more.
    const ids = new Set(
      bundle.entry.map((e: any) => `${e.resource.resourceType}/${e.resource.id}`),
    );
    const [report] = byType("DiagnosticReport");
    assert.ok(ids.has(report.subject.reference), report.subject.reference);
    assert.ok(ids.has(report.imagingStudy[0].reference));
    for (const r of report.result) assert.ok(ids.has(r.reference), r.reference);
    const [patient] = byType("Patient");
    assert.deepEqual(Object.keys(patient).sort(), ["id", "identifier", "resourceType"]);
    assert.match(patient.id, /^ANON-[0-9A-F]{12}$/);
    assert.equal(ds.string("x00100020"), patient.id, "the DICOM Patient ID is the same pseudonym");
    assert.equal(report.presentedForm, undefined, "no links back to this server");
    assert.equal(report.conclusion.length > 0, true, "the findings in words are kept");
  },
);
