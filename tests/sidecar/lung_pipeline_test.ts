/**
 * The chest pipeline as a user meets it, on realistic synthetic chest CT (generator v2): a study
 * stored with STOW-RS, `$analyze` with the default lung model, the worker (in-process queue, and
 * for one scan the Redis queue when REDIS_URL is set) files the report. A scan without nodules gives at most
 * one finding; every finding's centre lies inside the lung mask filed with the report; a scan with
 * a 40 mm mass reports a lung mass, never a nodule over 30 mm; a 5 mm slice-thickness scan still
 * finds its nodules of 6 mm and more.
 */
import assert from "node:assert/strict";
import { gunzipSync } from "fflate";
import { createApp } from "../../app.ts";
import { loadConfig } from "../../platform/config.ts";
import { generateStudyV2 } from "../../dicom/synth/v2/ct.ts";
import { stowInstances } from "../../dicom/synth/stow.ts";
import { createServices } from "../../services.ts";
import { fhirJson, inProcess } from "../_harness.ts";
import { modelsDir, realModelInstalled, until } from "./_process.ts";

// deno-lint-ignore no-explicit-any
type Json = any;
const MASS_CODE = "309529002";

interface Scan {
  name: string;
  options: Parameters<typeof generateStudyV2>[0];
  check(r: Filed, truth: Json): void;
}

interface Filed {
  report: Json;
  findings: Json[];
  /** Lung label (0, 1, 2) at a patient point (LPS mm), from the filed lung mask. */
  lungAt(p: number[]): number;
}

const SCANS: Scan[] = [
  {
    name: "a scan without nodules gives at most one finding, inside the lungs",
    options: { seed: 7101, nodules: 0, matrix: 256, thicknessMm: 2.5 },
    check(r) {
      assert.ok(r.findings.length <= 1, JSON.stringify(r.findings.map((f) => f.note?.[0]?.text)));
      assert.match(
        r.report.conclusion,
        r.findings.length ? /1 lung nodule/ : /No lung nodules found/,
      );
    },
  },
  {
    name: "a 40 mm mass is reported as a lung mass, not a nodule",
    options: { seed: 7102, nodules: 0, mass: 40, matrix: 256, thicknessMm: 2.5 },
    check(r, truth) {
      const mass = truth.masses[0];
      const hit = r.findings.find((f) => near(f, mass.centerMm, mass.diameterMm / 2 + 5));
      assert.ok(hit, "the mass is found");
      assert.equal(hit.code.coding[0].code, MASS_CODE, JSON.stringify(hit.code));
      for (const f of r.findings) {
        if (f.code.coding[0].code !== MASS_CODE) {
          assert.ok(longAxis(f) <= 30, "a nodule over 30 mm");
        }
      }
      assert.match(r.report.conclusion, /lung mass/);
    },
  },
  {
    name: "on 5 mm slices solid nodules of 15-24 mm are found",
    options: {
      seed: 7103,
      nodules: 3,
      noduleDiameterMm: [15, 24],
      noduleTypes: ["solid"],
      matrix: 256,
      thicknessMm: 5,
    },
    check(r, truth) {
      for (const n of truth.nodules) {
        if (n.diameterMm < 6) continue;
        assert.ok(
          r.findings.some((f) => near(f, n.centerMm, Math.max(n.diameterMm / 2, 4))),
          `nodule ${n.id} (${n.diameterMm} mm, ${n.type}) not found`,
        );
      }
    },
  },
  {
    name: "on 5 mm slices solid nodules of 6-14 mm are found (the candidate stage)",
    options: {
      seed: 7104,
      nodules: 3,
      noduleDiameterMm: [6, 14],
      noduleTypes: ["solid"],
      matrix: 256,
      thicknessMm: 5,
    },
    check(r, truth) {
      for (const n of truth.nodules) {
        assert.ok(
          r.findings.some((f) => near(f, n.centerMm, Math.max(n.diameterMm / 2, 4))),
          `nodule ${n.id} (${n.diameterMm} mm, ${n.type}) not found`,
        );
      }
      assert.ok(r.findings.length <= truth.nodules.length + 2, `${r.findings.length} findings`);
    },
  },
];

const centreOf = (f: Json) =>
  ["x", "y", "z"].map((a) =>
    f.component.find((c: Json) => c.code.coding?.[0]?.code === `centre-${a}`).valueQuantity.value
  );
const longAxis = (f: Json) =>
  f.component.find((c: Json) => c.code.coding?.[0]?.code === "103339001")?.valueQuantity.value ??
    0;
const near = (f: Json, c: Json, mm: number) => {
  const p = Array.isArray(c) ? c : [c.x, c.y, c.z];
  return Math.hypot(...centreOf(f).map((v: number, a: number) => v - p[a])) <= mm;
};

