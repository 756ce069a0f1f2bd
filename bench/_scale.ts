/**
 * @module What `bench/scale.ts` measures with: loading synthetic FHIR resources through the API,
 * one autocannon run with every response's latency kept (autocannon reports p97.5, not p95), and
 * the CPU each kind of process used meanwhile (APIs, Postgres, HAProxy, sidecars, the bench), read
 * from /proc, so a table shows where the cores went.
 */
import autocannon from "autocannon";
import { processCpu } from "./_inference_services.ts";
import { percentile } from "./_ingest_measure.ts";
import { type Json, mulberry32, OBS_PER_PATIENT, observation, patient } from "./_synthetic.ts";

const FHIR_JSON = "application/fhir+json";

/** Loads Patients and Observations (1 : 7) in transaction Bundles; answers the Patient ids. */
export async function loadResources(
  base: string,
  total: number,
  bundleSize = 250,
  inFlight = 4,
): Promise<{ patientIds: string[]; seconds: number }> {
  const per = 1 + OBS_PER_PATIENT;
  const patients = Math.max(1, Math.round(total / per));
  const rand = mulberry32(20261125);
  const ids: string[] = [];
  const t0 = performance.now();
  const post = async (entries: Json[]): Promise<Json> => {
    const res = await fetch(base, {
      method: "POST",
      headers: { "Content-Type": FHIR_JSON, Accept: FHIR_JSON },
      body: JSON.stringify({ resourceType: "Bundle", type: "transaction", entry: entries }),
    });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`transaction: ${res.status} ${text.slice(0, 500)}`);
    return JSON.parse(text);
  };
  const batches = (make: (i: number) => Json, count: number): Json[][] =>
    Array.from(
      { length: Math.ceil(count / bundleSize) },
      (_, b) =>
        Array.from({ length: Math.min(bundleSize, count - b * bundleSize) }, (_, k) => {
          const resource = make(b * bundleSize + k);
          return { request: { method: "POST", url: resource.resourceType }, resource };
        }),
    );
  const run = async (lists: Json[][], after?: (res: Json, i: number) => void) => {
    let next = 0;
    await Promise.all(Array.from({ length: inFlight }, async () => {
      while (next < lists.length) {
        const i = next++;
        const res = await post(lists[i]);
        after?.(res, i);
      }
    }));
  };
  const patientLists = batches((i) => patient(rand, i), patients);
  await run(patientLists, (res, i) => {
    (res.entry as { response: { location: string } }[]).forEach((e, k) => {
      ids[i * bundleSize + k] = e.response.location.split("/")[1];
    });
  });
  const observations = Math.max(0, total - patients);
  await run(batches((i) => observation(rand, ids[i % patients]), observations));
  return { patientIds: ids, seconds: (performance.now() - t0) / 1000 };
}

/** Processes whose CPU a measurement reports, by kind. */
export interface Pids {
  apis: number[];
  sidecars?: number[];
  haproxy?: number;
}

/** CPU (in cores: CPU seconds ÷ wall seconds) per kind of process over a measurement. */
export interface CpuShare {
  apis: number;
  postgres: number;
  haproxy: number;
  sidecars: number;
  redis: number;
  s3: number;
  bench: number;
  other: number;
}

/** Starts counting; `stop()` answers the CPU per kind since the start. */
export async function cpuMeter(pids: Pids): Promise<{ stop(): Promise<CpuShare> }> {
  const before = await processCpu();
  const t0 = performance.now();
  return {
    async stop() {
      const after = await processCpu();
      const seconds = (performance.now() - t0) / 1000;
      const share: CpuShare = {
        apis: 0,
        postgres: 0,
        haproxy: 0,
        sidecars: 0,
        redis: 0,
        s3: 0,
        bench: 0,
        other: 0,
      };
      for (const [pid, p] of after) {
        const used = p.cpu - (before.get(pid)?.cpu ?? 0);
        if (!(used > 0)) continue;
        const kind: keyof CpuShare = pids.apis.includes(pid)
          ? "apis"
          : pids.sidecars?.includes(pid)
          ? "sidecars"
          : pid === pids.haproxy
          ? "haproxy"
          : pid === Deno.pid
          ? "bench"
          : /^postgres/.test(p.cmd)
          ? "postgres"
          : /redis-server/.test(p.cmd)
          ? "redis"
          : /radosgw|ceph-osd|ceph-mon|ceph-mgr/.test(p.cmd)
          ? "s3"
          : "other";
        share[kind] += used / seconds;
      }
      return share;
    },
  };
}

export interface Measured {
  requests: number;
  rps: number;
  p50: number;
  p95: number;
  p99: number;
  /** Non-2xx responses, errors and timeouts. */
  errors: number;
  cpu: CpuShare;
}

/** autocannon at `origin` for `seconds` with `connections`, a new path per request. */
export async function measure(
  origin: string,
  next: () => string,
  connections: number,
  seconds: number,
  pids: Pids,
): Promise<Measured> {
  const latencies: number[] = [];
  const meter = await cpuMeter(pids);
  const instance = autocannon({
    url: origin,
    connections,
    duration: seconds,
    timeout: 30,
    headers: { accept: FHIR_JSON },
    requests: [{
      method: "GET",
      setupRequest: (req: Record<string, unknown>) => ({ ...req, path: next() }),
    }],
  });
  instance.on("response", (_c: unknown, _s: number, _b: number, ms: number) => latencies.push(ms));
  const result = await instance as {
    requests: { total: number };
    non2xx: number;
    errors: number;
    timeouts: number;
    duration: number;
  };
  const cpu = await meter.stop();
  const sorted = Float64Array.from(latencies).sort();
  return {
    requests: result.requests.total,
    rps: result.requests.total / result.duration,
    p50: percentile(sorted, 0.5),
    p95: percentile(sorted, 0.95),
    p99: percentile(sorted, 0.99),
    errors: result.non2xx + result.errors + result.timeouts,
    cpu,
  };
}

/** `0.93` → `"0.93"`; NaN → `-`. */
export function fmt(n: number, digits = 1): string {
  return Number.isFinite(n) ? n.toFixed(digits) : "-";
}
