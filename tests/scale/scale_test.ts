/**
 * @module The service run like production, under faults: two API processes behind a local HAProxy
 * (round robin, `/health/ready` checks, retries with redispatch), two sidecars in one consumer
 * group, a fresh Postgres database, a Redis database and key prefix of their own and a unique
 * Ceph RGW bucket. 16 clients each upload a small study (STOW-RS in parts) and ask `$analyze`
 * through HAProxy while SSE clients follow `GET /events?types=Task`; mid-run one API process and
 * one sidecar (one with a job in hand) are SIGKILLed and started again. Afterwards every study
 * has exactly one ImagingStudy, one Task (completed) and one DiagnosticReport, no request got a
 * 5xx other than HAProxy's own at the kill (counted), and every SSE client saw every Task
 * completed. AUTH=off, as in the other process-level tests of the pipeline.
 */
import assert from "node:assert/strict";
import { missingServices, sidecarHealth, sleep, until } from "../sidecar/_process.ts";
import { smallStudy } from "../sidecar/_study.ts";
import { type Cluster, startCluster } from "./_cluster.ts";
import { type ClientResult, EventClient, Ledger, uploadAndAnalyse } from "./_clients.ts";
import { haproxyBinary } from "./_haproxy.ts";

const CLIENTS = 16;
const SSE_CLIENTS = 4;
/** Client `n` starts `n × STAGGER_MS` after the first, so the run spans the kill. */
const STAGGER_MS = 350;
/** The kill comes once this many clients have their Task. */
const KILL_AFTER_TASKS = 5;
const MODEL = "threshold-demo";

const missing = [
  ...missingServices(),
  ...(haproxyBinary() ? [] : ["haproxy"]),
];

