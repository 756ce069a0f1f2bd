// deno-lint-ignore-file no-explicit-any
/**
 * DICOM deletion, what is left after a crash and who may delete. The sweep (`POST
 * /admin/objects/sweep`) on a service and a store of its own (a folder; a bucket of its own on
 * the S3 server with Postgres): objects whose rows a deletion removed before it died go; rows
 * whose object is gone are reported, removed only when asked (the ImagingStudy rebuilt, then
 * deleted with the study's last instance, the derived results kept), and never when the store
 * holds no DICOM object at all. With AUTH=on only an administrator deletes through DICOMweb.
 */
import assert from "node:assert/strict";
import { DeleteBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { type Backend, fhirJson, startContext, type TestContext } from "../_harness.ts";
import { imagingStudyOf } from "../_analysis.ts";
import { startAuthStack } from "../auth/_auth_harness.ts";
import {
  deletionEvents,
  dicomweb,
  fhirStatus,
  objectsOf,
  qidoInstances,
  storeStudy,
  wadoStatus,
} from "./_delete.ts";

const DATABASE_URL = Deno.env.get("DATABASE_URL") ?? "";
const S3_ENDPOINT = Deno.env.get("S3_ENDPOINT") ?? "";

async function sweep(ctx: TestContext, missing = "report"): Promise<any> {
  const r = await fetch(`${ctx.origin}/admin/objects/sweep?olderThanMinutes=0&missing=${missing}`, {
    method: "POST",
  });
  const body = await r.json();
  assert.equal(r.status, 200, JSON.stringify(body));
  return body;
}

/** A service of its own: a bucket of its own on S3 (the sweep looks at every object in it). */
async function ownContext(backend: Backend): Promise<{ ctx: TestContext; done(): Promise<void> }> {
  const bucket = `delete-${Date.now().toString(36)}-${crypto.randomUUID().slice(0, 6)}`;
  const ctx = await startContext(backend, { S3_BUCKET: bucket, INFERENCE_WORKER: "off" });
  return {
    ctx,
    async done() {
      for await (const o of ctx.services.store.list("")) await ctx.services.store.delete(o.key);
      await ctx.close();
      if (backend !== "postgres" || !S3_ENDPOINT) return;
      const client = new S3Client({
        endpoint: S3_ENDPOINT,
        region: Deno.env.get("S3_REGION") ?? "us-east-1",
        forcePathStyle: true,
        credentials: {
          accessKeyId: Deno.env.get("S3_ACCESS_KEY_ID") ?? "",
          secretAccessKey: Deno.env.get("S3_SECRET_ACCESS_KEY") ?? "",
        },
      });
      await client.send(new DeleteBucketCommand({ Bucket: bucket })).catch(() => {});
      client.destroy();
    },
  };
}

for (const backend of ["pglite", "postgres"] as const) {
  Deno.test({
    name: `a deletion that died midway leaves nothing the sweep does not clean [${backend}]`,
    ignore: backend === "postgres" && !DATABASE_URL,
    sanitizeOps: false,
    sanitizeResources: false,
    async fn() {
      const { ctx, done } = await ownContext(backend);
      try {
        const a = await storeStudy(ctx);
        const b = await storeStudy(ctx);
        const report = await fhirJson(ctx, "POST", "DiagnosticReport", {
          resourceType: "DiagnosticReport",
          status: "final",
          code: { text: "read" },
          imagingStudy: [{ reference: `ImagingStudy/${a.imagingStudyId}` }],
        });
        assert.equal(report.status, 201);

        // Objects without rows: B's index rows went (the deletion's transaction committed), and
        // the process died before its objects went.
        await ctx.services.db.transaction(async (tx) => {
          await tx.query(`DELETE FROM dicom_instance WHERE study_uid = $1`, [b.studyUid]);
          await tx.query(`DELETE FROM dicom_study WHERE study_uid = $1`, [b.studyUid]);
        });
        assert.equal((await objectsOf(ctx, b.studyUid)).length, 5);
        const first = await sweep(ctx);
        assert.equal(first.removed, 5);
        assert.deepEqual(await objectsOf(ctx, b.studyUid), []);
        assert.equal((await objectsOf(ctx, a.studyUid)).length, 5, "A's objects stay");
        assert.equal(first.rowsWithoutObjects.missing, 0);
        assert.equal(first.rowsWithoutObjects.checked, 5);

        // Rows without objects: one of A's objects is lost outside the service. Reported ...
        const [lost] = await objectsOf(ctx, a.studyUid, a.ctSeries, a.ctSops[0]);
        await ctx.services.store.delete(lost);
        const reported = await sweep(ctx);
        assert.equal(reported.removed, 0);
        assert.deepEqual(reported.rowsWithoutObjects, {
          checked: 5,
          missing: 1,
          removed: 0,
          examples: [`${a.studyUid}/${a.ctSeries}/${a.ctSops[0]}`],
        });
        assert.equal((await qidoInstances(ctx, a.studyUid)).length, 5, "reported, not removed");
        // ... and removed when asked: the ImagingStudy follows, an AuditEvent says why.
        const removed = await sweep(ctx, "remove");
        assert.equal(removed.rowsWithoutObjects.removed, 1);
        assert.equal((await qidoInstances(ctx, a.studyUid)).length, 4);
        assert.equal((await imagingStudyOf(ctx, a.studyUid)).numberOfInstances, 4);
        const events = await deletionEvents(ctx, a.imagingStudyId);
        assert.equal(events.length, 1);
        assert.match(events[0].outcomeDesc, /removed by the object sweep/);
        assert.equal((await sweep(ctx)).rowsWithoutObjects.missing, 0);

        // Every DICOM object gone: the store may be the wrong one; nothing is removed.
        for (const key of await objectsOf(ctx, a.studyUid)) await ctx.services.store.delete(key);
        const refused = await sweep(ctx, "remove");
        assert.equal(refused.rowsWithoutObjects.missing, 4);
        assert.equal(refused.rowsWithoutObjects.removed, 0);
        assert.match(refused.rowsWithoutObjects.refused, /no DICOM object at all/);
        assert.equal((await qidoInstances(ctx, a.studyUid)).length, 4);

        // With another study stored, the lost rows go, and the study with its last instance;
        // a repair keeps the derived results.
        const c = await storeStudy(ctx);
        const last = await sweep(ctx, "remove");
        assert.equal(last.rowsWithoutObjects.removed, 4);
        assert.deepEqual(await qidoInstances(ctx, a.studyUid), []);
        assert.equal(await fhirStatus(ctx, `ImagingStudy/${a.imagingStudyId}`), 410);
        assert.equal(await fhirStatus(ctx, `DiagnosticReport/${report.body.id}`), 200);
        assert.equal(await wadoStatus(ctx, `/studies/${c.studyUid}`), 200);
        assert.equal((await objectsOf(ctx, c.studyUid)).length, 5);
      } finally {
        await done();
      }
    },
  });
}

Deno.test({
  name: "only an administrator deletes DICOM data (AUTH=on)",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const stack = await startAuthStack({ INFERENCE_WORKER: "off" });
    try {
      const admin = { Authorization: `Bearer ${stack.tokens.admin}` };
      const ctx = {
        origin: stack.origin,
        services: stack.services,
        fetch: (path: string, init: RequestInit = {}) => {
          const headers = new Headers(init.headers);
          headers.set("Authorization", admin.Authorization);
          return fetch(`${stack.origin}/fhir/${path}`, { ...init, headers });
        },
      };
      const s = await storeStudy(ctx, admin);
      const path = `/studies/${s.studyUid}`;
      for (const who of ["clinician", "viewer", "system"] as const) {
        const r = await dicomweb(ctx, "DELETE", path, {
          Authorization: `Bearer ${stack.tokens[who]}`,
        });
        assert.equal(r.status, 403, `${who}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.resourceType, "OperationOutcome");
      }
      assert.equal((await dicomweb(ctx, "DELETE", path)).status, 401);
      assert.equal((await objectsOf(ctx, s.studyUid)).length, 5, "refused: nothing deleted");
      // The clinician may delete FHIR resources of other kinds, never this ImagingStudy.
      const clinician = await fetch(`${stack.origin}/fhir/ImagingStudy/${s.imagingStudyId}`, {
        method: "DELETE",
        headers: { Authorization: `Bearer ${stack.tokens.clinician}` },
      });
      assert.equal(clinician.status, 403);
      await clinician.body?.cancel();

      const series = `${path}/series/${s.otSeries}`;
      assert.equal((await dicomweb(ctx, "DELETE", series, admin)).status, 204);
      assert.equal((await dicomweb(ctx, "DELETE", path, admin)).status, 204);
      assert.deepEqual(await objectsOf(ctx, s.studyUid), []);
      // The clinician's refused FHIR delete is an event too (outcome 4); the deletions are 0.
      const all = await deletionEvents(ctx, s.imagingStudyId);
      assert.deepEqual(all.map((e) => e.outcome).sort(), ["0", "0", "4"]);
      const events = all.filter((e) => e.outcome === "0");
      for (const e of events) {
        assert.equal(e.agent[0].who.identifier.system, "urn:imaging-ai:user");
        assert.equal(e.entity[0].what.reference, `ImagingStudy/${s.imagingStudyId}`);
      }
      const patientEvents = events.filter((e) =>
        e.entity.some((x: any) => x.what?.reference?.startsWith("Patient/"))
      );
      assert.equal(patientEvents.length, 2, "the events name the study's Patient");
    } finally {
      await stack.close();
    }
  },
});
