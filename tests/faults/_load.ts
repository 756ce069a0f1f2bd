/**
 * @module Client load for the fault tests, and what they check afterwards: workers that create
 * Patients, read one, store instances with STOW-RS and retrieve stored ones with WADO-RS, each
 * request timed and its status kept; a readiness watcher; the figures of a fault (requests failed,
 * seconds to recover, the slowest request); and the checks that every acknowledged write is there.
 */
import assert from "node:assert/strict";
import { encodeMultipartRelated } from "../../dicom/synth/stow.ts";
import { fhir, sleep } from "../sidecar/_process.ts";

export type Kind = "fhir-write" | "fhir-read" | "fhir-transaction" | "stow" | "wado" | "analyze";

export interface Sample {
  kind: Kind;
  /** ms since the load started */
  start: number;
  end: number;
  /** HTTP status, or 0 when the request got no answer (a dropped connection, the timeout). */
  status: number;
  error?: string;
}

export interface Load {
  samples: Sample[];
  patients: string[];
  /** SOP Instance UIDs acknowledged by STOW-RS (200). */
  sops: string[];
  /** Tasks `$analyze` accepted (202): each must complete once a sidecar runs. */
  tasks: string[];
  /** ms since the load started. */
  now(): number;
  stop(): Promise<void>;
}

/** One instance per STOW request, taken in turn from `instances` (all of `series`). */
export function startLoad(
  origin: string,
  options: {
    kinds: Kind[];
    seedPatient: string;
    /** The ImagingStudy `analyze` asks `$analyze` of (with the model `threshold-demo`). */
    analyzeStudy?: string;
    instances?: Uint8Array[];
    series?: { studyUid: string; seriesUid: string };
  },
): Load {
  const t0 = performance.now();
  const now = () => performance.now() - t0;
  const samples: Sample[] = [];
  const patients: string[] = [];
  const sops: string[] = [];
  const tasks: string[] = [];
  let next = 0;
  let asked = 0;
  let stopped = false;
  const timed = async (kind: Kind, work: () => Promise<number>) => {
    const start = now();
    let status = 0;
    let error: string | undefined;
    try {
      status = await work();
    } catch (e) {
      error = String(e);
    }
    samples.push({ kind, start, end: now(), status, ...(error ? { error } : {}) });
  };
  const once: Record<Kind, () => Promise<void>> = {
    "fhir-write": () =>
      timed("fhir-write", async () => {
        const r = await fhir(origin, "POST", "Patient", {
          resourceType: "Patient",
          name: [{ family: "Fault", given: [String(samples.length)] }],
        });
        if (r.status === 201) patients.push(r.body.id);
        return r.status;
      }),
    "fhir-transaction": () =>
      timed("fhir-transaction", async () => {
        // A Patient and an Observation about it, in one transaction (a urn:uuid reference).
        const r = await fhir(origin, "POST", "", {
          resourceType: "Bundle",
          type: "transaction",
          entry: [
            {
              fullUrl: "urn:uuid:8e4f6b36-0c39-4a71-9a34-64a0f0bb0a01",
              resource: { resourceType: "Patient", name: [{ family: "Transaction" }] },
              request: { method: "POST", url: "Patient" },
            },
            {
              resource: {
                resourceType: "Observation",
                status: "final",
                code: { text: "fault test" },
                subject: { reference: "urn:uuid:8e4f6b36-0c39-4a71-9a34-64a0f0bb0a01" },
              },
              request: { method: "POST", url: "Observation" },
            },
          ],
        });
        if (r.status === 200) {
          patients.push(String(r.body.entry[0].response.location).split("/")[1]);
        }
        return r.status;
      }),
    analyze: async () => {
      // A new threshold each time: a new analysis (the same one would answer its Task without
      // the queue), two a second.
      const threshold = 0.2 + 0.0001 * asked++;
      await timed("analyze", async () => {
        const r = await fhir(origin, "POST", `ImagingStudy/${options.analyzeStudy}/$analyze`, {
          resourceType: "Parameters",
          parameter: [
            { name: "model", valueString: "threshold-demo" },
            { name: "threshold", valueDecimal: threshold },
          ],
        });
        if (r.status === 202) tasks.push(r.body.id);
        return r.status;
      });
      await sleep(500);
    },
    "fhir-read": () =>
      timed(
        "fhir-read",
        async () => (await fhir(origin, "GET", `Patient/${options.seedPatient}`)).status,
      ),
    stow: async () => {
      const instances = options.instances ?? [];
      if (next >= instances.length) return void await sleep(100);
      const index = next++;
      await timed("stow", async () => {
        const { contentType, body } = encodeMultipartRelated([instances[index]]);
        const r = await fetch(`${origin}/dicomweb/studies`, {
          method: "POST",
          headers: { "Content-Type": contentType, Accept: "application/dicom+json" },
          body,
          signal: AbortSignal.timeout(90_000),
        });
        const json = await r.json().catch(() => ({}));
        if (r.status === 200) sops.push(json["00081199"].Value[0]["00081155"].Value[0]);
        return r.status;
      });
    },
    wado: async () => {
      if (!sops.length) return void await sleep(100);
      const sop = sops[Math.floor(Math.random() * sops.length)];
      await timed("wado", async () => {
        const { studyUid, seriesUid } = options.series!;
        const r = await fetch(
          `${origin}/dicomweb/studies/${studyUid}/series/${seriesUid}/instances/${sop}`,
          {
            signal: AbortSignal.timeout(90_000),
            headers: { Accept: "multipart/related; type=application/dicom" },
          },
        );
        await r.body?.cancel();
        return r.status;
      });
    },
  };
  const workers = options.kinds.map(async (kind) => {
    while (!stopped) {
      await once[kind]();
      await sleep(20);
    }
  });
  return {
    samples,
    patients,
    sops,
    tasks,
    now,
    async stop() {
      stopped = true;
      await Promise.all(workers);
    },
  };
}

