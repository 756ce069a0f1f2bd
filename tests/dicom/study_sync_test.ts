/**
 * The ImagingStudy while a study arrives one instance per request, as PACS forwarders and C-STORE
 * bridges send (`dicom/study_sync.ts`), counted, not timed: 500 instances write the ImagingStudy
 * once (its creation) and a handful of rebuilds, not once per instance (the old behaviour: 500
 * versions, each rebuilt from every instance so far: O(n²)); the index counts are exact at every
 * step (QIDO-RS); the study-stable listeners see the exact ImagingStudy; a study left stale (its
 * replica stopped before the rebuild) is found by the poll.
 */
import assert from "node:assert/strict";
import type { ImagingStudy } from "@medplum/fhirtypes";
import { createApp } from "../../app.ts";
import { loadConfig } from "../../config.ts";
import * as repo from "../../db/dicom_repo.ts";
import { encodeMultipartRelated } from "../../dicom/synth/stow.ts";
import { createServices, type Services } from "../../services.ts";
import { sphereStudy } from "../inference/_study.ts";
import { createStudySync } from "../../dicom/study_sync.ts";
import { syncStudyResources } from "../../dicom/fhir_sync.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

async function open(env: Record<string, string>) {
  const services = await createServices(loadConfig({
    DATABASE_URL: "",
    PGLITE_DIR: "memory",
    OBJECT_DIR: await Deno.makeTempDir({ prefix: "objects-sync-" }),
    LOG_LEVEL: "error",
    AUTH: "off",
    AUDIT: "off",
    INFERENCE_WORKER: "off",
    ...env,
  }));
  return { services, app: createApp(services) };
}

async function stowOne(app: ReturnType<typeof createApp>, instance: Uint8Array) {
  const { contentType, body } = encodeMultipartRelated([instance]);
  const r = await app.request("/dicomweb/studies", {
    method: "POST",
    headers: { "Content-Type": contentType, Accept: "application/dicom+json" },
    body: new Uint8Array(await body.arrayBuffer()),
  });
  const text = await r.text();
  assert.equal(r.status, 200, text);
}

async function imagingStudyOf(app: ReturnType<typeof createApp>, studyUid: string) {
  const q = `identifier=${encodeURIComponent(`urn:dicom:uid|urn:oid:${studyUid}`)}`;
  const r = await app.request(`/fhir/ImagingStudy?${q}`);
  const bundle: Json = await r.json();
  assert.equal(bundle.entry?.length, 1, "one ImagingStudy per study");
  return bundle.entry[0].resource as ImagingStudy;
}

async function versions(app: ReturnType<typeof createApp>, id: string): Promise<number> {
  const r = await app.request(`/fhir/ImagingStudy/${id}/_history?_count=1000`);
  return ((await r.json()) as Json).entry.length;
}

Deno.test("500 instances one per request: the ImagingStudy is written a handful of times, not 500", async () => {
  let services: Services | undefined;
  try {
    // Rebuilds at most once a minute: during the arrival none is due, whatever this machine's speed.
    const opened = await open({ IMAGINGSTUDY_SYNC_MS: "60000", DICOM_STABLE_SECONDS: "3600" });
    services = opened.services;
    const { app } = opened;
    const study = sphereStudy({ seed: 81, rows: 16, cols: 16, slices: 500, spheres: [] });
    const uid = study.plan.study.studyInstanceUid;
    for (const [i, instance] of study.instances.entries()) {
      await stowOne(app, instance);
      if (i % 100 === 99) {
        // The index is exact at every step.
        const row = await repo.readStudy(services.db, uid);
        assert.equal(row?.num_instances, i + 1);
      }
    }
    const during = await imagingStudyOf(app, uid);
    assert.equal(await versions(app, during.id!), 1, "the ImagingStudy was rewritten per instance");
    assert.equal(during.numberOfInstances, 1, "made with the first instance");
    assert.equal(await repo.fhirStale(services.db, uid), true);

    await services.dicom.deps.studySync.flush();
    const after = await imagingStudyOf(app, uid);
    assert.equal(after.numberOfInstances, 500);
    assert.equal(after.series?.[0].numberOfInstances, 500);
    assert.equal(after.series?.[0].instance?.length, 500);
    assert.equal(await versions(app, after.id!), 2);
    assert.equal(await repo.fhirStale(services.db, uid), false);
    const qido = await app.request(`/dicomweb/studies?StudyInstanceUID=${uid}`, {
      headers: { Accept: "application/dicom+json" },
    });
    assert.equal(((await qido.json()) as Json)[0]["00201208"].Value[0], 500);
  } finally {
    await services?.close();
  }
});

Deno.test("the study-stable listeners see the exact ImagingStudy; the poll rebuilds a study left stale", async () => {
  let services: Services | undefined;
  try {
    const opened = await open({ IMAGINGSTUDY_SYNC_MS: "60000", DICOM_STABLE_SECONDS: "1" });
    services = opened.services;
    const { app } = opened;
    const seen: number[] = [];
    services.dicom.onStudyStable(async (e) => {
      seen.push((await imagingStudyOf(app, e.studyUid)).numberOfInstances ?? -1);
    });
    const study = sphereStudy({ seed: 82, rows: 16, cols: 16, slices: 12, spheres: [] });
    for (const instance of study.instances) await stowOne(app, instance);
    const end = Date.now() + 15_000;
    while (!seen.length && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(seen, [12]);
  } finally {
    await services?.close();
  }

  // A replica stopped before its rebuild: the study stays stale; any replica's poll rebuilds it.
  let other: Services | undefined;
  try {
    const opened = await open({ IMAGINGSTUDY_SYNC_MS: "100", DICOM_STABLE_SECONDS: "3600" });
    other = opened.services;
    const { app } = opened;
    const study = sphereStudy({ seed: 83, rows: 16, cols: 16, slices: 3, spheres: [] });
    for (const instance of study.instances) await stowOne(app, instance);
    other.dicom.deps.studySync.close(); // as if the process had stopped: its timers are gone
    const uid = study.plan.study.studyInstanceUid;
    await repo.markFhirStale(other.db, uid);
    const deps = other.dicom.deps;
    const replica = createStudySync(other.db, (tx, s) => syncStudyResources(deps, tx, s), {
      intervalMs: 100,
      pollMs: 200,
    });
    try {
      const end = Date.now() + 10_000;
      while (await repo.fhirStale(other.db, uid) && Date.now() < end) {
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(await repo.fhirStale(other.db, uid), false, "the poll did not rebuild it");
      assert.equal((await imagingStudyOf(app, uid)).numberOfInstances, 3);
    } finally {
      replica.close();
    }
  } finally {
    await other?.close();
  }
});
