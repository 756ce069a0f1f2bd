// deno-lint-ignore-file no-explicit-any
/**
 * @module The imaging order workflow (analysis/order_workflow.ts) and the Provenance of AI results
 * (sidecar/result_provenance.ts): an AI-analysis ServiceRequest starts exactly one analysis, whose
 * Task and DiagnosticReport are `basedOn` it; one Provenance targets the report and every
 * Observation; an order that names no study is answered by a rejected Task; a revoked order
 * cancels a Task not started; orders written while no listener ran are found by the sweep; two
 * replicas seeing the same order make one Task; `$analyze` without an order still works and files
 * a Provenance too.
 */
import assert from "node:assert/strict";
import { createApp } from "../../app.ts";
import { loadConfig } from "../../platform/config.ts";
import { stowInstances } from "../../dicom/synth/stow.ts";
import { createServices, type Services } from "../../services.ts";
import { fhirJson, inProcess } from "../_harness.ts";
import { modelsDir, until } from "../sidecar/_process.ts";
import { smallStudy } from "../sidecar/_study.ts";
import {
  AI_ANALYSIS_CODE,
  isAnalysisOrder,
  ORDER_TASK_SYSTEM,
  PROCEDURE_SYSTEM,
  readOrder,
} from "../../analysis/order.ts";
import { MODEL_SYSTEM } from "../../queue/model_devices.ts";
import { JOB_KEY_SYSTEM } from "../../queue/jobs.ts";

const DATABASE_URL = Deno.env.get("DATABASE_URL") ?? "";

