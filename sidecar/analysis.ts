/**
 * @module One job, start to end: read the Task and mark it in progress, load the study's volume
 * over WADO-RS, run the model slice batch by slice batch, find the components, upload the mask
 * (NIfTI) and the summary (JSON), and file everything as one transaction. Every step talks to
 * the API; nothing here holds a database or S3 credential.
 */
import type { Task } from "@medplum/fhirtypes";
import type { ApiClient } from "./api_client.ts";
import { ApiError, expectOk } from "./api_client.ts";
import { fatal } from "./errors.ts";
import { dicomResults, storeDicomResults } from "./dicom_results.ts";
import { buildFindingsBundle, type ResultFiles } from "./findings_bundle.ts";
import { priorResults } from "./result_documents.ts";
import { conclusionText } from "./report_text.ts";
import type { AnalysisJob } from "../queue/jobs.ts";
import type { Logger } from "../platform/log.ts";
import { type ModelManifest, resolveSettings, type RunSettings } from "./manifest.ts";
import { writeNiftiMask } from "./nifti_writer.ts";
import type { ModelRunner } from "./onnx_runner.ts";
import {
  type Finding,
  type Geometry,
  type ProbabilityGrid,
  segment,
  type Segmentation,
} from "./postprocess.ts";
import {
  flipPlanes,
  makeBatches,
  modelSampler,
  type PreparedSlices,
  prepareSlices,
  probabilityPlane,
  sliceOffsets,
  strideIndices,
} from "./preprocess.ts";
import { type LungStage, runLungStage } from "./nodules/lung_stage.ts";
import { markTaskInProgress, readTask, withFreshTask } from "./task_client.ts";
import { loadStudyVolume, type Volume } from "./volume.ts";

/** Where a job's time went, in ms: a slow step shows in the sidecar's log. */
export interface StageTimes {
  /** Task read and marked in progress. */
  task: number;
  /** QIDO-RS + WADO-RS + decode and sampling of every slice. */
  load: number;
  /** Batches through the model. */
  model: number;
  /** Components and their measures. */
  segment: number;
  /** NIfTI mask (gzip) and JSON summary made and uploaded. */
  results: number;
  /** The transaction that files the report and closes the Task. */
  file: number;
  slices: number;
}

export interface LoadedModel {
  manifest: ModelManifest;
  runner: ModelRunner;
  /** The candidate classifier's session (manifests with `postprocessing.candidates`). */
  candidates?: ModelRunner;
}

export interface AnalysisContext {
  api: ApiClient;
  models: ReadonlyMap<string, LoadedModel>;
  log: Logger;
}

export type AnalysisOutcome =
  | {
    kind: "filed";
    reportId: string;
    findings: number;
    maxProbability: number;
    ms: number;
    /** Milliseconds per step (the sidecar logs them with "job done"). */
    stages: StageTimes;
  }
  | { kind: "skipped"; reason: string };

/**
 * The model's probability of its first label for every slice of `volume`, on the model's output
 * grid (`segment` maps it onto the series' grid only where it matters). `volume.data` holds either
 * the model's input planes already (a volume built with `modelSampler`) or modality values, which
 * are windowed and resized here. With a slice stride, the planes of the slices not run are
 * interpolated linearly between their run neighbours; with flip TTA, each batch also runs
 * mirrored and the two maps are averaged.
 */
