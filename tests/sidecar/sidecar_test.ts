/**
 * @module The sidecar end to end against a test server, with the in-process queue: a synthetic
 * study stored with STOW-RS, a job enqueued, the sidecar reads the pixels over WADO-RS, runs the
 * fixture model on the CPU and files a report; the Task ends completed. Failures that will not
 * go away (no such study, an unsupported transfer syntax, an unknown model) end the Task failed
 * with the reason. Also `GET /health`.
 */
import assert from "node:assert/strict";
import { parseNiftiHeader } from "../../dicom/codec/nifti.ts";
import { stowInstances } from "../../dicom/synth/stow.ts";
import type { LoadedModel } from "../../sidecar/analysis.ts";
import { createApiClient } from "../../sidecar/api_client.ts";
import { createHealthHandler } from "../../sidecar/health.ts";
import type { AnalysisJob } from "../../queue/jobs.ts";
import type { Logger } from "../../platform/log.ts";
import { loadModel } from "../../sidecar/manifest.ts";
import { createMemoryQueue } from "../../queue/memory_queue.ts";
import { createRunner } from "../../sidecar/onnx_runner.ts";
import { createSidecar, type Sidecar } from "../../sidecar/sidecar.ts";
import { backendTest, fhirJson, type TestContext } from "../_harness.ts";
import { createJobResources } from "./_fhir.ts";
import { jpeg2000Instance, sphereStudy } from "./_study.ts";

const MODEL = new URL("./fixtures/models/threshold-demo", import.meta.url).pathname;

async function storeStudy(ctx: TestContext, instances: Uint8Array[]) {
  const stow = await stowInstances(`${ctx.origin}/dicomweb`, instances);
  assert.ok(stow.ok, JSON.stringify(stow));
}

