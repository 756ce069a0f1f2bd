/**
 * @module Tests of `sidecar/findings_bundle.ts`: the Bundle is posted as a real transaction to
 * a test server; it must be accepted, and posting it again must file nothing new.
 */
import assert from "node:assert/strict";
import {
  buildFindingsBundle,
  conclusionText,
  findingTracking,
} from "../../sidecar/findings_bundle.ts";
import { JOB_KEY_SYSTEM } from "../../queue/jobs.ts";
import { loadModel, resolveSettings } from "../../sidecar/manifest.ts";
import type { Finding } from "../../sidecar/postprocess.ts";
import { backendTest, fhirJson } from "../_harness.ts";
import { count, createJobResources } from "./_fhir.ts";

const { manifest } = await loadModel(
  new URL("./fixtures/models/threshold-demo", import.meta.url).pathname,
);
const VOLUME = {
  seriesInstanceUid: "2.25.1234",
  studyDateTime: "2024-03-01",
  dims: { x: 64, y: 64, z: 30 },
  sopInstanceUids: Array.from({ length: 30 }, (_, i) => `2.25.99${i}`),
  origin: [-100, -100, 50] as [number, number, number],
  sliceStep: [0, 0, -2.5] as [number, number, number],
  spacing: { x: 0.7, y: 0.7, z: 2.5 },
  rowDirection: [1, 0, 0] as [number, number, number],
  columnDirection: [0, 1, 0] as [number, number, number],
};
const FINDINGS: Finding[] = [
  {
    number: 1,
    voxels: 120,
    volumeMm3: 147,
    centreVoxel: [20.5, 30, 4],
    centrePatient: [-85.65, -79, 40],
    boundingBox: { min: [17, 27, 2], max: [24, 33, 6] },
    longestDiameterMm: 8.14,
    maxProbability: 0.93,
    meanProbability: 0.71,
  },
  {
    number: 2,
    voxels: 30,
    volumeMm3: 36.75,
    centreVoxel: [50, 40, 25],
    centrePatient: [-65, -72, -12.5],
    boundingBox: { min: [48, 38, 24], max: [52, 42, 26] },
    longestDiameterMm: 5,
    maxProbability: 0.71,
    meanProbability: 0.6,
  },
];
const FILES = {
  mask: { url: "http://example.org/uploads/results/k/mask.nii.gz", size: 100 },
  summary: { url: "http://example.org/uploads/results/k/summary.json", size: 200 },
};

