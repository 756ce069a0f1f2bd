/**
 * The ImagingStudy while a study arrives one instance per request, as PACS forwarders and C-STORE
 * bridges send (`dicom/study_sync.ts`), counted, not timed: 500 instances write the ImagingStudy
 * once (its creation) and a handful of rebuilds, not once per instance (the old behaviour: 500
 * versions, each rebuilt from every instance so far: O(n²)); the index counts are exact at every
 * step (QIDO-RS); the study-stable listeners see the exact ImagingStudy; a study left stale (its
 * replica stopped before the rebuild) is found by the poll.
 */
import assert from "node:assert/strict";
import { zipSync } from "fflate";
import type { ImagingStudy } from "@medplum/fhirtypes";
import { createApp } from "../../app.ts";
import { loadConfig } from "../../platform/config.ts";
import * as repo from "../../db/dicom_repo.ts";
import { encodeMultipartRelated } from "../../dicom/synth/stow.ts";
import { createServices, type Services } from "../../services.ts";
import { sphereStudy } from "../sidecar/_study.ts";
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

/**
 * Counts the statements and transactions that storing instances runs (`dicom/store.ts` on the
 * stack), leaving out the background polls (quiet periods, stale ImagingStudies, the change feed).
 */
function countStatements(services: Services) {
  const db = services.dicom.deps.db;
  const counts = { statements: 0, transactions: 0 };
  const storing = () => /dicom\/store\.ts/.test(new Error().stack ?? "");
  const query = db.query.bind(db);
  const transaction = db.transaction.bind(db);
  db.query = (text, params) => {
    if (storing()) counts.statements++;
    return query(text, params);
  };
  db.transaction = (fn) => {
    if (!storing()) return transaction(fn);
    counts.transactions++;
    return transaction((tx) =>
      fn({
        query: (text, params) => {
          counts.statements++;
          return tx.query(text, params);
        },
      })
    );
  };
  return {
    /** Statements and transactions since the last call. */
    take() {
      const taken = { ...counts };
      counts.statements = counts.transactions = 0;
      return taken;
    },
  };
}

/** A fresh service (no rebuild or quiet period due during the test) counting its statements. */
async function openCounted(seed: number, slices: number) {
  const { services, app } = await open({
    IMAGINGSTUDY_SYNC_MS: "60000",
    DICOM_STABLE_SECONDS: "3600",
  });
  const counter = countStatements(services);
  const study = sphereStudy({ seed, rows: 16, cols: 16, slices, spheres: [] });
  return { services, app, counter, study, uid: study.plan.study.studyInstanceUid };
}

Deno.test("an instance of a stored study costs two statements and no transaction, whatever the study's size", async () => {
  let services: Services | undefined;
  try {
    const opened = await openCounted(84, 301);
    services = opened.services;
    const { app, counter, study, uid } = opened;
    await stowOne(app, study.instances[0]); // makes the study (its Patient and ImagingStudy)
    /** Statements per instance and transactions of the next `n` instances, one per request. */
    const cost = async (from: number, n: number) => {
      counter.take();
      for (const instance of study.instances.slice(from, from + n)) await stowOne(app, instance);
      const { statements, transactions } = counter.take();
      return { statements: statements / n, transactions };
    };
    // Before: a transaction of about eight statements per instance (locks, reads, inserts,
    // counts, the quiet period), and before that the ImagingStudy rebuilt from the whole study.
    assert.deepEqual(await cost(1, 50), { statements: 2, transactions: 0 });
    assert.deepEqual(await cost(51, 200), { statements: 2, transactions: 0 });
    assert.deepEqual(await cost(251, 50), { statements: 2, transactions: 0 });
    const row = await repo.readStudy(services.db, uid);
    assert.equal(row?.num_instances, 301);
    assert.equal(row?.num_series, 1);
    // Sent again: each is known and identical (a duplicate): one lookup, nothing written.
    assert.deepEqual(await cost(100, 20), { statements: 1, transactions: 0 });
    assert.equal((await repo.readStudy(services.db, uid))?.num_instances, 301);
  } finally {
    await services?.close();
  }
});

Deno.test("a ZIP of a whole study: one transaction (the study's first batch), then two statements per batch of 32", async () => {
  let services: Services | undefined;
  try {
    const opened = await openCounted(85, 320);
    services = opened.services;
    const { app, counter, study, uid } = opened;
    const files = Object.fromEntries(
      study.instances.map((b, i) => [`study/IM${String(i).padStart(4, "0")}.dcm`, b]),
    );
    counter.take();
    const r = await app.request("/dicomweb/studies", {
      method: "POST",
      headers: { "Content-Type": "application/zip", Accept: "application/dicom+json" },
      body: zipSync(files),
    });
    const body: Json = await r.json();
    assert.equal(r.status, 200, JSON.stringify(body).slice(0, 500));
    assert.equal(body["00081199"].Value.length, 320);
    const { statements, transactions } = counter.take();
    // 10 batches: the first a transaction (it makes the study's Patient and ImagingStudy), the
    // other 9 a lookup and one index statement each.
    assert.equal(transactions, 1);
    // The first batch: its lookup and a transaction of about 20 statements (the Patient and the
    // ImagingStudy made through the FHIR layer); each later batch: 2. (41 when written.)
    assert.ok(statements <= 9 * 2 + 25, `${statements} statements for 320 instances`);
    assert.equal((await repo.readStudy(services.db, uid))?.num_instances, 320);
    const is = await imagingStudyOf(app, uid);
    assert.equal(await versions(app, is.id!), 1, "the ImagingStudy was rewritten per batch");
  } finally {
    await services?.close();
  }
});
