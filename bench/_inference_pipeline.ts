/**
 * @module One pipeline phase of the inference benchmark: a fresh API and N sidecars; the studies
 * stored over STOW-RS; one small warm-up study per sidecar analysed; then `$analyze` for every
 * study at once, timed until the last Task is completed (throughput); then one more study stored
 * and analysed alone, timed from the last STOW-RS response to its report being filed (latency).
 */
import { generateStudy } from "../dicom/synth/ct.ts";
import { parseMediaType, readMultipart } from "../dicom/codec/multipart.ts";
import { createApiClient } from "../sidecar/api_client.ts";
import { chooseSeries, createVolumeBuilder } from "../sidecar/volume.ts";
import {
  imagingStudies,
  type JobTimes,
  jobTimes,
  requestAnalysis,
  stowStudy,
  waitForTasks,
} from "./_inference_fhir.ts";
import {
  hostBusySeconds,
  type PipelineEnv,
  processCpu,
  redisStreams,
  type SidecarProcess,
  startApi,
  startSidecar,
  topProcesses,
} from "./_inference_services.ts";
import { readSidecarLog, type SidecarLog } from "./_inference_logs.ts";
import { cpuSeconds, memory } from "./_ingest_measure.ts";

export interface Study {
  uid: string;
  instances: Uint8Array[];
}

export interface PhaseOptions {
  sidecars: number;
  model: string;
  studies: Study[];
  warmup: Study[];
  latency: Study;
  slices: number;
  stowBatch: number;
  timeoutMs: number;
  /** Waits for a quiet host before a measured part; answers the idle % it saw. */
  quiet: () => Promise<number>;
}

export interface PhaseResult {
  sidecars: number;
  uploadSeconds: number;
  idleBefore: number;
  /** From the first `$analyze` request to the last Task's completing write. */
  seconds: number;
  /** Until the last 202 of the `$analyze` requests. */
  analyzeRequestsMs: number;
  jobs: JobTimes[];
  /** Time the bench saw the last Task ended (polling every 250 ms). */
  observedSeconds: number;
  cpu: { api: number; sidecars: number[]; bench: number; host: number };
  /** The processes other than the API, the sidecars and the bench that used the most CPU. */
  others: { pid: number; cmd: string; cpu: number }[];
  sidecarPeakMiB: number[];
  jobsPerSidecar: number[];
  latency: LatencyResult;
  logs: SidecarLog[];
  logFiles: { api: string; sidecars: string[] };
  apiErrors: string[];
  redisAfter: Record<string, number>;
  sidecarExit: number[];
}

export interface LatencyResult {
  idleBefore: number;
  /** Wall time of storing the study (not part of the latency). */
  uploadSeconds: number;
  /** From the last STOW-RS response: the ImagingStudy found and `$analyze` answered 202. */
  analyzeMs: number;
  times: JobTimes;
  /** From the last STOW-RS response to the report's filing write (Task.meta.lastUpdated). */
  toFiledMs: number;
  /** … to the bench seeing the Task completed (polling every 50 ms). */
  toObservedMs: number;
  /** The sidecar's fetch of this study (QIDO-RS, WADO-RS, multipart), from the bench after. */
  fetchMs: number;
  /** … and the decode of what it fetched (createVolumeBuilder), from the bench after. */
  decodeMs: number;
  /** The API's and sidecar's CPU seconds during this one job. */
  cpu: { api: number; sidecars: number };
  /** Other processes that used the most CPU during it. */
  others: { pid: number; cmd: string; cpu: number }[];
}

/** Generates the seeded studies of a phase (not timed). */
export function makeStudies(seed: number, count: number, slices: number, size: number): Study[] {
  return Array.from({ length: count }, (_, i) => {
    const s = generateStudy({ seed: seed + i, slices, rows: size, cols: size });
    return { uid: s.study.studyInstanceUid, instances: s.instances };
  });
}