interface Api {
  services: Services;
  call(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
  stow(seed: number): Promise<any>;
}

async function start(env: Record<string, string>, schema?: string): Promise<Api> {
  const services = await createServices(
    loadConfig({
      PGLITE_DIR: "memory",
      OBJECT_DIR: await Deno.makeTempDir({ prefix: "objects-order-" }),
      AUTH: "off",
      LOG_LEVEL: "error",
      ANALYSIS_RULES: "[]",
      INFERENCE_PROVIDERS: "cpu",
      DICOM_STABLE_SECONDS: "0",
      CHANGE_FEED_INTERVAL_MS: "50",
      ...env,
    }),
    schema ? { schema } : {},
  );
  const app = createApp(services);
  await services.startWorker((request) => app.fetch(request));
  const api = inProcess(app);
  const call = (method: string, path: string, body?: unknown) => fhirJson(api, method, path, body);
  return {
    services,
    call,
    async stow(seed: number) {
      const s = smallStudy(seed);
      const stow = await stowInstances("http://local/dicomweb", s.instances, {
        fetch: (async (url: string | URL | Request, init?: RequestInit) =>
          await app.request(String(url), init)) as typeof fetch,
      });
      assert.equal(stow.status, 200);
      const uid = s.plan.study.studyInstanceUid;
      return await until(
        "the ImagingStudy",
        async () =>
          (await call("GET", `ImagingStudy?identifier=urn:dicom:uid|urn:oid:${uid}`)).body
            .entry?.[0]?.resource,
      );
    },
  };
}

function order(study: { id?: string; subject?: { reference: string } }, extra: any = {}) {
  return {
    resourceType: "ServiceRequest",
    status: "active",
    intent: "order",
    code: {
      coding: [
        { system: PROCEDURE_SYSTEM, code: AI_ANALYSIS_CODE, display: "AI analysis" },
        { system: MODEL_SYSTEM, code: "threshold-demo" },
      ],
    },
    subject: study.subject,
    supportingInfo: [{ reference: `ImagingStudy/${study.id}` }],
    ...extra,
  };
}

async function post(api: Api, resource: any): Promise<any> {
  const made = await api.call("POST", resource.resourceType, resource);
  assert.equal(made.status, 201, JSON.stringify(made.body));
  return made.body;
}

/** The one Task that answers the order, once it has one with a status in `statuses`. */
function orderTask(api: Api, orderId: string, statuses: string[]): Promise<any> {
  return until(`the Task of ServiceRequest/${orderId} (${statuses})`, async () => {
    const found = await api.call("GET", `Task?identifier=${ORDER_TASK_SYSTEM}|${orderId}`);
    const task = found.body.entry?.[0]?.resource;
    if (task?.status === "failed") assert.fail(JSON.stringify(task));
    return statuses.includes(task?.status) ? task : undefined;
  }, 60_000);
}

async function total(api: Api, query: string): Promise<number> {
  const found = await api.call("GET", `${query}&_summary=count`);
  assert.equal(found.status, 200, JSON.stringify(found.body));
  return found.body.total;
}

Deno.test({
  name: "an order starts one analysis: Task and report basedOn it, a Provenance for the results",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const api = await start({
      MODELS_DIR: await modelsDir(["threshold-demo"]),
      ORGANIZATION_NAME: "Radiology AI, Example Hospital",
      ORGANIZATION_ID: "example-hospital-ai",
    });
    try {
      const study = await api.stow(301);
      const doctor = await post(api, {
        resourceType: "Practitioner",
        name: [{ family: "Placer", given: ["Ada"] }],
      });
      const sr = await post(
        api,
        order(study, {
          requester: { reference: `Practitioner/${doctor.id}` },
          performer: [{ reference: `Practitioner/${doctor.id}` }],
          priority: "stat",
        }),
      );
      const task = await orderTask(api, sr.id, ["completed"]);
      assert.deepEqual(task.basedOn, [{ reference: `ServiceRequest/${sr.id}` }]);
      assert.equal(task.focus.reference, `ImagingStudy/${study.id}`);
      assert.equal(task.for.reference, study.subject.reference);
      assert.equal(task.requester.reference, `Practitioner/${doctor.id}`);
      assert.equal(task.priority, "stat");

      // The same order written again (a new version), and the sweep: no second analysis.
      await api.call("PUT", `ServiceRequest/${sr.id}`, { ...sr, note: [{ text: "again" }] });
      await api.services.changes.caughtUp();
      await api.services.analysis.orders.idle();
      await api.services.analysis.orders.sweep();
      assert.equal(await total(api, `Task?based-on=ServiceRequest/${sr.id}`), 1);
      assert.equal(await total(api, `DiagnosticReport?based-on=ServiceRequest/${sr.id}`), 1);

      const reportRef = task.output.find((o: any) => o.type.text === "DiagnosticReport")
        .valueReference.reference;
      const report = (await api.call("GET", reportRef)).body;
      assert.deepEqual(report.basedOn, [{ reference: `ServiceRequest/${sr.id}` }]);
      const org = (await api.call(
        "GET",
        "Organization?identifier=urn:imaging-ai:organization|example-hospital-ai",
      )).body.entry[0].resource;
      assert.equal(org.name, "Radiology AI, Example Hospital");
      assert.deepEqual(
        report.performer.map((p: any) => p.reference).sort(),
        [
          `Organization/${org.id}`,
          `Practitioner/${doctor.id}`,
        ].sort(),
      );
      assert.equal(report.meta.security[0].code, "AIAST");
      const observations = await Promise.all(
        report.result.map(async (r: any) => (await api.call("GET", r.reference)).body),
      );
      const device = observations[0].device.reference;
      assert.match(device, /^Device\//);
      for (const o of observations) {
        assert.deepEqual(o.basedOn, [{ reference: `ServiceRequest/${sr.id}` }]);
        assert.equal(o.device.reference, device);
      }

      const provenances = (await api.call("GET", `Provenance?target=${reportRef}`)).body.entry;
      assert.equal(provenances.length, 1);
      const p = provenances[0].resource;
      const targets = p.target.map((t: any) => t.reference);
      assert.ok(targets.includes(reportRef));
      for (const r of report.result) assert.ok(targets.includes(r.reference), r.reference);
      assert.ok(p.recorded && p.occurredPeriod.start && p.occurredPeriod.end);
      assert.equal(p.activity.coding[0].code, "CREATE");
      assert.equal(p.agent[0].type.coding[0].code, "author");
      assert.equal(p.agent[0].who.reference, device);
      assert.equal(p.agent[0].onBehalfOf.reference, `Organization/${org.id}`);
      assert.deepEqual(p.entity, [
        { role: "source", what: { reference: `ImagingStudy/${study.id}` } },
        { role: "source", what: { reference: `ServiceRequest/${sr.id}` } },
      ]);

      // An order whose study does not exist, one that names no study: rejected, with the reason.
      const missing = await post(api, {
        ...order(study),
        supportingInfo: [{ reference: "ImagingStudy/does-not-exist" }],
      });
      const rejected = await orderTask(api, missing.id, ["rejected"]);
      assert.match(rejected.statusReason.text, /ImagingStudy\/does-not-exist does not exist/);
      assert.deepEqual(rejected.basedOn, [{ reference: `ServiceRequest/${missing.id}` }]);
      const notAStudy = await post(api, {
        ...order(study),
        supportingInfo: [{ reference: study.subject.reference }],
      });
      assert.match(
        (await orderTask(api, notAStudy.id, ["rejected"])).statusReason.text,
        /not an ImagingStudy/,
      );
      const stranger = await post(api, { resourceType: "Patient", name: [{ family: "Other" }] });
      const wrongPatient = await post(api, {
        ...order(study),
        subject: { reference: `Patient/${stranger.id}` },
      });
      assert.match(
        (await orderTask(api, wrongPatient.id, ["rejected"])).statusReason.text,
        new RegExp(`is for Patient/${stranger.id}`),
      );
      // Another service's ServiceRequest is none of this service's business.
      const other = await post(api, {
        ...order(study),
        code: { coding: [{ system: "http://loinc.org", code: "18748-4" }] },
      });
      await api.services.changes.caughtUp();
      await api.services.analysis.orders.idle();
      assert.equal(await total(api, `Task?based-on=ServiceRequest/${other.id}`), 0);

      // `$analyze` without an order: as before, and a Provenance without the order.
      const asked = await api.call("POST", `ImagingStudy/${study.id}/$analyze`, {
        resourceType: "Parameters",
        parameter: [{ name: "model", valueString: "threshold-demo" }],
      });
      assert.equal(asked.status, 202, JSON.stringify(asked.body));
      assert.equal(asked.body.basedOn, undefined);
      const done = await until("the $analyze Task", async () => {
        const t = (await api.call("GET", `Task/${asked.body.id}`)).body;
        return t.status === "completed" ? t : undefined;
      }, 60_000);
      const plainRef = done.output.find((o: any) => o.type.text === "DiagnosticReport")
        .valueReference.reference;
      assert.notEqual(plainRef, reportRef);
      const plain = (await api.call("GET", plainRef)).body;
      assert.equal(plain.basedOn, undefined);
      assert.deepEqual(plain.performer, [{ reference: `Organization/${org.id}` }]);
      const plainProvenance = (await api.call("GET", `Provenance?target=${plainRef}`)).body
        .entry[0].resource;
      // It supersedes the order's results document: a revision of it, in a Provenance of its own;
      // the order's Provenance is left as it was.
      assert.deepEqual(plainProvenance.entity.map((e: any) => e.role), ["source", "revision"]);
      assert.equal(plainProvenance.entity[0].what.reference, `ImagingStudy/${study.id}`);
      const revised = plainProvenance.entity[1].what.reference;
      assert.match(revised, /^DocumentReference\//);
      assert.ok(targets.includes(revised), "the order's results document, superseded");
      assert.equal((await api.call("GET", revised)).body.status, "superseded");
      assert.equal((await api.call("GET", `Provenance/${p.id}`)).body.meta.versionId, "1");
      const key = done.identifier.find((i: any) => i.system === JOB_KEY_SYSTEM).value;
      assert.equal(
        await total(
          api,
          `Provenance?_tag=${encodeURIComponent(`${JOB_KEY_SYSTEM}|${key}#provenance`)}`,
        ),
        1,
      );
    } finally {
      await api.services.close();
    }
  },
});

Deno.test({
  name:
    "a revoked order cancels its Task not started; orders written while none listened are swept",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const api = await start({
      MODELS_DIR: await modelsDir(["threshold-demo"]),
      INFERENCE_WORKER: "off", // jobs stay queued: their Tasks stay `accepted`
    });
    const orders = api.services.analysis.orders;
    const queued = async () => (await api.services.analysis.queue.depth()).routine;
    try {
      const study = await api.stow(302);
      const sr = await post(api, order(study));
      const task = await orderTask(api, sr.id, ["accepted"]);
      assert.equal(await queued(), 1);
      await api.call("PUT", `ServiceRequest/${sr.id}`, { ...sr, status: "revoked" });
      const cancelled = await orderTask(api, sr.id, ["cancelled"]);
      assert.equal(cancelled.id, task.id);
      assert.match(cancelled.statusReason.text, /revoked/);

      // As if no API had run: the listener stopped, an order written, nothing happens ...
      orders.close();
      const late = await post(api, order(study));
      await api.services.changes.caughtUp();
      assert.equal(await total(api, `Task?based-on=ServiceRequest/${late.id}`), 0);
      // ... until the sweep of the next start finds it, once.
      assert.ok(await orders.sweep() >= 1);
      await orderTask(api, late.id, ["accepted"]);
      assert.equal(await queued(), 2);
      await orders.sweep();
      assert.equal(await total(api, `Task?based-on=ServiceRequest/${late.id}`), 1);
      assert.equal(await queued(), 2, "not queued twice");
      // Revoked while none listened: the sweep cancels its Task too.
      await api.call("PUT", `ServiceRequest/${late.id}`, { ...late, status: "revoked" });
      await orders.sweep();
      await orderTask(api, late.id, ["cancelled"]);
    } finally {
      await api.services.close();
    }
  },
});

Deno.test({
  name: "two replicas that see the same order make one Task and queue one job",
  ignore: !DATABASE_URL,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const schema = `t_${Date.now().toString(36)}_${crypto.randomUUID().slice(0, 8)}`;
    const env = {
      DATABASE_URL,
      MODELS_DIR: await modelsDir(["threshold-demo"]),
      INFERENCE_WORKER: "off",
    };
    const a = await start(env, schema);
    const b = await start(env, schema);
    try {
      const study = await a.stow(303);
      const sr = await post(a, order(study));
      await orderTask(a, sr.id, ["accepted"]);
      for (const api of [a, b]) {
        await api.services.changes.caughtUp();
        await api.services.analysis.orders.idle();
      }
      await Promise.all([a.services.analysis.orders.sweep(), b.services.analysis.orders.sweep()]);
      assert.equal(await total(a, `Task?based-on=ServiceRequest/${sr.id}`), 1);
      const depth = async (api: Api) => (await api.services.analysis.queue.depth()).routine;
      assert.equal((await depth(a)) + (await depth(b)), 1, "one job between the two");
    } finally {
      await b.services.close();
      await a.services.close();
      // The schema is dropped by the harness's stale-schema sweep an hour from now.
    }
  },
});

