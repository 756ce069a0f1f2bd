/**
 * @module The inference benchmark's in-process part: raw ONNX Runtime throughput of one model
 * through the sidecar's own runner (`model_registry.ts` → `onnx_runner.ts`) on preprocessed
 * synthetic batches, and the cost of each of the sidecar's CPU stages (decode, preprocess, model,
 * map back, components, mask) on one synthetic study, timed with the sidecar's functions.
 */
import { generateStudy } from "../dicom/synth/ct.ts";
import { type LoadedModel, predictVolume } from "../sidecar/analysis.ts";
import { resolveSettings } from "../sidecar/manifest.ts";
import { closeModels, loadModels } from "../sidecar/model_registry.ts";
import { writeNiftiMask } from "../sidecar/nifti_writer.ts";
import type { ModelRunner } from "../sidecar/onnx_runner.ts";
import { segment } from "../sidecar/postprocess.ts";
import {
  type Batch,
  makeBatches,
  modelSampler,
  prepareSlices,
  type SliceSampler,
} from "../sidecar/preprocess.ts";
import { createVolumeBuilder, type Volume } from "../sidecar/volume.ts";
import { hostBusySeconds, processCpu, topProcesses } from "./_inference_services.ts";
import { cpuSeconds } from "./_ingest_measure.ts";

export interface RawResult {
  model: string;
  version: string;
  provider: string;
  /** Samples (slices) per model call: the manifest's `input.batch` (standard profile). */
  batch: number;
  inputDims: number[];
  batches: number;
  seconds: number;
  slicesPerSecond: number;
  /** batch / the median batch time: the same, less sensitive to a stray process on the host. */
  slicesPerSecondP50: number;
  msPerBatchMean: number;
  msPerBatchP50: number;
  msPerBatchP95: number;
  /** CPU seconds of this process during the measured seconds (ONNX Runtime's threads). */
  ownCpuSeconds: number;
  /** CPU seconds of every other process on the host during them: other work in the figure. */
  otherCpuSeconds: number;
  /** The other processes that used the most CPU during them. */
  others: { pid: number; cmd: string; cpu: number }[];
  /** What the runner logged while loading (provider fallbacks). */
  loadNotes: string[];
  loadSeconds: number;
}

/** Milliseconds of each stage for one study, as the sidecar's `analyze` runs them. */
export interface StageProfile {
  slices: number;
  size: number;
  /** Part 10 parse + pixels windowed and resized to the model's plane in one pass. */
  decodeMs: number;
  /** predictVolume as a whole: batching, model calls, probability maps resized to the image. */
  predictMs: number;
  /** The model calls inside predictVolume. */
  inferenceMs: number;
  segmentMs: number;
  maskMs: number;
  maskBytes: number;
  findings: number;
  /** CPU seconds of every other process on the host during both passes. */
  otherCpuSeconds: number;
}

export interface InProcessResult {
  raw: RawResult;
  stages: StageProfile;
}

export interface RawOptions {
  modelsDir: string;
  model: string;
  providers: string[];
  slices: number;
  size: number;
  warmupSeconds: number;
  seconds: number;
}

/** Generates one study, decodes it, and runs both measurements; closes the session after. */
export async function measureInProcess(
  opts: RawOptions,
  beforeMeasure: () => Promise<void>,
): Promise<InProcessResult> {
  const notes: string[] = [];
  const t0 = performance.now();
  const models = await loadModels(opts.modelsDir, opts.providers, (level, msg, data) => {
    if (level !== "debug") notes.push(`${level}: ${msg} ${data ? JSON.stringify(data) : ""}`);
  });
  const loadSeconds = (performance.now() - t0) / 1000;
  const model = models.get(opts.model);
  if (!model) {
    throw new Error(
      `Model ${opts.model} did not load from ${opts.modelsDir} (loaded: ${
        [...models.keys()].join(", ") || "none"
      }):\n${notes.join("\n")}`,
    );
  }
  try {
    const study = generateStudy({
      seed: 7000,
      slices: opts.slices,
      rows: opts.size,
      cols: opts.size,
    });
    await beforeMeasure();
    const raw = await rawThroughput(model, study.instances, opts);
    const stages = await profileStages(study.instances, model, opts);
    return { raw: { ...raw, loadNotes: notes, loadSeconds }, stages };
  } finally {
    await closeModels(models);
  }
}

function decode(instances: Uint8Array[], sampler?: SliceSampler): Volume {
  const builder = createVolumeBuilder({ sampler });
  for (const bytes of instances) builder.add(bytes);
  return builder.finish();
}