async function analyseAll(
  base: string,
  studies: Study[],
  model: string,
  timeoutMs: number,
  pollMs: number,
) {
  const ids = await imagingStudies(base);
  const studyIds = studies.map((s) => {
    const id = ids.get(s.uid);
    if (!id) throw new Error(`No ImagingStudy for study ${s.uid}`);
    return id;
  });
  const t0 = Date.now();
  const tasks = await Promise.all(studyIds.map((id) => requestAnalysis(base, id, model)));
  const requestsMs = Date.now() - t0;
  const seen = new Map<string, number>();
  const ended = await waitForTasks(base, tasks.map((t) => t.id!), { pollMs, timeoutMs, seen });
  const jobs = await Promise.all([...ended.values()].map((t) => jobTimes(base, t)));
  return { t0, requestsMs, jobs, observed: Math.max(...seen.values()) };
}

export async function runPhase(env: PipelineEnv, opts: PhaseOptions): Promise<PhaseResult> {
  const api = await startApi(env);
  const sidecars: SidecarProcess[] = [];
  const dicomweb = `${api.origin}/dicomweb`;
  const base = api.server.base;
  try {
    console.log(`  API pid ${api.server.pid} at ${api.origin} (log ${api.server.logFile})`);
    const t = performance.now();
    for (const s of opts.studies) await stowStudy(dicomweb, s.instances, opts.stowBatch);
    for (const s of opts.warmup) await stowStudy(dicomweb, s.instances, opts.stowBatch);
    const uploadSeconds = (performance.now() - t) / 1000;
    console.log(
      `  stored ${opts.studies.length} + ${opts.warmup.length} (warm-up) studies in ` +
        `${uploadSeconds.toFixed(1)} s`,
    );
    for (let i = 0; i < opts.sidecars; i++) {
      const threads = env.threads ||
        Math.max(1, Math.floor(navigator.hardwareConcurrency / opts.sidecars));
      const s = await startSidecar(api.origin, env, threads);
      sidecars.push(s);
      const h = await s.health();
      console.log(
        `  sidecar ${i + 1}: pid ${s.pid}, provider ${
          JSON.stringify(h.provider)
        }, log ${s.logFile}`,
      );
    }
    // One small study per sidecar first: sessions, connections and caches warm, as in service.
    await analyseAll(base, opts.warmup, opts.model, opts.timeoutMs, 250);
    const idleBefore = await opts.quiet();
    const pids = { api: api.server.pid, sidecars: sidecars.map((s) => s.pid) };
    const doneBefore = await Promise.all(sidecars.map(async (s) => (await s.health()).jobs?.done));
    const procs0 = await processCpu();
    const cpu0 = await cpuOf(pids);
    const run = await analyseAll(base, opts.studies, opts.model, opts.timeoutMs, 250);
    const cpu1 = await cpuOf(pids);
    const others = topProcesses(procs0, await processCpu(), [
      pids.api,
      ...pids.sidecars,
      Deno.pid,
    ], 6);
    const filed = Math.max(...run.jobs.map((j) => j.filed));
    const doneAfter = await Promise.all(sidecars.map(async (s) => (await s.health()).jobs?.done));
    console.log(
      `  throughput: ${run.jobs.length} jobs in ${((filed - run.t0) / 1000).toFixed(1)} s ` +
        `(host ${idleBefore.toFixed(0)}% idle before)`,
    );

    const latency = await measureLatency(base, dicomweb, api.origin, opts, pids);
    console.log(
      `  latency: ${(latency.toFiledMs / 1000).toFixed(2)} s from the last STOW-RS response to ` +
        `the report filed`,
    );
    const apiErrors = (await Deno.readTextFile(api.server.logFile).catch(() => "")).split("\n")
      .filter((l) => l.includes('"level":"error"'));
    const redisAfter = await redisStreams(env.redisUrl).catch(() => ({}));
    const peaks = await Promise.all(sidecars.map((s) => memory(s.pid)));
    const logFiles = sidecars.map((s) => s.logFile);
    const sidecarExit: number[] = [];
    for (const s of sidecars.splice(0)) sidecarExit.push(await s.stop());
    const logs = await Promise.all(logFiles.map((f) => readSidecarLog(f)));
    return {
      sidecars: opts.sidecars,
      uploadSeconds,
      idleBefore,
      seconds: (filed - run.t0) / 1000,
      analyzeRequestsMs: run.requestsMs,
      jobs: run.jobs,
      observedSeconds: (run.observed - run.t0) / 1000,
      cpu: {
        api: cpu1.api - cpu0.api,
        sidecars: cpu1.sidecars.map((c, i) => c - cpu0.sidecars[i]),
        bench: cpu1.bench - cpu0.bench,
        host: cpu1.host - cpu0.host,
      },
      others,
      sidecarPeakMiB: peaks.map((p) => p.peakMiB),
      jobsPerSidecar: doneAfter.map((d, i) => (d ?? NaN) - (doneBefore[i] ?? NaN)),
      latency,
      logs,
      logFiles: { api: api.server.logFile, sidecars: logFiles },
      apiErrors,
      redisAfter,
      sidecarExit,
    };
  } finally {
    for (const s of sidecars) await s.stop().catch(() => {});
    await api.stop();
  }
}