export async function predictVolume(
  volume: Pick<Volume, "data" | "dims" | "values" | "plane"> & Partial<Pick<Volume, "sliceStep">>,
  model: LoadedModel,
  settings: Pick<RunSettings, "batch" | "flipTta" | "sliceStride">,
  signal?: AbortSignal,
): Promise<ProbabilityGrid> {
  const m = model.manifest;
  const nz = volume.dims.z;
  const prepared = preparedSlices(volume, m);
  const channel = m.labels[0].outputChannel;
  const names = { input: m.input.name, output: m.output.name };
  const indices = strideIndices(nz, settings.sliceStride);
  let grid: ProbabilityGrid | undefined;
  const sliceMm = volume.sliceStep ? Math.hypot(...volume.sliceStep) : 0;
  const offsets = sliceOffsets(m.input, sliceMm);
  for (const batch of makeBatches(prepared, offsets, settings.batch, indices)) {
    signal?.throwIfAborted();
    const out = await model.runner.run(batch.data, batch.dims, names);
    if (out.dims[0] !== batch.slices.length) {
      throw new Error(
        `The model answered ${out.dims[0]} samples for a batch of ${batch.slices.length}`,
      );
    }
    const outH = out.dims[out.dims.length - 2], outW = out.dims[out.dims.length - 1];
    grid ??= { data: new Float32Array(nz * outH * outW), height: outH, width: outW, depth: nz };
    if (grid.height !== outH || grid.width !== outW) {
      throw new Error(`The model's output changed size from batch to batch`);
    }
    const mirrored = settings.flipTta
      ? await model.runner.run(flipPlanes(batch.data, prepared.width), batch.dims, names)
      : undefined;
    const mirroredBack = mirrored && flipPlanes(mirrored.data, outW);
    const size = outH * outW;
    batch.slices.forEach((z, s) => {
      const p = probabilityPlane(out.data, out.dims, s, m, channel);
      if (mirroredBack) {
        const q = probabilityPlane(mirroredBack, out.dims, s, m, channel);
        for (let i = 0; i < p.length; i++) p[i] = (p[i] + q[i]) / 2;
      }
      grid!.data.set(p, z * size);
    });
  }
  if (!grid) throw new Error("The series has no slices to run");
  const size = grid.height * grid.width;
  const at = (z: number) => grid!.data.subarray(z * size, (z + 1) * size);
  for (let n = 1; n < indices.length; n++) {
    const a = indices[n - 1], b = indices[n];
    for (let z = a + 1; z < b; z++) {
      const t = (z - a) / (b - a), pa = at(a), pb = at(b), pz = at(z);
      for (let i = 0; i < size; i++) pz[i] = pa[i] + (pb[i] - pa[i]) * t;
    }
  }
  return grid;
}

/** A volume's findings: what the model, the components and (for chest models) the lung stage give. */
export interface VolumeFindings {
  seg: Pick<Segmentation, "findings" | "maskSlice" | "maxProbability">;
  /** The components before the lung stage. */
  components: Segmentation;
  lungStage?: LungStage;
}

/**
 * Everything from a loaded volume to its findings, as the sidecar files them (also used by the
 * evaluation scripts, so their figures are the service's): the model over the slices, the
 * components, and the lung stage (and its candidate stage) when the manifest has them.
 */
export async function findingsOf(
  volume: Volume,
  model: LoadedModel,
  settings: RunSettings,
  options: { signal?: AbortSignal; modelDone?: () => void } = {},
): Promise<VolumeFindings> {
  const m = model.manifest;
  const probability = await predictVolume(volume, model, settings, options.signal);
  options.modelDone?.();
  options.signal?.throwIfAborted();
  const components = segment(probability, volume, settings);
  const candidates = m.postprocessing.candidates;
  if (candidates && !model.candidates) {
    throw new Error(`Model ${m.name} has a candidate stage but its classifier is not loaded`);
  }
  const lungStage = m.postprocessing.lung
    ? await runLungStage(
      volume,
      m,
      components,
      m.postprocessing.lung,
      m.postprocessing.calibration,
      candidates && { config: candidates, runner: model.candidates!, signal: options.signal },
    )
    : undefined;
  const seg = lungStage
    ? { ...lungStage.assessed, maxProbability: components.maxProbability }
    : components;
  return { seg, components, lungStage };
}

/** The volume's planes as the model's input: as they are when sampled, else prepared here. */
function preparedSlices(
  volume: Pick<Volume, "data" | "dims" | "values" | "plane">,
  m: ModelManifest,
): PreparedSlices {
  if (volume.values === "modality") return prepareSlices(volume.data, volume.dims, m);
  if (volume.plane.height !== m.input.height || volume.plane.width !== m.input.width) {
    throw new Error(
      `The volume was sampled to ${volume.plane.height}×${volume.plane.width}; the model reads ` +
        `${m.input.height}×${m.input.width}`,
    );
  }
  return { data: volume.data, depth: volume.dims.z, ...volume.plane };
}