Deno.test({
  name: missing.length
    ? `scale: 2 APIs behind HAProxy, 2 sidecars, 16 clients, a kill of each [skipped: ${
      missing.join(", ")
    } missing]`
    : "scale: 2 APIs behind HAProxy, 2 sidecars, 16 clients uploading and analysing while an API and a sidecar are SIGKILLed and restarted: one ImagingStudy, Task and report per study, no 5xx but HAProxy's at the kill, SSE clients see every Task completed",
  ignore: missing.length > 0,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const started = performance.now();
    let cluster: Cluster | undefined;
    const events: EventClient[] = [];
    try {
      cluster = await startCluster({ apis: 2 });
      const c = cluster;
      await Promise.all([c.startSidecar(), c.startSidecar()]);
      const ledger = new Ledger(c.lb);
      for (let i = 0; i < SSE_CLIENTS; i++) events.push(new EventClient(ledger, `sse${i + 1}`));
      const opened = Promise.all(events.map((e) => e.connected));
      await until(
        "the SSE clients to connect",
        () => Promise.race([opened.then(() => true), sleep(100)]),
        30_000,
      );
      const setupSeconds = (performance.now() - started) / 1000;

      // The kill: once enough Tasks exist, the API that serves the first SSE client and a
      // sidecar that has a job in hand (if one has one within 5 s), together; both restarted.
      let asked = 0;
      const enoughTasks = Promise.withResolvers<void>();
      const kill: {
        at?: number;
        api?: string;
        sidecar?: string;
        job?: string;
        restartedAt?: number;
        upAt?: number;
      } = {};
      const killer = (async () => {
        await enoughTasks.promise;
        const apiIndex = c.apis.findIndex((_, i) => c.apiName(i) === events[0].replica);
        const victimApi = apiIndex >= 0 ? apiIndex : 0;
        let victimSidecar = c.sidecars[0];
        const end = Date.now() + 5_000;
        search: while (Date.now() < end) {
          for (const s of c.sidecars) {
            const current = (await sidecarHealth(s).catch(() => undefined))?.jobs?.current;
            if (current) {
              victimSidecar = s;
              kill.job = current.taskId;
              break search;
            }
          }
          await sleep(20);
        }
        kill.at = Date.now();
        kill.api = c.apiName(victimApi);
        kill.sidecar = victimSidecar.name;
        c.apis[victimApi].kill("SIGKILL");
        victimSidecar.kill("SIGKILL");
        assert.equal((await c.apis[victimApi].status).signal, "SIGKILL");
        assert.equal((await victimSidecar.status).signal, "SIGKILL");
        await sleep(1_000);
        await Promise.all([c.restartApi(victimApi), c.startSidecar()]);
        kill.restartedAt = Date.now();
        await c.haproxy.waitUp([kill.api]);
        kill.upAt = Date.now();
      })();
      killer.catch(() => {}); // awaited below; not an unhandled rejection meanwhile

      const studies = Array.from({ length: CLIENTS }, (_, n) => smallStudy(9300 + n));
      const results: ClientResult[] = await Promise.all(studies.map(async (study, n) => {
        await sleep(n * STAGGER_MS);
        return await uploadAndAnalyse(ledger, n, study, {
          model: MODEL,
          parts: 3,
          timeoutMs: 120_000,
          onAsked: () => {
            if (++asked >= KILL_AFTER_TASKS) enoughTasks.resolve();
          },
        });
      }));
      await killer;
      const clientsDone = performance.now();

      // Every SSE client sees every Task completed (they may still be catching up).
      const taskIds = results.map((r) => r.taskId);
      await until(
        "every SSE client to see every Task completed",
        () => events.every((e) => taskIds.every((id) => e.saw(id, "completed"))),
        20_000,
      ).catch(() => {});
      await Promise.all(events.map((e) => e.stop()));

      // --- What the clients saw.
      for (const r of results) {
        assert.equal(r.status, "completed", `client ${r.client}: Task/${r.taskId} ${r.reason}`);
      }
      // The API never answered a 5xx; HAProxy's own 5xx and connections it closed happen only
      // around the kill (from the kill until the replica is back in rotation, and a little).
      const appErrors = ledger.failures.filter((f) => f.kind === "app");
      assert.deepEqual(appErrors, [], "a 5xx from the API");
      for (const f of ledger.failures) {
        assert.ok(
          f.at >= kill.at! - 100 && f.at <= kill.upAt! + 5_000,
          `a connection error away from the kill: ${JSON.stringify(f)}`,
        );
      }
      // --- What the service holds: one ImagingStudy, one Task and one report per study.
      for (const r of results) {
        const uid = encodeURIComponent(`urn:dicom:uid|urn:oid:${r.studyUid}`);
        const imaging = await ledger.fhir("GET", `ImagingStudy?identifier=${uid}&_total=accurate`);
        assert.equal(imaging.body.total, 1, `study of client ${r.client}`);
        assert.equal(imaging.body.entry[0].resource.numberOfInstances >= 12, true);
        // In the index (QIDO-RS): the 12 CT images and the one analysis's DICOM results, its SR
        // and its SEG when it found anything, each stored once even when its job was redelivered
        // after a kill. (The ImagingStudy catches up with them within its sync's staleness.)
        const qido = await ledger.fetch(`/dicomweb/studies/${r.studyUid}/series`, {
          headers: { accept: "application/dicom+json" },
        });
        const series = (await qido.json()) as Record<string, { Value: (string | number)[] }>[];
        const byModality = series.map((s) => `${s["00080060"].Value[0]}×${s["00201209"].Value[0]}`)
          .sort();
        assert.ok(
          ["CT×12,SR×1", "CT×12,SEG×1,SR×1"].includes(byModality.join(",")),
          `series of client ${r.client}'s study: ${byModality}`,
        );
        const focus = `ImagingStudy/${r.imagingStudyId}`;
        const tasks = await ledger.fhir("GET", `Task?focus=${focus}&_total=accurate`);
        assert.deepEqual(
          tasks.body.entry.map((e: { resource: { id: string; status: string } }) => [
            e.resource.id,
            e.resource.status,
          ]),
          [[r.taskId, "completed"]],
          `Tasks of ${focus}`,
        );
        const reports = await ledger.fhir(
          "GET",
          `DiagnosticReport?imaging-study=${focus}&_total=accurate`,
        );
        assert.equal(reports.body.total, 1, `reports of ${focus}`);
        assert.equal(reports.body.entry[0].resource.status, "final");
      }
      // --- Nothing left on the queue, nothing dead-lettered.
      const health = await sidecarHealth(c.sidecars.at(-1)!);
      assert.equal(health.queue.pending, 0, JSON.stringify(health.queue));
      assert.equal(health.queue.dead, 0, JSON.stringify(health.queue));
      // --- The SSE clients: every Task's completion, the killed replica's clients resumed.
      for (const e of events) {
        const unseen = taskIds.filter((id) => !e.saw(id, "completed"));
        if (unseen.length) {
          for (const id of unseen) {
            const history = await ledger.fhir("GET", `Task/${id}/_history`);
            console.error(
              `${e.name} missed Task/${id}: saw ${e.seqs.get(id)}; history ${
                history.body.entry.map((
                  x: {
                    resource: { meta: { versionId: string; lastUpdated: string }; status: string };
                  },
                ) =>
                  `${x.resource.meta.versionId}:${x.resource.status}@${x.resource.meta.lastUpdated}`
                )
              }; connections ${e.log.join(" | ")}; ends ${e.ends.join(" | ")}; kill at ${
                new Date(kill.at!).toISOString()
              }`,
            );
          }
        }
        assert.deepEqual(unseen, [], `${e.name} (streams on ${e.connections}) did not see`);
      }
      assert.ok(
        events[0].connections.length >= 2 && events[0].connections[0] === kill.api,
        `the first SSE client was on ${kill.api} and resumed: ${events[0].connections}`,
      );
      assert.ok(Object.keys(ledger.servedBy).length === 2, JSON.stringify(ledger.servedBy));

      const lbErrors = ledger.failures.map((f) =>
        `${f.status ?? "connection closed"} ${f.method} ${f.path.split("?")[0]}`
      );
      const reconnects = events.reduce((n, e) => n + e.connections.length - 1, 0);
      console.log(
        `scale: ${CLIENTS} studies analysed, ${ledger.requests} requests through HAProxy ` +
          `(${
            Object.entries(ledger.servedBy).map(([k, v]) => `${k} ${v}`).join(", ")
          }); killed ${kill.api} and ${kill.sidecar}` +
          `${kill.job ? ` (Task/${kill.job} in hand)` : " (idle)"} after ${KILL_AFTER_TASKS} ` +
          `Tasks, ${kill.api} ready again ${
            ((kill.restartedAt! - kill.at!) / 1000).toFixed(1)
          } s after the kill; ${ledger.failures.length} connection errors at the kill` +
          `${lbErrors.length ? ` [${lbErrors.join("; ")}]` : ""}; ${reconnects} SSE ` +
          `reconnects; clients ${((clientsDone - started) / 1000 - setupSeconds).toFixed(1)} s, ` +
          `set-up ${setupSeconds.toFixed(1)} s, total ${
            ((performance.now() - started) / 1000).toFixed(1)
          } s`,
      );
    } catch (e) {
      if (cluster) console.error(cluster.tails(30));
      throw e;
    } finally {
      await Promise.all(events.map((e) => e.stop().catch(() => {})));
      await cluster?.close();
    }
  },
});