interface Pids {
  api: number;
  sidecars: number[];
}

async function cpuOf(pids: Pids) {
  return {
    api: await cpuSeconds(pids.api),
    sidecars: await Promise.all(pids.sidecars.map((p) => cpuSeconds(p))),
    bench: await cpuSeconds(Deno.pid),
    host: await hostBusySeconds(),
  };
}

/** One study alone: stored, then analysed at once; timed from the last STOW-RS response. */
async function measureLatency(
  base: string,
  dicomweb: string,
  origin: string,
  opts: PhaseOptions,
  pids: Pids,
): Promise<LatencyResult> {
  const idleBefore = await opts.quiet();
  const t = performance.now();
  await stowStudy(dicomweb, opts.latency.instances, opts.stowBatch);
  const stowed = Date.now();
  const uploadSeconds = (performance.now() - t) / 1000;
  const procs0 = await processCpu();
  const cpu0 = await cpuOf(pids);
  const id = (await imagingStudies(base)).get(opts.latency.uid);
  if (!id) throw new Error(`No ImagingStudy for study ${opts.latency.uid}`);
  const task = await requestAnalysis(base, id, opts.model);
  const analyzeMs = Date.now() - stowed;
  const seen = new Map<string, number>();
  const ended = await waitForTasks(base, [task.id!], {
    pollMs: 50,
    timeoutMs: opts.timeoutMs,
    seen,
  });
  const cpu1 = await cpuOf(pids);
  const others = topProcesses(procs0, await processCpu(), [pids.api, ...pids.sidecars, Deno.pid]);
  const times = await jobTimes(base, ended.get(task.id!)!);
  const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);
  const { fetchMs, decodeMs } = await fetchAndDecode(origin, opts.latency.uid);
  return {
    idleBefore,
    uploadSeconds,
    analyzeMs,
    times,
    toFiledMs: times.filed - stowed,
    toObservedMs: seen.get(task.id!)! - stowed,
    fetchMs,
    decodeMs,
    cpu: { api: cpu1.api - cpu0.api, sidecars: sum(cpu1.sidecars) - sum(cpu0.sidecars) },
    others,
  };
}

/** The sidecar's `loadStudyVolume`, from the bench: the fetch and the decode timed apart. */
async function fetchAndDecode(origin: string, uid: string) {
  const api = createApiClient({ baseUrl: origin, token: "" });
  const f = performance.now();
  const { seriesInstanceUid } = await chooseSeries(api, uid, "CT");
  const res = await api.request(`dicomweb/studies/${uid}/series/${seriesInstanceUid}`, {
    headers: { Accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' },
  });
  const { params } = parseMediaType(res.headers.get("content-type") ?? "");
  if (!res.ok || !res.body || !params.boundary) throw new Error(`WADO-RS answered ${res.status}`);
  const parts: Uint8Array[] = [];
  const limits = { maxPartBytes: 2 ** 31, maxTotalBytes: Number.MAX_SAFE_INTEGER };
  for await (const part of readMultipart(res.body, params.boundary, limits)) parts.push(part.body);
  const fetchMs = performance.now() - f;
  const d = performance.now();
  const builder = createVolumeBuilder({ seriesInstanceUid });
  for (const p of parts) builder.add(p);
  builder.finish();
  return { fetchMs, decodeMs: performance.now() - d };
}
