/**
 * `$analyze` and a Task whose job was never queued (its API stopped between committing the Task
 * and the enqueue): a Task still `requested` after ORPHANED_AFTER_MS is queued again on the next
 * request instead of being answered as "already running" forever; a fresh one is left alone.
 */
import assert from "node:assert/strict";
import { createApp } from "../../app.ts";
import { loadConfig } from "../../platform/config.ts";
import { stowInstances } from "../../dicom/synth/stow.ts";
import { ORPHANED_AFTER_MS } from "../../analysis/analyze.ts";
import { createServices } from "../../services.ts";
import { fhirJson, inProcess } from "../_harness.ts";
import { modelsDir, until } from "../sidecar/_process.ts";
import { smallStudy } from "../sidecar/_study.ts";

Deno.test("$analyze queues a long-`requested` Task again; a fresh one is left alone", async () => {
  const services = await createServices(loadConfig({
    PGLITE_DIR: "memory",
    OBJECT_DIR: await Deno.makeTempDir({ prefix: "objects-orphan-" }),
    AUTH: "off",
    LOG_LEVEL: "error",
    INFERENCE_WORKER: "off", // jobs stay in the queue, where the test counts them
    ANALYSIS_RULES: "[]",
    MODELS_DIR: await modelsDir(["threshold-demo"]),
    DICOM_STABLE_SECONDS: "0",
  }));
  const app = createApp(services);
  const api = inProcess(app);
  const call = (method: string, path: string, body?: unknown) => fhirJson(api, method, path, body);
  try {
    const s = smallStudy(95);
    const stow = await stowInstances("http://local/dicomweb", s.instances, {
      fetch: (async (url: string | URL | Request, init?: RequestInit) =>
        await app.request(String(url), init)) as typeof fetch,
    });
    assert.equal(stow.status, 200);
    const uid = s.plan.study.studyInstanceUid;
    const study = await until(
      "the ImagingStudy",
      async () =>
        (await call("GET", `ImagingStudy?identifier=urn:dicom:uid|urn:oid:${uid}`)).body
          .entry?.[0]?.resource,
    );
    const analyze = () =>
      call("POST", `ImagingStudy/${study.id}/$analyze`, {
        resourceType: "Parameters",
        parameter: [{ name: "model", valueString: "threshold-demo" }],
      });
    const queued = async () => (await services.analysis.queue.depth()).routine;

    const first = await analyze();
    assert.equal(first.status, 202, JSON.stringify(first.body));
    const task = first.body;
    assert.equal(task.status, "accepted");
    assert.equal(await queued(), 1);

    // As if its API had stopped after the commit: `requested`, and long ago.
    const old = new Date(Date.now() - ORPHANED_AFTER_MS - 60_000).toISOString();
    const orphan = await call("PUT", `Task/${task.id}`, {
      ...task,
      status: "requested",
      authoredOn: old,
      lastModified: old,
    });
    assert.equal(orphan.status, 200, JSON.stringify(orphan.body));
    const again = await analyze();
    assert.equal(again.status, 202, JSON.stringify(again.body));
    assert.equal(again.body.id, task.id, "the same Task, not a second one");
    assert.equal(again.body.status, "accepted");
    assert.equal(await queued(), 2, "its job queued again");

    // `requested` a moment ago: another request is queueing it right now; nothing more.
    await call("PUT", `Task/${task.id}`, {
      ...again.body,
      status: "requested",
      lastModified: new Date().toISOString(),
    });
    const fresh = await analyze();
    assert.equal(fresh.body.id, task.id);
    assert.equal(fresh.body.status, "requested");
    assert.equal(await queued(), 2);
    const tasks = await call("GET", `Task?focus=ImagingStudy/${study.id}&_summary=count`);
    assert.equal(tasks.body.total, 1);
  } finally {
    await services.close();
  }
});