backendTest(
  "buildFindingsBundle() files a valid transaction once, however often it is posted",
  async (ctx) => {
    const job = await createJobResources(ctx);
    const build = async () => {
      const task = (await fhirJson(ctx, "GET", `Task/${job.taskId}`)).body;
      return buildFindingsBundle({
        job,
        manifest,
        settings: resolveSettings(manifest, "standard", 0.5),
        volume: VOLUME,
        findings: FINDINGS,
        maxProbability: 0.93,
        task,
        files: FILES,
        issued: new Date().toISOString(),
      });
    };
    const first = await fhirJson(ctx, "POST", "", await build());
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(first.body.type, "transaction-response");
    const statuses = first.body.entry.map((e: { response: { status: string } }) =>
      e.response.status
    );
    assert.deepEqual(statuses.slice(1), [
      "201 Created",
      "201 Created",
      "201 Created",
      "201 Created",
      "200 OK",
      "201 Created", // the Provenance (result_provenance.ts)
    ]);
    const reportId = first.body.entry[1].response.location.split("/")[1];

    const report = (await fhirJson(ctx, "GET", `DiagnosticReport/${reportId}`)).body;
    assert.equal(report.status, "final");
    assert.equal(report.subject.reference, job.patient);
    assert.deepEqual(report.imagingStudy, [{ reference: `ImagingStudy/${job.imagingStudyId}` }]);
    assert.equal(report.result.length, 3);
    assert.ok(
      report.result.every((r: { reference: string }) =>
        /^Observation\/[0-9a-f-]{36}$/.test(r.reference)
      ),
    );
    assert.equal(report.presentedForm[0].url, FILES.mask.url);
    assert.match(
      report.conclusion,
      /^2 lung nodule-like lesions found: 8\.1 mm \(probability 0\.93\) in the right upper zone; 5 mm \(probability 0\.71\) in the right lower zone\./,
    );
    assert.match(report.conclusion, /not for clinical use/);

    const observation = (await fhirJson(ctx, "GET", report.result[1].reference)).body;
    assert.equal(observation.identifier[0].value, `${job.idempotencyKey}#1`);
    assert.deepEqual(observation.valueQuantity, {
      value: 147,
      unit: "mm3",
      system: "http://unitsofmeasure.org",
      code: "mm3",
    });
    assert.equal(observation.bodySite.coding[0].code, "3341006"); // right lung (x < 0 in LPS)
    assert.match(observation.device.reference, /^Device\/[0-9a-f-]{36}$/);
    const component = (code: string) =>
      observation.component.find((c: { code: { coding: { code: string }[] } }) =>
        c.code.coding.some((k) => k.code === code)
      );
    assert.equal(component("probability").valueQuantity.value, 0.93);
    assert.equal(component("longest-diameter").valueQuantity.value, 8.1);
    // Standard codes first where one exists (as the SR says it), the local code kept beside.
    assert.deepEqual(
      component("longest-diameter").code.coding.map((k: { code: string }) => k.code),
      [
        "81827009",
        "longest-diameter",
      ],
    );
    assert.equal(component("81827009").code.coding[0].system, "http://snomed.info/sct");
    assert.equal(component("118565006").valueQuantity.value, 147, "Volume (SCT)");
    const tracking = findingTracking(job.idempotencyKey, 1);
    assert.equal(component("112039").valueString, tracking.id);
    assert.equal(component("112040").valueString, tracking.uid);
    assert.match(tracking.uid, /^2\.25\.\d+$/);
    assert.equal(component("centre-voxel-k").valueInteger, 4);
    assert.equal(component("centre-sop-instance-uid").valueString, "2.25.994");
    assert.equal(component("bounding-box").valueString, "[17,27,2]-[24,33,6]");

    const task = (await fhirJson(ctx, "GET", `Task/${job.taskId}`)).body;
    assert.equal(task.status, "completed");
    assert.equal(task.output[0].valueReference.reference, `DiagnosticReport/${reportId}`);
    assert.equal(task.focus.reference, `ImagingStudy/${job.imagingStudyId}`); // kept

    // Again (a redelivered job): nothing new is created; the same report is referenced.
    const second = await fhirJson(ctx, "POST", "", await build());
    assert.equal(second.status, 200, JSON.stringify(second.body));
    assert.equal(second.body.entry[1].response.status, "200 OK");
    assert.equal(second.body.entry[1].resource.id, reportId);
    const key = `${JOB_KEY_SYSTEM}|${job.idempotencyKey}`;
    assert.equal(await count(ctx, "DiagnosticReport", `identifier=${encodeURIComponent(key)}`), 1);
    for (const n of ["1", "2", "study"]) {
      assert.equal(
        await count(ctx, "Observation", `identifier=${encodeURIComponent(`${key}#${n}`)}`),
        1,
      );
    }
    // One Provenance (a conditional create on its tag): the report and every Observation.
    const tag = encodeURIComponent(`${key}#provenance`);
    assert.equal(await count(ctx, "Provenance", `_tag=${tag}`), 1);
    const provenance =
      (await fhirJson(ctx, "GET", `Provenance?_tag=${tag}`)).body.entry[0].resource;
    assert.deepEqual(
      provenance.target.map((t: { reference: string }) => t.reference).sort(),
      [
        `DiagnosticReport/${reportId}`,
        ...report.result.map((r: { reference: string }) => r.reference),
      ].sort(),
    );
    assert.equal(provenance.agent[0].who.reference, observation.device.reference);
    assert.deepEqual(provenance.entity, [{
      role: "source",
      what: { reference: `ImagingStudy/${job.imagingStudyId}` },
    }]);
    assert.equal(report.meta.security[0].code, "AIAST");
    assert.equal(
      await count(
        ctx,
        "Device",
        `identifier=${encodeURIComponent("urn:imaging-ai:model|threshold-demo@1.0.0")}`,
      ),
      1,
    );

    // A stale Task version is refused, and nothing of the Bundle is written.
    const stale = await build();
    await fhirJson(ctx, "PUT", `Task/${job.taskId}`, {
      ...task,
      meta: undefined,
      description: "changed",
    });
    const refused = await fhirJson(ctx, "POST", "", stale);
    assert.equal(refused.status, 412, JSON.stringify(refused.body));
  },
);

Deno.test("conclusionText() says when nothing was found", () => {
  const text = conclusionText({
    job: { profile: "fast" } as never,
    manifest,
    settings: resolveSettings(manifest, "fast", 0.6),
    volume: VOLUME,
    findings: [],
    maxProbability: 0.123,
  });
  assert.equal(
    text,
    "No lung nodule-like lesion found (highest probability 0.12). Model: Threshold demo (test fixture) 1.0.0 (fast profile, threshold 0.6). Test model; not for clinical use.",
  );
});