Deno.test("readOrder(): the study, the model, the priority and the performers a report may name", () => {
  const sr: any = order({ id: "s1", subject: { reference: "Patient/p1" } }, {
    priority: "urgent",
    performer: [{ reference: "Organization/o1" }, { reference: "Device/d1" }],
    reasonReference: [{ reference: "ImagingStudy/s2" }],
  });
  assert.ok(isAnalysisOrder(sr));
  assert.ok(!isAnalysisOrder({ ...sr, intent: "proposal" }));
  assert.deepEqual(readOrder(sr), {
    ok: true,
    studyId: "s1",
    model: "threshold-demo",
    priority: "stat",
    subject: "Patient/p1",
    requester: undefined,
    performers: ["Organization/o1"],
  });
  const byDetail = readOrder({
    ...sr,
    code: { coding: [sr.code.coding[0]] },
    orderDetail: [{ coding: [{ system: MODEL_SYSTEM, code: "lung-nodule-demo@2.1.0" }] }],
    supportingInfo: undefined,
    priority: "routine",
  });
  assert.ok(byDetail.ok);
  assert.equal(byDetail.model, "lung-nodule-demo@2.1.0");
  assert.equal(byDetail.studyId, "s2");
  assert.equal(byDetail.priority, "routine");
  const two = readOrder({
    ...sr,
    orderDetail: [{ coding: [{ system: MODEL_SYSTEM, code: "lung-nodule-demo" }] }],
  });
  assert.ok(!two.ok && /more than one model/.test(two.reason));
  const none = readOrder({ ...sr, supportingInfo: [], reasonReference: [] });
  assert.ok(!none.ok && /names no ImagingStudy/.test(none.reason));
});