/** The ImagingStudy and Patient that STOW-RS made for a StudyInstanceUID. */
async function imagingStudyOf(ctx: TestContext, studyUid: string) {
  const res = await fhirJson(
    ctx,
    "GET",
    `ImagingStudy?identifier=${encodeURIComponent(`urn:dicom:uid|urn:oid:${studyUid}`)}`,
  );
  const study = res.body.entry?.[0]?.resource;
  assert.ok(study, `no ImagingStudy for ${studyUid}`);
  return { imagingStudyId: study.id as string, patient: study.subject.reference as string };
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 30_000) {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function withSidecar(
  ctx: TestContext,
  fn: (
    s: {
      sidecar: Sidecar;
      enqueue: (job: AnalysisJob) => Promise<void>;
      health: () => Promise<Response>;
    },
  ) => Promise<void>,
) {
  const { manifest } = await loadModel(MODEL);
  const runner = await createRunner(`${MODEL}/model.onnx`, ["cpu"]);
  const models = new Map<string, LoadedModel>([[manifest.name, { manifest, runner }]]);
  const queue = createMemoryQueue({
    visibilityMs: 5_000,
    maxAttempts: 2,
    backoffBaseMs: 20,
    backoffMaxMs: 50,
  });
  const lines: string[] = [];
  const log: Logger = (level, msg, data) => lines.push(`${level} ${msg} ${JSON.stringify(data)}`);
  const api = createApiClient({ baseUrl: ctx.origin, token: "sidecar-test-token" });
  const sidecar = createSidecar({ queue, api, models, log, visibilityMs: 5_000, blockMs: 100 });
  const handler = createHealthHandler({ queue, models, sidecar, startedAt: Date.now() });
  sidecar.start();
  try {
    await fn({
      sidecar,
      enqueue: async (job) => void await queue.enqueue(job),
      health: () => handler(new Request("http://sidecar/health")),
    });
  } catch (e) {
    console.error(lines.join("\n"));
    throw e;
  } finally {
    await sidecar.stop();
    await runner.close();
    await queue.close();
  }
}

backendTest(
  "the sidecar analyses a stored study and files its report; the Task ends completed",
  async (ctx) => {
    const study = sphereStudy({
      seed: 31,
      rows: 40,
      cols: 40,
      slices: 10,
      spheres: [{ i: 10, j: 12, k: 3, radiusMm: 4 }, { i: 28, j: 26, k: 6, radiusMm: 6 }],
    });
    await storeStudy(ctx, study.instances.toReversed());
    const studyUid = study.plan.study.studyInstanceUid;
    const job = await createJobResources(ctx, {
      studyUid,
      ...(await imagingStudyOf(ctx, studyUid)),
    });

    await withSidecar(ctx, async ({ sidecar, enqueue, health }) => {
      await enqueue(job);
      await until("the job", () => sidecar.stats.done + sidecar.stats.failed > 0);
      assert.deepEqual({ ...sidecar.stats }, {
        done: 1,
        failed: 0,
        retried: 0,
        skipped: 0,
        current: undefined,
      });

      const task = (await fhirJson(ctx, "GET", `Task/${job.taskId}`)).body;
      assert.equal(task.status, "completed");
      assert.ok(task.executionPeriod.start && task.executionPeriod.end);
      const reportRef = task.output[0].valueReference.reference;
      const report = (await fhirJson(ctx, "GET", reportRef)).body;
      assert.equal(report.identifier[0].value, job.idempotencyKey);
      assert.equal(report.subject.reference, job.patient);
      assert.equal(report.result.length, 3); // the study-level Observation and two findings
      assert.match(report.conclusion, /^2 lung nodule-like lesions found: /);

      // The mask and summary were uploaded through the API and can be read back.
      const [mask, summary] = report.presentedForm;
      const maskBytes = new Uint8Array(await (await fetch(mask.url)).arrayBuffer());
      assert.deepEqual(parseNiftiHeader(maskBytes).dims, [40, 40, 10]);
      const json = await (await fetch(summary.url)).json();
      assert.equal(json.study.seriesInstanceUid, study.plan.study.seriesInstanceUid);
      assert.equal(json.findings.length, 2);
      const centres = json.findings.map((f: { centreVoxel: number[] }) =>
        f.centreVoxel.map(Math.round)
      );
      assert.deepEqual(centres.sort((a: number[], b: number[]) => a[0] - b[0]), [[10, 12, 3], [
        28,
        26,
        6,
      ]]);

      const h = await health();
      assert.equal(h.status, 200);
      const body = await h.json();
      assert.equal(body.status, "ok");
      assert.deepEqual(body.models, [{
        name: "threshold-demo",
        version: "1.0.0",
        provider: "cpu",
      }]);
      assert.equal(body.provider, "cpu");
      assert.equal(body.jobs.done, 1);
      assert.equal(body.queue.pending, 0);
      assert.ok(body.memory.rss > 0 && body.uptimeSeconds >= 0);
      assert.equal(
        (await createHealthHandler({} as never)(new Request("http://x/nope"))).status,
        404,
      );

      // The same job delivered again finds its Task completed and files nothing.
      await enqueue({ ...job, jobId: crypto.randomUUID() });
      await until("the duplicate", () => sidecar.stats.skipped === 1);
      const reports = await fhirJson(
        ctx,
        "GET",
        `DiagnosticReport?subject=${job.patient}&_total=accurate`,
      );
      assert.equal(reports.body.total, 1);
    });
  },
);

backendTest(
  "the sidecar fails a job that cannot succeed at once and marks its Task failed",
  async (ctx) => {
    const j2k = jpeg2000Instance(41);
    await storeStudy(ctx, [j2k.bytes]);
    const j2kUid = j2k.plan.study.studyInstanceUid;
    const unsupported = await createJobResources(ctx, {
      studyUid: j2kUid,
      ...(await imagingStudyOf(ctx, j2kUid)),
    });
    const missing = await createJobResources(ctx); // an ImagingStudy with no stored instances
    const unknownModel = { ...(await createJobResources(ctx)), model: "no-such-model" };

    await withSidecar(ctx, async ({ sidecar, enqueue }) => {
      for (const job of [unsupported, missing, unknownModel]) await enqueue(job);
      await until("three failures", () => sidecar.stats.failed === 3);
      assert.equal(sidecar.stats.retried, 0); // fatal: no retries
      const reason = async (job: AnalysisJob) => {
        await until(
          "the Task update",
          async () => (await fhirJson(ctx, "GET", `Task/${job.taskId}`)).body.status === "failed",
        );
        return (await fhirJson(ctx, "GET", `Task/${job.taskId}`)).body.statusReason.text as string;
      };
      assert.match(
        await reason(unsupported),
        /Decoding JPEG 2000 Lossless \(1\.2\.840\.10008\.1\.2\.4\.90\) is not supported/,
      );
      assert.match(await reason(missing), /is not stored|has no CT series/);
      assert.match(
        await reason(unknownModel),
        /Model "no-such-model" is not installed on this sidecar \(installed: threshold-demo\)/,
      );
    });
  },
);