async function rawThroughput(
  model: LoadedModel,
  instances: Uint8Array[],
  opts: RawOptions,
): Promise<Omit<RawResult, "loadNotes" | "loadSeconds">> {
  const m = model.manifest;
  const batch = resolveSettings(m, "standard", undefined).batch;
  const volume = decode(instances);
  const prepared = prepareSlices(volume.data, volume.dims, m);
  // Full batches only, so every call has the same shape; cycled for as long as the run lasts.
  const batches: Batch[] = [...makeBatches(prepared, m.input.offsets, batch)]
    .filter((b) => b.slices.length === batch);
  if (!batches.length) {
    throw new Error(`--slices ${opts.slices} gives no full batch of ${batch} for the raw run`);
  }
  const names = { input: m.input.name, output: m.output.name };
  const runFor = async (seconds: number, times?: number[]) => {
    const end = performance.now() + seconds * 1000;
    let n = 0;
    const start = performance.now();
    while (performance.now() < end) {
      const b = batches[n++ % batches.length];
      const t = performance.now();
      await model.runner.run(b.data, b.dims, names);
      times?.push(performance.now() - t);
    }
    return { n, seconds: (performance.now() - start) / 1000 };
  };
  await runFor(opts.warmupSeconds);
  const times: number[] = [];
  const procs0 = await processCpu();
  const [own0, host0] = [await cpuSeconds(Deno.pid), await hostBusySeconds()];
  const { n, seconds } = await runFor(opts.seconds, times);
  const others = topProcesses(procs0, await processCpu(), [Deno.pid]);
  const ownCpuSeconds = (await cpuSeconds(Deno.pid)) - own0;
  const otherCpuSeconds = (await hostBusySeconds()) - host0 - ownCpuSeconds;
  times.sort((a, b) => a - b);
  const pick = (q: number) => times[Math.min(times.length - 1, Math.ceil(q * times.length) - 1)];
  return {
    model: m.name,
    version: m.version,
    provider: model.runner.provider,
    batch,
    inputDims: batches[0].dims,
    batches: n,
    seconds,
    slicesPerSecond: (n * batch) / seconds,
    slicesPerSecondP50: (batch * 1000) / pick(0.5),
    msPerBatchMean: times.reduce((a, b) => a + b, 0) / times.length,
    msPerBatchP50: pick(0.5),
    msPerBatchP95: pick(0.95),
    ownCpuSeconds,
    otherCpuSeconds,
    others,
  };
}

/** One pass of the sidecar's CPU stages over the study (after one warm-up pass of the model). */
async function profileStages(
  instances: Uint8Array[],
  model: LoadedModel,
  opts: RawOptions,
): Promise<StageProfile> {
  const m = model.manifest;
  const settings = resolveSettings(m, "standard", undefined);
  let inferenceMs = 0;
  const timed: LoadedModel = {
    manifest: m,
    runner: {
      ...model.runner,
      provider: model.runner.provider,
      async run(input, dims, names) {
        const t = performance.now();
        try {
          return await model.runner.run(input, dims, names);
        } finally {
          inferenceMs += performance.now() - t;
        }
      },
    } as ModelRunner,
  };
  const clock = () => performance.now();
  // Warm-up: the first calls of a session allocate; the sidecar pays that once per process.
  const sampler = modelSampler(m);
  await predictVolume(decode(instances, sampler), model, settings);
  // Two passes, each stage's faster one kept: a stray process on a shared host slows one pass.
  const passes: Omit<StageProfile, "otherCpuSeconds">[] = [];
  const host0 = await hostBusySeconds(), own0 = await cpuSeconds(Deno.pid);
  for (let pass = 0; pass < 2; pass++) {
    let t = clock();
    const volume = decode(instances, sampler);
    const decodeMs = clock() - t;
    inferenceMs = 0;
    t = clock();
    const probability = await predictVolume(volume, timed, settings);
    const predictMs = clock() - t;
    t = clock();
    const seg = segment(probability, volume, settings);
    const segmentMs = clock() - t;
    t = clock();
    const mask = await writeNiftiMask(seg, volume, {
      description: `${m.name} ${m.version} findings`,
      maxLabel: Math.min(255, seg.findings.length),
    });
    const maskMs = clock() - t;
    passes.push({
      slices: volume.dims.z,
      size: opts.size,
      decodeMs,
      predictMs,
      inferenceMs,
      segmentMs,
      maskMs,
      maskBytes: mask.length,
      findings: seg.findings.length,
    });
  }
  const otherCpuSeconds = (await hostBusySeconds()) - host0 - ((await cpuSeconds(Deno.pid)) - own0);
  const best = { ...passes[0], otherCpuSeconds };
  for (const k of STAGES) best[k] = Math.min(...passes.map((p) => p[k]));
  return best;
}

const STAGES = [
  "decodeMs",
  "predictMs",
  "inferenceMs",
  "segmentMs",
  "maskMs",
] as const;