for (const queue of ["memory", "redis"] as const) {
  const redisUrl = Deno.env.get("REDIS_URL");
  Deno.test({
    name: `chest pipeline (${queue} queue): STOW-RS, $analyze, report`,
    ignore: !realModelInstalled() || (queue === "redis" && !redisUrl),
    fn: async (t) => {
      const services = await createServices(loadConfig({
        PGLITE_DIR: "memory",
        OBJECT_DIR: await Deno.makeTempDir({ prefix: "objects-chest-" }),
        AUTH: "off",
        LOG_LEVEL: "error",
        INFERENCE_WORKER: "on",
        ANALYSIS_RULES: "[]",
        MODELS_DIR: await modelsDir(["lung-nodule-demo"]),
        DICOM_STABLE_SECONDS: "0",
        ...(queue === "redis"
          ? { REDIS_URL: redisUrl!, REDIS_KEY_PREFIX: `chest-${crypto.randomUUID()}` }
          : {}),
      }));
      const app = createApp(services);
      await services.startWorker((request) => app.fetch(request));
      const api = inProcess(app);
      const call = (method: string, path: string, body?: unknown) =>
        fhirJson(api, method, path, body);
      const localFetch = (async (url: string | URL | Request, init?: RequestInit) =>
        await app.request(String(url), init)) as typeof fetch;
      try {
        // The Redis queue carries the same jobs: one scan (the mass) shows it end to end; the
        // four run over the in-process queue.
        for (const scan of queue === "redis" ? SCANS.slice(1, 2) : SCANS) {
          await t.step(scan.name, async () => {
            const study = generateStudyV2(scan.options);
            const stow = await stowInstances("http://local/dicomweb", study.instances, {
              fetch: localFetch,
            });
            assert.equal(stow.status, 200, JSON.stringify(stow));
            const uid = study.truth.study.studyInstanceUid;
            const imaging = await until(
              "the ImagingStudy",
              async () =>
                (await call("GET", `ImagingStudy?identifier=urn:dicom:uid|urn:oid:${uid}`)).body
                  .entry?.[0]?.resource,
            );
            const started = await call("POST", `ImagingStudy/${imaging.id}/$analyze`, {
              resourceType: "Parameters",
              parameter: [{ name: "model", valueString: "lung-nodule-demo" }],
            });
            assert.equal(started.status, 202, JSON.stringify(started.body));
            const task = await until("the Task to end", async () => {
              const tk = (await call("GET", `Task/${started.body.id}`)).body;
              return ["completed", "failed"].includes(tk.status) ? tk : undefined;
            }, 120_000);
            assert.equal(task.status, "completed", JSON.stringify(task.statusReason));
            const reportRef = task.output.find((o: Json) =>
              o.type?.text === "DiagnosticReport"
            )
              .valueReference.reference;
            const report = (await call("GET", reportRef)).body;
            const findings: Json[] = [];
            for (const ref of report.result) {
              const obs = (await call("GET", ref.reference)).body;
              if (obs.identifier?.[0]?.value?.endsWith("#study")) continue;
              findings.push(obs);
            }
            const lungs = report.presentedForm.find((p: Json) => /Lung mask/.test(p.title));
            assert.ok(lungs, "the lung mask is filed with the report");
            const bytes = new Uint8Array(
              await (await app.request(new URL(lungs.url).pathname)).arrayBuffer(),
            );
            const lungAt = lungReader(gunzipSync(bytes));
            for (const f of findings) {
              assert.ok(
                lungAt(centreOf(f)) > 0,
                `finding centre outside the lungs: ${f.note[0].text}`,
              );
            }
            scan.check({ report, findings, lungAt }, study.truth);
          });
        }
      } finally {
        await services.close();
      }
    },
  });
}

/** The label at a patient point (LPS mm) of a NIfTI-1 uint8 volume with an sform. */
function lungReader(raw: Uint8Array): (p: number[]) => number {
  const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const dims = [1, 2, 3].map((i) => v.getInt16(40 + 2 * i, true));
  const offset = Math.round(v.getFloat32(108, true));
  const srow = [280, 296, 312].map((o) => [0, 1, 2, 3].map((i) => v.getFloat32(o + 4 * i, true)));
  // Solve RAS = S · [i j k 1] for (i, j, k): LPS → RAS flips x and y.
  const m = srow.map((r) => r.slice(0, 3));
  const det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
    m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
    m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
  const inv = [
    [
      m[1][1] * m[2][2] - m[1][2] * m[2][1],
      -(m[0][1] * m[2][2] - m[0][2] * m[2][1]),
      m[0][1] * m[1][2] - m[0][2] * m[1][1],
    ],
    [
      -(m[1][0] * m[2][2] - m[1][2] * m[2][0]),
      m[0][0] * m[2][2] - m[0][2] * m[2][0],
      -(m[0][0] * m[1][2] - m[0][2] * m[1][0]),
    ],
    [
      m[1][0] * m[2][1] - m[1][1] * m[2][0],
      -(m[0][0] * m[2][1] - m[0][1] * m[2][0]),
      m[0][0] * m[1][1] - m[0][1] * m[1][0],
    ],
  ].map((r) => r.map((x) => x / det));
  return (p) => {
    const ras = [-p[0] - srow[0][3], -p[1] - srow[1][3], p[2] - srow[2][3]];
    const [i, j, k] = inv.map((r) => Math.round(r[0] * ras[0] + r[1] * ras[1] + r[2] * ras[2]));
    if (i < 0 || j < 0 || k < 0 || i >= dims[0] || j >= dims[1] || k >= dims[2]) return 0;
    return raw[offset + (k * dims[1] + j) * dims[0] + i];
  };
}
