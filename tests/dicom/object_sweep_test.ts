/**
 * The object sweep (`dicom/sweep.ts`) on stores of its own (a folder, and a bucket of its own on the
 * S3 server in S3_ENDPOINT): objects no instance row points at are removed once older than the
 * cutoff, recent ones and keys of another shape are kept, stored instances are untouched; the
 * admin endpoint runs it; one replica at a time claims the periodic run.
 */
import assert from "node:assert/strict";
import { DeleteBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { createApp } from "../../app.ts";
import { loadConfig } from "../../platform/config.ts";
import { openDb } from "../../db/db.ts";
import { migrate } from "../../db/migrate.ts";
import { claimMaintenance } from "../../db/maintenance_repo.ts";
import { sweepUnindexedObjects } from "../../dicom/sweep.ts";
import { encodeMultipartRelated } from "../../dicom/synth/stow.ts";
import { createServices } from "../../services.ts";
import { sphereStudy } from "../sidecar/_study.ts";

const S3_ENDPOINT = Deno.env.get("S3_ENDPOINT") ?? "";
const s3 = {
  S3_REGION: Deno.env.get("S3_REGION") ?? "us-east-1",
  S3_ACCESS_KEY_ID: Deno.env.get("S3_ACCESS_KEY_ID") ?? "",
  S3_SECRET_ACCESS_KEY: Deno.env.get("S3_SECRET_ACCESS_KEY") ?? "",
};

for (const kind of ["folder", "s3"] as const) {
  Deno.test({
    name: `object sweep [${kind}]: unindexed objects past the cutoff go, the rest stay`,
    ignore: kind === "s3" && !S3_ENDPOINT,
    sanitizeOps: false,
    sanitizeResources: false,
    async fn() {
      const bucket = `sweep-${Date.now().toString(36)}-${crypto.randomUUID().slice(0, 6)}`;
      const services = await createServices(loadConfig({
        DATABASE_URL: "",
        PGLITE_DIR: "memory",
        LOG_LEVEL: "error",
        AUTH: "off",
        AUDIT: "off",
        INFERENCE_WORKER: "off",
        DICOM_STABLE_SECONDS: "60",
        ...(kind === "s3"
          ? { S3_ENDPOINT, S3_BUCKET: bucket, ...s3 }
          : { S3_ENDPOINT: "", OBJECT_DIR: await Deno.makeTempDir({ prefix: "objects-sweep-" }) }),
      }));
      const app = createApp(services);
      try {
        const study = sphereStudy({ seed: 71, slices: 3, spheres: [] });
        const { contentType, body } = encodeMultipartRelated(study.instances);
        const stow = await app.request("/dicomweb/studies", {
          method: "POST",
          headers: { "Content-Type": contentType, Accept: "application/dicom+json" },
          body,
        });
        assert.equal(stow.status, 200);
        const refs = (await stow.json())["00081199"].Value;
        const stored = await Array.fromAsync(services.store.list("dicom/"));
        assert.equal(stored.length, 3);
        const { studyInstanceUid: studyUid, seriesInstanceUid: seriesUid } = study.plan.study;
        const folder = `dicom/${studyUid}/${seriesUid}`;
        const knownSop = refs[0]["00081155"].Value[0];
        const orphans = [
          // A copy of a stored instance under another key (its row points elsewhere) …
          `${folder}/${knownSop}.0123456789abcdef-0a1b2c3d.dcm`,
          // … and an instance that has no row at all (a process died before the commit).
          `${folder}/1.2.826.0.1.3680043.10.999.1.deadbeef.0123456789abcdef-89abcdef.dcm`,
        ];
        for (const key of orphans) await services.store.put(key, new Uint8Array([1, 2, 3]));
        await services.store.put("dicom/notes/readme.txt", new Uint8Array([4]));

        const now = await sweepUnindexedObjects(services, { olderThanMs: 3_600_000 });
        assert.deepEqual({ ...now, seconds: 0 }, {
          listed: 6,
          removed: 0,
          recent: 2,
          foreign: 1,
          seconds: 0,
        });
        const later = await sweepUnindexedObjects(services, {
          olderThanMs: 3_600_000,
          now: Date.now() + 2 * 3_600_000,
        });
        assert.equal(later.removed, 2);
        const left = (await Array.fromAsync(services.store.list("dicom/"))).map((o) => o.key)
          .sort();
        assert.deepEqual(left, [...stored.map((o) => o.key), "dicom/notes/readme.txt"].sort());
        for (const ref of refs) {
          const sop = ref["00081155"].Value[0];
          const r = await app.request(
            `/dicomweb/studies/${studyUid}/series/${seriesUid}/instances/${sop}`,
            { headers: { Accept: "multipart/related; type=application/dicom" } },
          );
          assert.equal(r.status, 200);
          await r.body?.cancel();
        }

        // The admin endpoint, with a cutoff of its own; a bad one is 400.
        await services.store.put(orphans[1], new Uint8Array([1]));
        const run = await app.request("/admin/objects/sweep?olderThanMinutes=0", {
          method: "POST",
        });
        assert.equal(run.status, 200);
        assert.equal((await run.json()).removed, 1);
        const bad = await app.request("/admin/objects/sweep?olderThanMinutes=-1", {
          method: "POST",
        });
        assert.equal(bad.status, 400);
        await bad.body?.cancel();
      } finally {
        for await (const o of services.store.list("")) await services.store.delete(o.key);
        await services.close();
        if (kind === "s3") {
          const client = new S3Client({
            endpoint: S3_ENDPOINT,
            region: s3.S3_REGION,
            forcePathStyle: true,
            credentials: {
              accessKeyId: s3.S3_ACCESS_KEY_ID,
              secretAccessKey: s3.S3_SECRET_ACCESS_KEY,
            },
          });
          await client.send(new DeleteBucketCommand({ Bucket: bucket })).catch(() => {});
          client.destroy();
        }
      }
    },
  });
}

Deno.test("claimMaintenance(): one claim per period, whichever replica asks", async () => {
  const db = await openDb({});
  try {
    await migrate(db);
    assert.equal(await claimMaintenance(db, "object-sweep", 3_600_000), true);
    assert.equal(await claimMaintenance(db, "object-sweep", 3_600_000), false);
    assert.equal(await claimMaintenance(db, "other-task", 3_600_000), true);
    // A period already past: claimed again.
    assert.equal(await claimMaintenance(db, "object-sweep", 0), true);
  } finally {
    await db.close();
  }
});