/** Polls `/health/ready` every 250 ms: when it first went 503, and when it was 200 again. */
export function watchReadiness(origin: string, now: () => number) {
  const seen: { t: number; status: number }[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const t = now();
      const status = await fetch(`${origin}/health/ready`, { signal: AbortSignal.timeout(10_000) })
        .then(async (r) => {
          await r.body?.cancel();
          return r.status;
        }).catch(() => 0);
      seen.push({ t, status });
      await sleep(250);
    }
  })();
  return {
    seen,
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

export interface FaultFigures {
  fault: string;
  /** From the fault's start to its end (the server back or resumed). */
  faultSeconds: number;
  requests: number;
  failed: number;
  statuses: Record<string, number>;
  /** From the end of the fault (the server back or resumed) to the last failed request's answer. */
  recoverSeconds: number;
  slowestSeconds: number;
  /** From the fault's start until readiness answered 503 (null: it never did). */
  notReadyAfterSeconds: number | null;
  /** From the end of the fault until readiness answered 200 again. */
  readyAgainSeconds: number | null;
}

export function figures(
  fault: string,
  samples: Sample[],
  window: { from: number; to: number },
  ready?: { t: number; status: number }[],
): FaultFigures {
  const statuses: Record<string, number> = {};
  for (const s of samples) statuses[s.status] = (statuses[s.status] ?? 0) + 1;
  const failed = samples.filter((s) => s.status < 200 || s.status > 299);
  const lastFailure = Math.max(window.to, ...failed.map((s) => s.end));
  const firstDown = ready?.find((r) => r.t >= window.from && r.status !== 200);
  const backUp = ready?.find((r) => r.t >= window.to && r.status === 200);
  return {
    fault,
    faultSeconds: round((window.to - window.from) / 1000),
    requests: samples.length,
    failed: failed.length,
    statuses,
    recoverSeconds: round((lastFailure - window.to) / 1000),
    slowestSeconds: round(Math.max(0, ...samples.map((s) => s.end - s.start)) / 1000),
    notReadyAfterSeconds: firstDown ? round((firstDown.t - window.from) / 1000) : null,
    readyAgainSeconds: backUp ? round((backUp.t - window.to) / 1000) : null,
  };
}

const round = (x: number) => Math.round(x * 10) / 10;

/** Every answer was a success, 503 or 507, and every request got an answer. */
export function assertAnswered(samples: Sample[]): void {
  const bad = samples.filter((s) =>
    ![503, 507].includes(s.status) && (s.status < 200 || s.status > 299)
  );
  assert.deepEqual(
    bad.slice(0, 5),
    [],
    `${bad.length} requests were answered otherwise than 2xx, 503 or 507`,
  );
}

/** Every acknowledged Patient can be read; every acknowledged instance is in its study. */
export async function assertAcknowledged(origin: string, load: Load): Promise<void> {
  for (let i = 0; i < load.patients.length; i += 100) {
    const ids = load.patients.slice(i, i + 100);
    const r = await fhir(origin, "GET", `Patient?_id=${ids.join(",")}&_count=100&_elements=id`);
    assert.equal(r.status, 200);
    assert.equal(r.body.entry?.length ?? 0, ids.length, "an acknowledged Patient is missing");
  }
}

/**
 * The study's instances by QIDO-RS: every acknowledged one is there, and each listed one's bytes
 * are retrievable (no row without its object). Answers the number of rows.
 */
export async function assertInstances(origin: string, studyUid: string, acked: string[]) {
  // QIDO-RS answers 100 rows unless asked for more: page through them all.
  const rows: Record<string, { Value: string[] }>[] = [];
  for (let offset = 0;; offset += 500) {
    const r = await fetch(
      `${origin}/dicomweb/studies/${studyUid}/instances?includefield=00080018&limit=500` +
        `&offset=${offset}`,
      { headers: { Accept: "application/dicom+json" } },
    );
    const page = r.status === 204 ? [] : await r.json();
    rows.push(...page);
    if (page.length < 500) break;
  }
  const listed = new Set<string>(
    rows.map((row: Record<string, { Value: string[] }>) => row["00080018"].Value[0]),
  );
  for (const sop of acked) assert.ok(listed.has(sop), `acknowledged instance ${sop} is missing`);
  const seriesOf = new Map<string, string>(rows.map((row: Record<string, { Value: string[] }>) => [
    row["00080018"].Value[0],
    row["0020000E"].Value[0],
  ]));
  for (const [sop, series] of seriesOf) {
    const wado = await fetch(
      `${origin}/dicomweb/studies/${studyUid}/series/${series}/instances/${sop}`,
      { headers: { Accept: "multipart/related; type=application/dicom" } },
    );
    await wado.body?.cancel();
    assert.equal(wado.status, 200, `instance ${sop} has a row but no bytes`);
  }
  return listed.size;
}

/** The figures as a Markdown table. */
export function table(rows: FaultFigures[]): string {
  const head = [
    "| fault | lasted (s) | requests | failed | answers | failures past its end (s) | slowest (s) | not ready after (s) | ready again (s) |",
    "|---|---|---|---|---|---|---|---|---|",
  ];
  return [
    ...head,
    ...rows.map((f) =>
      `| ${f.fault} | ${f.faultSeconds} | ${f.requests} | ${f.failed} | ${
        Object.entries(f.statuses).map(([k, v]) => `${k}×${v}`).join(" ")
      } | ${f.recoverSeconds} | ${f.slowestSeconds} | ${f.notReadyAfterSeconds ?? "–"} | ${
        f.readyAgainSeconds ?? "–"
      } |`
    ),
  ].join("\n");
}
