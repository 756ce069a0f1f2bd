// deno-lint-ignore-file no-explicit-any
/**
 * @module Orthanc (Debian's) as a DIMSE peer in both directions: Orthanc C-STOREs a study here
 * (its /modalities/imaging/store); Orthanc C-FINDs here and asks for a study by C-MOVE, which
 * this service sends to Orthanc (its AE in DIMSE_MOVE_DESTINATIONS); Orthanc's C-ECHO is
 * answered. Ignored, by name, where Orthanc is missing.
 */
import assert from "node:assert/strict";
import { generateStudy } from "../../dicom/synth/ct.ts";
import { stowInstances } from "../../dicom/synth/stow.ts";
import { startContext } from "../_harness.ts";
import { ok, orthancUnavailable, rest, startOrthanc } from "./_orthanc.ts";

const NAME = "Orthanc and this service speak DIMSE both ways: C-ECHO, C-STORE, C-FIND, C-MOVE";
const unavailable = orthancUnavailable();

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

Deno.test({
  name: unavailable ? `${NAME} [skipped: ${unavailable}]` : NAME,
  ignore: unavailable !== undefined,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const ourPort = freePort();
    const orthanc = await startOrthanc(undefined, undefined, {
      imaging: ["IMAGING_AI", "127.0.0.1", ourPort],
    });
    const backend = Deno.env.get("DATABASE_URL") ? "postgres" : "pglite";
    const ctx = await startContext(backend, {
      DIMSE_PORT: String(ourPort),
      DIMSE_ALLOWED_PEERS: "ORTHANC@127.0.0.1",
      DIMSE_MOVE_DESTINATIONS: `ORTHANC=127.0.0.1:${orthanc.dicomPort}`,
    });
    try {
      assert.equal((await rest(orthanc, "POST", "/modalities/imaging/echo", {})).status, 200);

      // Orthanc → here: a study uploaded to Orthanc, then C-STOREd to us.
      const pushed = generateStudy({ seed: 8101, slices: 5, rows: 64, cols: 64, lesions: 0 });
      for (const bytes of pushed.instances) await ok(orthanc, "POST", "/instances", bytes);
      const [orthancStudy] = await ok(orthanc, "GET", "/studies");
      const job = await ok(orthanc, "POST", "/modalities/imaging/store", {
        Resources: [orthancStudy],
        Synchronous: true,
      });
      assert.equal(Number(job.InstancesCount), 5, JSON.stringify(job));
      assert.equal(Number(job.FailedInstancesCount), 0, JSON.stringify(job));
      const pushedUid = pushed.plan.study.studyInstanceUid;
      const here = await (await fetch(`${ctx.origin}/dicomweb/studies/${pushedUid}/instances`))
        .json();
      assert.equal(here.length, 5, "the study Orthanc sent is indexed here");

      // Here → Orthanc: a study stored here over STOW-RS, found by Orthanc's C-FIND and
      // retrieved by its C-MOVE (we C-STORE it to Orthanc).
      const ours = generateStudy({ seed: 8102, slices: 7, rows: 64, cols: 64, lesions: 0 });
      assert.equal((await stowInstances(`${ctx.origin}/dicomweb`, ours.instances)).stored, 7);
      const oursUid = ours.plan.study.studyInstanceUid;
      const query = await ok(orthanc, "POST", "/modalities/imaging/query", {
        Level: "Study",
        Query: { StudyInstanceUID: oursUid, PatientName: "", NumberOfStudyRelatedInstances: "" },
      });
      const answers = await ok(orthanc, "GET", `/queries/${query.ID}/answers?expand`);
      assert.equal(answers.length, 1, JSON.stringify(answers));
      assert.equal(answers[0]["0020,000d"].Value, oursUid);
      assert.equal(String(answers[0]["0020,1208"].Value).trim(), "7");
      await ok(orthanc, "POST", `/queries/${query.ID}/retrieve`, {
        TargetAet: "ORTHANC",
        Synchronous: true,
      });
      const studies = await ok(orthanc, "GET", "/studies?expand");
      const got = studies.find((s: any) => s.MainDicomTags.StudyInstanceUID === oursUid);
      assert.ok(got, `Orthanc holds the study it moved: ${JSON.stringify(studies)}`);
      const instances = await ok(orthanc, "GET", `/studies/${got.ID}/instances`);
      assert.equal(instances.length, 7);
    } finally {
      await ctx.close();
      await orthanc.stop();
    }
  },
});
