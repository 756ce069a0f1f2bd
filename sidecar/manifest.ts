/**
 * @module Model manifests: `sidecar/models/<name>/manifest.json` beside `model.onnx`. `loadModel`
 * reads and checks one folder and reports every problem at once; `listModels` reads them all
 * (adding a model is adding a folder); `resolveSettings` applies a profile and a job's threshold.
 */
import type { Calibration, LungRules } from "./nodules/assess.ts";
import type { CandidateStageConfig } from "./nodules/candidate_stage.ts";
import type { Profile } from "../queue/jobs.ts";
import { ManifestError, parseManifest } from "./_manifest_parse.ts";

export { ManifestError, parseManifest };

export interface Coding {
  system: string;
  code: string;
  display?: string;
}

export interface ModelLabel {
  /** The class value (1 = the first foreground class). */
  index: number;
  /** The output channel holding its probability. */
  outputChannel: number;
  name: string;
  /** What a finding of this label is: Observation.code. */
  code: { coding: Coding[]; text: string };
}

/** The knobs a profile may change; every one is optional. */
export interface ProfileSettings {
  threshold?: number;
  minComponentVoxels?: number;
  minVolumeMm3?: number;
  batch?: number;
  /** Average the prediction with the left-right flipped one (test-time augmentation). */
  flipTta?: boolean;
  /** Run every n-th slice (and the last); the maps of the slices between are interpolated. */
  sliceStride?: number;
  description?: string;
}

export type { Calibration, CandidateStageConfig, LungRules };

export interface ModelManifest {
  name: string;
  version: string;
  displayName: string;
  manufacturer?: string;
  /** The modality of the series the model reads (default CT). */
  modality: string;
  bodyPart?: string;
  input: {
    name: string;
    layout: "NCHW";
    channels: number;
    height: number;
    width: number;
    dtype: "float32";
    /** Neighbouring slices stacked as channels (2.5D): channels = slicesPerSample. */
    slicesPerSample: number;
    /** The slice offset of each channel, e.g. [−1, 0, 1] (`neighbours`; default centred). */
    offsets: number[];
    /**
     * When set, `offsets` count steps of this many mm along the slice normal, not slices: the
     * channels are planes interpolated linearly between the two nearest slices (clamped to the
     * series), so the model sees the same anatomy whatever the slice spacing.
     */
    neighbourSpacingMm?: number;
    /** Slices per inference call. */
    batch: number;
  };
  output: {
    name: string;
    /** `probability`: values are already in [0, 1]; `logits`: `activation` is applied here. */
    kind: "probability" | "logits";
    activation: "sigmoid" | "softmax" | "none";
  };
  preprocessing: {
    /** HU window mapped onto `rescale`, values outside clamped. */
    window: { center: number; width: number };
    rescale: [number, number];
    /** The model's in-plane size; absent: the image is fed at its own size. */
    resize?: { height: number; width: number; interpolation: "bilinear" | "nearest" };
  };
  postprocessing: {
    threshold: number;
    minComponentVoxels: number;
    minVolumeMm3: number;
    connectivity: 6 | 18 | 26;
    /**
     * The lung stage (`postprocessing.lung` in manifest.json): when present, findings outside the
     * lung mask or not nodule-shaped are dropped, the rest measured and called nodule or mass.
     */
    lung?: LungRules;
    /** Platt scaling of each finding's maximum probability (`postprocessing.calibration`). */
    calibration?: Calibration;
    /**
     * The candidate stage (`postprocessing.candidates`): blobs found by image processing in the
     * lungs, each classified by a second network (`file`, beside model.onnx); what it accepts joins
     * the segmentation's components before the lung rules. Needs `lung`.
     */
    candidates?: CandidateStageConfig;
  };
  profiles: Partial<Record<Profile, ProfileSettings>>;
  labels: ModelLabel[];
  defaultThreshold: number;
  intendedUse: string;
  notice: string;
  metrics?: unknown;
  /** SHA-256 (hex) of model.onnx, checked at load when given (`file.sha256`). */
  sha256?: string;
}

