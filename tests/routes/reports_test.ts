/** Findings exports: JSON and XLSX of a DiagnosticReport's result Observations. */
import assert from "node:assert/strict";
import { strFromU8, unzipSync } from "fflate";
import { MEASURE_SYSTEM } from "../../sidecar/findings_bundle.ts";
import { backendTest, fhirJson } from "../_harness.ts";

const q = (value: number, code: string) => ({
  value,
  unit: code,
  system: "http://unitsofmeasure.org",
  code,
});
const comp = (code: string, value: Record<string, unknown>) => ({
  code: { coding: [{ system: MEASURE_SYSTEM, code }] },
  ...value,
});

backendTest("findings export: JSON rows and an XLSX workbook per finding", async (ctx) => {
  const patient = await fhirJson(ctx, "POST", "Patient", { resourceType: "Patient" });
  const subject = { reference: `Patient/${patient.body.id}` };
  const ids: string[] = [];
  for (const [volume, prob, diameter] of [[268.1, 0.93, 8.1], [65.4, 0.71, 5.2]]) {
    const o = await fhirJson(ctx, "POST", "Observation", {
      resourceType: "Observation",
      status: "final",
      code: { text: "Lung nodule" },
      subject,
      valueQuantity: q(volume, "mm3"),
      bodySite: {
        coding: [{
          system: "http://snomed.info/sct",
          code: "3341006",
          display: "Right lung structure",
        }],
      },
      component: [
        comp("probability", { valueQuantity: q(prob, "1") }),
        comp("longest-diameter", { valueQuantity: q(diameter, "mm") }),
        comp("centre-x", { valueQuantity: q(-80.5, "mm") }),
        comp("centre-voxel-k", { valueInteger: 17 }),
        comp("bounding-box", { valueString: "[1,2,3]-[4,5,6]" }),
      ],
    });
    assert.equal(o.status, 201);
    ids.push(o.body.id);
  }
  const report = await fhirJson(ctx, "POST", "DiagnosticReport", {
    resourceType: "DiagnosticReport",
    status: "final",
    code: { text: "CT chest AI analysis" },
    subject,
    conclusion: "2 nodules found",
    result: ids.map((id) => ({ reference: `Observation/${id}` })),
    presentedForm: [{
      contentType: "application/dicom",
      url: "http://x/dicomweb/studies/1/series/2/instances/3",
      size: 4242,
      title: "Measurement report as DICOM SR (TID 1500), in the study",
    }],
  });
  const json = await (await fetch(`${ctx.origin}/reports/${report.body.id}/findings.json`)).json();
  assert.equal(json.report.conclusion, "2 nodules found");
  assert.equal(json.findings.length, 2);
  assert.deepEqual(
    json.findings.map((
      f: { volumeMm3: number; probability: number },
    ) => [f.volumeMm3, f.probability]),
    [[268.1, 0.93], [65.4, 0.71]],
  );
  assert.equal(json.findings[0].centreXmm, -80.5);
  assert.equal(json.findings[0].centreVoxelK, 17);
  assert.equal(json.findings[0].bodySite, "Right lung structure");
  // The result files, the DICOM objects among them.
  assert.deepEqual(json.report.files, [{
    title: "Measurement report as DICOM SR (TID 1500), in the study",
    contentType: "application/dicom",
    url: "http://x/dicomweb/studies/1/series/2/instances/3",
    size: 4242,
  }]);

  const res = await fetch(`${ctx.origin}/reports/${report.body.id}/findings.xlsx`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type")!, /spreadsheetml/);
  const files = unzipSync(new Uint8Array(await res.arrayBuffer()));
  const xml = Object.entries(files).filter(([n]) => n.startsWith("xl/")).map(([, b]) =>
    strFromU8(b)
  )
    .join("\n");
  assert.match(xml, /Longest diameter/);
  assert.match(xml, /268\.1/);
  assert.match(xml, /2 nodules found/);
  assert.match(xml, /DICOM SR \(TID 1500\)/);

  const missing = await fetch(`${ctx.origin}/reports/nope/findings.json`);
  assert.equal(missing.status, 404);
  assert.equal((await missing.json()).resourceType, "OperationOutcome");
});