/** Runs `job` to the end and files its results; throws on failure (see `errors.ts`). */
export async function analyze(
  ctx: AnalysisContext,
  job: AnalysisJob,
  signal?: AbortSignal,
): Promise<AnalysisOutcome> {
  const started = performance.now();
  const model = ctx.models.get(job.model);
  if (!model) {
    const installed = [...ctx.models.keys()].join(", ") || "none";
    throw fatal(`Model "${job.model}" is not installed on this sidecar (installed: ${installed})`);
  }
  const m = model.manifest;
  if (job.modelVersion && job.modelVersion !== m.version) {
    throw fatal(
      `Model ${job.model} version ${job.modelVersion} was asked for; this sidecar has ${m.version}`,
    );
  }
  const requestId = job.requestId;
  let mark = started;
  const lap = () => {
    const now = performance.now(), ms = Math.round(now - mark);
    mark = now;
    return ms;
  };
  const task = await readTask(ctx.api, job);
  if (
    task.status === "completed" || task.status === "cancelled" || task.status === "entered-in-error"
  ) {
    return { kind: "skipped", reason: `Task/${task.id} is already ${task.status}` };
  }
  // Cancelled (its order revoked) between the read and the update: nothing to do.
  const running = await markTaskInProgress(ctx.api, job, task);
  if (running.status !== "in-progress") {
    return { kind: "skipped", reason: `Task/${task.id} is already ${running.status}` };
  }
  const stages: Partial<StageTimes> = { task: lap() };

  const settings = resolveSettings(m, job.profile, job.threshold);
  let loaded: Volume | undefined = await loadStudyVolume(
    ctx.api,
    job.studyInstanceUid,
    m.modality,
    { requestId, signal, sampler: samplerOf(model) },
  );
  for (const w of loaded.warnings) ctx.log("warn", w, { jobId: job.jobId, requestId });
  const volume = withoutPixels(loaded);
  stages.load = lap();
  const { seg, lungStage } = await findingsOf(loaded, model, settings, {
    signal,
    modelDone: () => stages.model = lap(),
  });
  loaded = undefined;
  stages.segment = lap();

  const files = await uploadResults(ctx.api, job, {
    mask: await writeNiftiMask(seg, volume, {
      description: `${m.name} ${m.version} findings`,
      maxLabel: Math.min(255, seg.findings.length),
    }),
    lungs: lungStage &&
      await writeNiftiMask({ maskSlice: lungStage.lungSlice }, volume, {
        description: "lungs: 1 right, 2 left",
        maxLabel: 2,
      }),
    summary: new TextEncoder().encode(JSON.stringify(
      {
        ...summaryOf(
          job,
          m,
          settings,
          volume,
          seg.findings,
          seg.maxProbability,
          model.runner.provider,
        ),
        ...(lungStage ? { lungs: lungSummaryOf(lungStage) } : {}),
      },
      null,
      2,
    )),
  }, signal);
  // What the report says, and the SR with it.
  const reportInput = {
    job,
    manifest: m,
    settings,
    volume,
    findings: seg.findings,
    maxProbability: seg.maxProbability,
    provider: model.runner.provider,
    ...(lungStage ? { lungs: lungStage.lung } : {}),
  };
  const conclusion = conclusionText(reportInput);
  // This model's earlier results for the study: the new SR names them as its predecessors, and
  // the report's transaction marks them superseded.
  const priors = await priorResults(ctx.api, job, m, signal);
  const dicom = await storeDicomResults(
    ctx.api,
    ctx.log,
    job,
    // The job's time, not now: a redelivered job writes the same bytes under the same UIDs.
    dicomResults({
      job,
      manifest: m,
      volume,
      segmentation: seg,
      conclusion,
      created: new Date(job.enqueuedAt),
      predecessors: priors.flatMap((p) => p.reports),
    }),
    signal,
  );
  stages.results = lap();

  const response = await withFreshTask(ctx.api, job, async (fresh: Task) => {
    const bundle = buildFindingsBundle({
      ...reportInput,
      task: fresh,
      files: { ...files, ...(dicom ? { dicom } : {}) },
      priors,
      issued: new Date().toISOString(),
    });
    return await ctx.api.fhir<
      { entry?: { resource?: { id?: string }; response?: { location?: string } }[] }
    >(
      "POST",
      "",
      bundle,
      { requestId, signal },
    );
  });
  // Entry 1 is the report: created (a Location) or found by its identifier (the resource).
  const reportEntry = response.body.entry?.[1];
  const reportId = reportEntry?.resource?.id ?? reportEntry?.response?.location?.split("/")[1] ??
    "";
  return {
    kind: "filed",
    reportId,
    findings: seg.findings.length,
    maxProbability: seg.maxProbability,
    ms: Math.round(performance.now() - started),
    stages: { ...stages, file: lap(), slices: volume.dims.z } as StageTimes,
  };
}

const samplers = new WeakMap<ModelManifest, ReturnType<typeof modelSampler>>();
/** One sampler per model (it caches its window tables). */
function samplerOf(model: LoadedModel) {
  let s = samplers.get(model.manifest);
  if (!s) samplers.set(model.manifest, s = modelSampler(model.manifest));
  return s;
}

function withoutPixels(v: Volume): Omit<Volume, "data"> {
  const copy: Partial<Volume> = { ...v };
  delete copy.data;
  return copy as Omit<Volume, "data">;
}