/** A manifest and where its files are. */
export interface InstalledModel {
  manifest: ModelManifest;
  dir: string;
  modelPath: string;
  /** The candidate classifier, when the manifest has a candidate stage. */
  candidatesPath?: string;
}

/** The effective settings of one job. */
export interface RunSettings {
  threshold: number;
  minComponentVoxels: number;
  minVolumeMm3: number;
  connectivity: 6 | 18 | 26;
  batch: number;
  flipTta: boolean;
  sliceStride: number;
}

/** Reads and checks `dir/manifest.json` and that `dir/model.onnx` exists. */
export async function loadModel(dir: string): Promise<InstalledModel> {
  const folder = dir.replace(/\/+$/, "");
  const name = folder.split("/").pop() ?? folder;
  let raw: unknown;
  try {
    raw = JSON.parse(await Deno.readTextFile(`${folder}/manifest.json`));
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound ? "not found" : (e as Error).message;
    throw new ManifestError(name, [`${folder}/manifest.json: ${why}`]);
  }
  const manifest = parseManifest(raw, name);
  const modelPath = `${folder}/model.onnx`;
  await checkFile(name, modelPath, manifest.sha256, "file.sha256");
  const stage = manifest.postprocessing.candidates;
  if (!stage) return { manifest, dir: folder, modelPath };
  const candidatesPath = `${folder}/${stage.file}`;
  await checkFile(name, candidatesPath, stage.sha256, "postprocessing.candidates.sha256");
  return { manifest, dir: folder, modelPath, candidatesPath };
}

/** That `path` exists, is not empty and, when `sha256` is given, has that digest. */
async function checkFile(name: string, path: string, sha256: string | undefined, field: string) {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
    if (bytes.length === 0) throw new Error("empty");
  } catch {
    throw new ManifestError(name, [`${path}: missing or empty`]);
  }
  if (!sha256) return;
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>),
  );
  const hex = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
  if (hex !== sha256.toLowerCase()) {
    throw new ManifestError(name, [
      `${path}: SHA-256 ${hex} differs from the manifest's ${field} ${sha256}`,
    ]);
  }
}

/** Every model folder in `modelsDir`; a folder that fails is reported, not thrown. */
export async function listModels(
  modelsDir: string,
): Promise<{ models: InstalledModel[]; errors: ManifestError[] }> {
  const models: InstalledModel[] = [];
  const errors: ManifestError[] = [];
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(modelsDir)) {
      if (e.isDirectory && !e.name.startsWith(".") && !e.name.startsWith("_")) names.push(e.name);
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { models, errors };
    throw e;
  }
  for (const name of names.sort()) {
    try {
      models.push(await loadModel(`${modelsDir.replace(/\/+$/, "")}/${name}`));
    } catch (e) {
      if (!(e instanceof ManifestError)) throw e;
      errors.push(e);
    }
  }
  return { models, errors };
}

/** The manifest's settings with the job's profile applied, then the job's threshold. */
export function resolveSettings(
  m: ModelManifest,
  profile: Profile | undefined,
  threshold: number | undefined,
): RunSettings {
  const p = (profile && m.profiles[profile]) || {};
  const t = typeof threshold === "number" && threshold > 0 && threshold < 1
    ? threshold
    : p.threshold ?? m.postprocessing.threshold;
  return {
    threshold: t,
    minComponentVoxels: p.minComponentVoxels ?? m.postprocessing.minComponentVoxels,
    minVolumeMm3: p.minVolumeMm3 ?? m.postprocessing.minVolumeMm3,
    connectivity: m.postprocessing.connectivity,
    batch: p.batch ?? m.input.batch,
    flipTta: p.flipTta ?? false,
    sliceStride: p.sliceStride ?? 1,
  };
}
