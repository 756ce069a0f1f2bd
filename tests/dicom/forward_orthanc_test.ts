// deno-lint-ignore-file no-explicit-any
/**
 * @module A real PACS receives the AI results: Orthanc (Debian's, with its DICOMweb plugin, asking
 * for basic auth) is configured as a DICOM destination; a chest CT is stored here and analysed by
 * the in-process worker; the SEG and the SR of the analysis arrive in Orthanc, in the CT's study,
 * and Orthanc lists them (the CT itself is not sent: the destination wants SEG and SR).
 */
import assert from "node:assert/strict";
import { generateStudy } from "../../dicom/synth/ct.ts";
import { stowInstances } from "../../dicom/synth/stow.ts";
import { startContext } from "../_harness.ts";
import { analyseStudy, imagingStudyOf } from "../_analysis.ts";
import { ok, orthancUnavailable, startOrthanc } from "./_orthanc.ts";

const NAME =
  "the SEG and SR of an analysis are sent to Orthanc (STOW-RS, basic auth) and listed there";
const unavailable = orthancUnavailable();

Deno.test({
  name: unavailable ? `${NAME} [skipped: ${unavailable}]` : NAME,
  ignore: unavailable !== undefined,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const password = crypto.randomUUID();
    const orthanc = await startOrthanc(undefined, `imaging-ai:${password}`);
    // On Postgres and S3 when the suite has them, so the bytes sent are read back from S3.
    const backend = Deno.env.get("DATABASE_URL") ? "postgres" : "pglite";
    const ctx = await startContext(backend, {
      DICOM_DESTINATIONS: JSON.stringify([{
        name: "orthanc",
        url: `${orthanc.url}/dicom-web`,
        username: "imaging-ai",
        passwordEnv: "TEST_ORTHANC_PASSWORD",
      }]),
      TEST_ORTHANC_PASSWORD: password,
    });
    try {
      const study = generateStudy({ seed: 4213, slices: 40, rows: 256, cols: 256, lesions: 2 });
      const uid = study.plan.study.studyInstanceUid;
      const stowed = await stowInstances(`${ctx.origin}/dicomweb`, study.instances);
      assert.equal(stowed.stored, 40, JSON.stringify(stowed));
      await analyseStudy(ctx, (await imagingStudyOf(ctx, uid)).id);
      await ctx.services.forwarding.idle();

      const studies = await ok(orthanc, "GET", "/studies?expand");
      assert.equal(studies.length, 1, JSON.stringify(studies));
      assert.equal(studies[0].MainDicomTags.StudyInstanceUID, uid);
      const series = await ok(orthanc, "GET", `/studies/${studies[0].ID}/series?expand`);
      const modalities = series.map((s: any) => s.MainDicomTags.Modality).sort();
      assert.deepEqual(modalities, ["SEG", "SR"], "the results, not the CT");
      const seg = series.find((s: any) => s.MainDicomTags.Modality === "SEG");
      const segTags = await ok(orthanc, "GET", `/instances/${seg.Instances[0]}/simplified-tags`);
      assert.equal(segTags.SOPClassUID, "1.2.840.10008.5.1.4.1.1.66.4");
      assert.ok(Number(segTags.NumberOfFrames) >= 2, "frames of both findings");
      const sr = series.find((s: any) => s.MainDicomTags.Modality === "SR");
      const srTags = await ok(orthanc, "GET", `/instances/${sr.Instances[0]}/simplified-tags`);
      assert.equal(srTags.ContentTemplateSequence[0].TemplateIdentifier, "1500");

      // The delivery log agrees: both delivered with 200, in one attempt each.
      const log = await (await fetch(`${ctx.origin}/admin/forwarding?study=${uid}`)).json();
      assert.equal(log.deliveries.length, 2, JSON.stringify(log));
      for (const d of log.deliveries) {
        assert.equal(d.state, "delivered", JSON.stringify(d));
        assert.equal(d.lastStatus, 200);
        assert.equal(d.attempts, 1);
      }
      assert.equal(log.destinations[0].authentication, "basic");
    } finally {
      await ctx.close();
      await orthanc.stop();
    }
  },
});