/** PUTs the masks and summary under the job's key; answers their URLs. */
async function uploadResults(
  api: ApiClient,
  job: AnalysisJob,
  bytes: { mask: Uint8Array; lungs?: Uint8Array; summary: Uint8Array },
  signal?: AbortSignal,
): Promise<ResultFiles> {
  const put = async (name: string, body: Uint8Array, type: string) => {
    const path = `uploads/results/${job.idempotencyKey}/${name}`;
    const response = await api.request(path, {
      method: "PUT",
      headers: { "Content-Type": type },
      body,
      requestId: job.requestId,
      signal,
    });
    if (response.status === 404) {
      await response.body?.cancel();
      throw new ApiError(404, "PUT", path, "the API has no result upload route");
    }
    await expectOk(response.clone(), "PUT", path);
    const json = await response.json() as { url?: string };
    return { url: json.url ?? `${api.baseUrl}/${path}`, size: body.length };
  };
  return {
    mask: await put("mask.nii.gz", bytes.mask, "application/gzip"),
    ...(bytes.lungs ? { lungs: await put("lungs.nii.gz", bytes.lungs, "application/gzip") } : {}),
    summary: await put("summary.json", bytes.summary, "application/json"),
  };
}

/** The lung stage in the summary: the lungs found, and each dropped candidate with its reason. */
function lungSummaryOf(stage: LungStage) {
  const r = (v: number, d = 1) => Math.round(v * 10 ** d) / 10 ** d;
  return {
    found: stage.lung.found,
    volumeMl: { right: r(stage.lung.volumeMl.right, 0), left: r(stage.lung.volumeMl.left, 0) },
    ...(stage.candidates
      ? {
        candidates: {
          found: stage.candidates.length,
          accepted: stage.candidates.filter((c) => c.accepted).length,
          reported: stage.assessed.findings.filter((f) => f.source === "candidates").length,
        },
      }
      : {}),
    rejected: stage.assessed.rejected.map(({ finding: f, reason, measures }) => ({
      reason,
      centreMm: f.centrePatient.map((v) => r(v)),
      volumeMm3: r(f.volumeMm3),
      maxProbability: r(f.maxProbability, 4),
      ...(measures
        ? {
          longAxisMm: r(measures.longAxisMm),
          shortAxisMm: r(measures.shortAxisMm),
          zExtentMm: r(measures.zExtentMm),
          elongation: r(measures.elongation, 2),
          flatness: r(measures.flatness, 2),
          compactness: r(measures.compactness, 2),
        }
        : {}),
    })),
  };
}

function summaryOf(
  job: AnalysisJob,
  m: ModelManifest,
  settings: RunSettings,
  volume: Geometry & Pick<Volume, "seriesInstanceUid" | "sopInstanceUids" | "studyInstanceUid">,
  findings: Finding[],
  maxProbability: number,
  provider: string,
) {
  const r = (v: number, d = 2) => Math.round(v * 10 ** d) / 10 ** d;
  return {
    model: { name: m.name, version: m.version, provider, notice: m.notice },
    job: {
      jobId: job.jobId,
      taskId: job.taskId,
      idempotencyKey: job.idempotencyKey,
      profile: job.profile,
      threshold: settings.threshold,
    },
    study: {
      studyInstanceUid: job.studyInstanceUid,
      imagingStudy: `ImagingStudy/${job.imagingStudyId}`,
      seriesInstanceUid: volume.seriesInstanceUid,
      dims: volume.dims,
      spacingMm: volume.spacing,
    },
    settings,
    maxProbability: r(maxProbability, 4),
    positive: findings.length > 0,
    findings: findings.map((f) => ({
      number: f.number,
      ...(f.lung
        ? {
          kind: f.lung.kind,
          lung: f.lung.lung,
          zone: f.lung.zone,
          longAxisMm: r(f.lung.measures.longAxisMm, 1),
          shortAxisMm: r(f.lung.measures.shortAxisMm, 1),
          meanDiameterMm: r(f.lung.measures.meanDiameterMm, 1),
          attenuation: f.lung.measures.attenuation,
          meanHu: r(f.lung.measures.meanHu, 0),
          onPleura: !f.lung.centreInLung,
        }
        : {}),
      source: f.source ?? "segmentation",
      ...(f.probability !== undefined ? { probability: r(f.probability, 4) } : {}),
      voxels: f.voxels,
      volumeMm3: r(f.volumeMm3, 1),
      longestDiameterMm: r(f.longestDiameterMm, 1),
      centreMm: f.centrePatient.map((v) => r(v)),
      centreVoxel: f.centreVoxel.map((v) => r(v, 1)),
      boundingBox: f.boundingBox,
      maxProbability: r(f.maxProbability, 4),
      meanProbability: r(f.meanProbability, 4),
      centreSopInstanceUid: volume
        .sopInstanceUids[Math.min(volume.dims.z - 1, Math.max(0, Math.round(f.centreVoxel[2])))],
    })),
  };
}
