/**
 * @module `parseManifest`: a parsed manifest.json checked field by field against the shape of
 * `ModelManifest`, defaults filled in, and every problem reported at once with its path.
 */
import type { Coding, ModelLabel, ModelManifest, ProfileSettings } from "./manifest.ts";
import type { Profile } from "../queue/jobs.ts";
import { DEFAULT_LUNG_RULES, type LungRules } from "./nodules/assess.ts";
import { DEFAULT_CANDIDATE_OPTIONS } from "./nodules/candidates.ts";
import type { CandidateStageConfig } from "./nodules/candidate_stage.ts";

export class ManifestError extends Error {
  constructor(readonly model: string, readonly problems: string[]) {
    super(`Model ${model}: invalid manifest.json:\n  - ${problems.join("\n  - ")}`);
    this.name = "ManifestError";
  }
}

type Obj = Record<string, unknown>;

/** Checks a parsed manifest.json; throws a ManifestError listing every problem. */
export function parseManifest(raw: unknown, folderName: string): ModelManifest {
  const problems: string[] = [];
  const isObj = (v: unknown): v is Obj => !!v && typeof v === "object" && !Array.isArray(v);
  const root: Obj = isObj(raw) ? raw : (problems.push("expected a JSON object"), {});
  const obj = (o: Obj, path: string, required = true): Obj => {
    const v = get(o, path);
    if (isObj(v)) return v;
    if (v !== undefined || required) problems.push(`${path}: expected an object`);
    return {};
  };
  const get = (o: Obj, path: string) => o[path.split(".").pop()!];
  const str = (o: Obj, path: string, fallback?: string): string => {
    const v = get(o, path);
    if (typeof v === "string" && v.trim()) return v;
    if (v === undefined && fallback !== undefined) return fallback;
    problems.push(
      `${path}: expected a non-empty string${v === undefined ? "" : `, got ${show(v)}`}`,
    );
    return fallback ?? "";
  };
  const num = (
    o: Obj,
    path: string,
    check: (n: number) => boolean,
    expected: string,
    fallback?: number,
  ): number => {
    const v = get(o, path);
    if (typeof v === "number" && Number.isFinite(v) && check(v)) return v;
    if (v === undefined && fallback !== undefined) return fallback;
    problems.push(`${path}: expected ${expected}${v === undefined ? "" : `, got ${show(v)}`}`);
    return fallback ?? 0;
  };
  const posInt = (o: Obj, path: string, fallback?: number) =>
    num(o, path, (n) => Number.isInteger(n) && n > 0, "a positive integer", fallback);
  const nonNeg = (o: Obj, path: string, fallback: number) =>
    num(o, path, (n) => n >= 0, "a number ≥ 0", fallback);
  const prob = (o: Obj, path: string, fallback?: number) =>
    num(o, path, (n) => n > 0 && n < 1, "a number between 0 and 1", fallback);
  const oneOf = <T extends string>(o: Obj, path: string, options: T[], fallback: T): T => {
    const v = get(o, path);
    if (v === undefined) return fallback;
    if (options.includes(v as T)) return v as T;
    problems.push(`${path}: expected one of ${options.join(", ")}, got ${show(v)}`);
    return fallback;
  };

  const name = str(root, "name", folderName);
  if (name !== folderName) problems.push(`name: "${name}" differs from its folder "${folderName}"`);
  const version = str(root, "version");

  const input = obj(root, "input");
  const channels = posInt(input, "input.channels");
  const neighbours = input.neighbours;
  const slicesPerSample = input.slicesPerSample !== undefined
    ? posInt(input, "input.slicesPerSample")
    : typeof neighbours === "number"
    ? 2 * neighbours + 1
    : Array.isArray(neighbours)
    ? neighbours.length
    : channels;
  let offsets = Array.from({ length: slicesPerSample }, (_, c) => c - (slicesPerSample - 1) / 2);
  if (Array.isArray(neighbours)) {
    if (neighbours.length === channels && neighbours.every((n) => Number.isInteger(n))) {
      offsets = neighbours as number[];
    } else {
      problems.push(
        `input.neighbours: expected ${channels} integer slice offsets (e.g. [-1, 0, 1]), got ${
          show(neighbours)
        }`,
      );
    }
  }
  const neighbourSpacingMm = input.neighbourSpacingMm === undefined
    ? undefined
    : num(input, "input.neighbourSpacingMm", (n) => n > 0, "a number of mm > 0");
  if (slicesPerSample !== channels) {
    problems.push(
      `input.slicesPerSample (${slicesPerSample}) must equal input.channels (${channels})`,
    );
  }
  if (!Array.isArray(neighbours) && slicesPerSample % 2 !== 1) {
    problems.push(`input.slicesPerSample: expected an odd number (a centre slice and neighbours)`);
  }
  const layout = oneOf(input, "input.layout", ["NCHW"], "NCHW");
  const dtype = oneOf(input, "input.dtype", ["float32"], "float32");

  const output = obj(root, "output");
  const pre = obj(root, "preprocessing");
  const window = obj(pre, "preprocessing.window");
  const rescaleRaw = pre.rescale;
  let rescale: [number, number] = [0, 1];
  if (rescaleRaw !== undefined) {
    if (
      Array.isArray(rescaleRaw) && rescaleRaw.length === 2 &&
      rescaleRaw.every((v) => typeof v === "number" && Number.isFinite(v)) &&
      rescaleRaw[0] !== rescaleRaw[1]
    ) rescale = [rescaleRaw[0], rescaleRaw[1]];
    else problems.push(`preprocessing.rescale: expected [low, high], got ${show(rescaleRaw)}`);
  }
  const resizeObj = obj(pre, "preprocessing.resize", false);
  const resize = pre.resize === undefined ? undefined : {
    height: posInt(resizeObj, "preprocessing.resize.height"),
    width: posInt(resizeObj, "preprocessing.resize.width"),
    interpolation: oneOf(
      resizeObj,
      "preprocessing.resize.interpolation",
      ["bilinear", "nearest"],
      "bilinear",
    ),
  };
  const height = posInt(input, "input.height", resize?.height);
  const width = posInt(input, "input.width", resize?.width);
  if (resize && (resize.height !== height || resize.width !== width)) {
    problems.push(
      `preprocessing.resize (${resize.height}×${resize.width}) differs from input ${height}×${width}`,
    );
  }

  const post = obj(root, "postprocessing");
  const postThreshold = post.threshold === undefined
    ? undefined
    : prob(post, "postprocessing.threshold");
  const defaultThreshold = prob(root, "defaultThreshold", postThreshold ?? 0.5);
  const connectivity = num(
    post,
    "postprocessing.connectivity",
    (n) => n === 6 || n === 18 || n === 26,
    "6, 18 or 26",
    26,
  ) as 6 | 18 | 26;

  const lungRules = (o: Obj): LungRules => {
    const r = { ...DEFAULT_LUNG_RULES };
    for (const key of Object.keys(o)) {
      if (!(key in r)) problems.push(`postprocessing.lung.${key}: unknown rule`);
    }
    for (const key of Object.keys(r) as (keyof LungRules)[]) {
      r[key] = num(o, `postprocessing.lung.${key}`, (n) => n >= 0, "a number ≥ 0", r[key]);
    }
    return r;
  };

  const candidateStage = (o: Obj): CandidateStageConfig => {
    const at = "postprocessing.candidates";
    const d = DEFAULT_CANDIDATE_OPTIONS;
    const known = [
      ...Object.keys(d),
      ...["file", "sha256", "input", "output", "patch", "batch", "calibration", "minProbability"],
      "minRegionHu",
      "description",
    ];
    for (const key of Object.keys(o)) {
      if (!known.includes(key)) problems.push(`${at}.${key}: unknown setting`);
    }
    const file = str(o, `${at}.file`);
    if (file.includes("/") || file.startsWith(".")) {
      problems.push(`${at}.file: expected a file name in the model's folder, got ${show(file)}`);
    }
    const scales = o.scalesMm ?? d.scalesMm;
    const scalesOk = Array.isArray(scales) && scales.length > 0 &&
      scales.every((s) => typeof s === "number" && s > 0 && s < 20);
    if (!scalesOk) {
      problems.push(`${at}.scalesMm: expected a non-empty array of numbers in (0, 20) mm`);
    }
    const positive = (key: string, fallback?: number) =>
      num(o, `${at}.${key}`, (n) => n > 0, "a number > 0", fallback);
    const calibration = obj(o, `${at}.calibration`);
    const sha256 = o.sha256;
    if (sha256 !== undefined && (typeof sha256 !== "string" || !/^[0-9a-fA-F]{64}$/.test(sha256))) {
      problems.push(`${at}.sha256: expected 64 hex digits`);
    }
    return {
      file,
      ...(typeof sha256 === "string" ? { sha256 } : {}),
      input: str(o, `${at}.input`, "patch"),
      output: str(o, `${at}.output`, "probability"),
      patch: posInt(o, `${at}.patch`),
      batch: posInt(o, `${at}.batch`, 32),
      gridMm: positive("gridMm", d.gridMm),
      scalesMm: scalesOk ? scales as number[] : d.scalesMm,
      minResponseHu: nonNeg(o, `${at}.minResponseHu`, d.minResponseHu),
      minCentreHu: num(o, `${at}.minCentreHu`, () => true, "a number (HU)", d.minCentreHu),
      minBlobness: num(o, `${at}.minBlobness`, (n) => n >= 0 && n <= 1, "0 to 1", d.minBlobness),
      pleuraMm: nonNeg(o, `${at}.pleuraMm`, d.pleuraMm),
      maxCandidates: posInt(o, `${at}.maxCandidates`, d.maxCandidates),
      minProbability: num(o, `${at}.minProbability`, (n) => n >= 0 && n < 1, "0 to 1", 0),
      minRegionHu: num(o, `${at}.minRegionHu`, () => true, "a number (HU)", -750),
      calibration: {
        slope: num(calibration, `${at}.calibration.slope`, () => true, "a number"),
        intercept: num(calibration, `${at}.calibration.intercept`, () => true, "a number"),
      },
    };
  };

  const profiles: ModelManifest["profiles"] = {};
  const rawProfiles = obj(root, "profiles", false);
  for (const [key, value] of Object.entries(rawProfiles)) {
    if (!["fast", "standard", "research"].includes(key)) {
      problems.push(`profiles.${key}: unknown profile (fast, standard, research)`);
      continue;
    }
    const p = isObj(value) ? value : (problems.push(`profiles.${key}: expected an object`), {});
    const at = `profiles.${key}`;
    const s: ProfileSettings = {};
    if (p.threshold !== undefined) s.threshold = prob(p, `${at}.threshold`);
    if (p.minComponentVoxels !== undefined) {
      s.minComponentVoxels = nonNeg(p, `${at}.minComponentVoxels`, 0);
    }
    if (p.minVolumeMm3 !== undefined) s.minVolumeMm3 = nonNeg(p, `${at}.minVolumeMm3`, 0);
    if (p.batch !== undefined) s.batch = posInt(p, `${at}.batch`);
    if (p.sliceStride !== undefined) s.sliceStride = posInt(p, `${at}.sliceStride`);
    const tta = p.flipTta ?? p.tta;
    if (tta !== undefined) s.flipTta = tta === true || tta === "flip";
    if (typeof p.description === "string") s.description = p.description;
    profiles[key as Profile] = s;
  }

  const labels: ModelLabel[] = [];
  if (!Array.isArray(root.labels) || root.labels.length === 0) {
    problems.push("labels: expected a non-empty array of {index, name, code}");
  } else {
    root.labels.forEach((l: unknown, i: number) => {
      const at = `labels[${i}]`;
      const label = isObj(l) ? l : (problems.push(`${at}: expected an object`), {});
      const code = codeOf(label.code ?? label.coding, `${at}.code`, problems);
      const labelName = typeof label.name === "string"
        ? label.name
        : typeof label.display === "string"
        ? label.display
        : code.text;
      const index = num(
        label,
        `${at}.index`,
        (n) => Number.isInteger(n) && n >= 0,
        "an integer ≥ 0",
      );
      labels.push({
        index,
        // Without outputChannel: a one-channel (sigmoid) output holds label 1 in channel 0; a
        // softmax output holds label i in channel i.
        outputChannel: label.outputChannel !== undefined
          ? num(
            label,
            `${at}.outputChannel`,
            (n) => Number.isInteger(n) && n >= 0,
            "an integer ≥ 0",
          )
          : -1,
        name: labelName,
        code: { ...code, text: code.text || labelName },
      });
    });
  }

  const manifest: ModelManifest = {
    name,
    version,
    displayName: typeof root.displayName === "string" ? root.displayName : name,
    manufacturer: typeof root.manufacturer === "string" ? root.manufacturer : undefined,
    modality: typeof root.modality === "string" ? root.modality.toUpperCase() : "CT",
    bodyPart: typeof root.bodyPart === "string" ? root.bodyPart : undefined,
    input: {
      name: str(input, "input.name"),
      layout,
      channels,
      height,
      width,
      dtype,
      slicesPerSample,
      offsets,
      ...(neighbourSpacingMm === undefined ? {} : { neighbourSpacingMm }),
      batch: posInt(input, "input.batch", 1),
    },
    output: {
      name: str(output, "output.name"),
      kind: oneOf(output, "output.kind", ["probability", "logits"], "probability"),
      activation: oneOf(output, "output.activation", ["sigmoid", "softmax", "none"], "none"),
    },
    preprocessing: {
      window: {
        center: num(window, "preprocessing.window.center", () => true, "a number"),
        width: num(window, "preprocessing.window.width", (n) => n > 0, "a number > 0"),
      },
      rescale,
      resize,
    },
    postprocessing: {
      threshold: postThreshold ?? defaultThreshold,
      minComponentVoxels: nonNeg(post, "postprocessing.minComponentVoxels", 1),
      minVolumeMm3: nonNeg(post, "postprocessing.minVolumeMm3", 0),
      connectivity,
      ...(post.lung === undefined ? {} : { lung: lungRules(obj(post, "postprocessing.lung")) }),
      ...(post.calibration === undefined ? {} : {
        calibration: ((c: Obj) => ({
          slope: num(c, "postprocessing.calibration.slope", () => true, "a number"),
          intercept: num(c, "postprocessing.calibration.intercept", () => true, "a number"),
          feature: oneOf<"maxProbability" | "meanProbability">(
            c,
            "postprocessing.calibration.feature",
            ["maxProbability", "meanProbability"],
            "maxProbability",
          ),
        }))(obj(post, "postprocessing.calibration")),
      }),
      ...(post.candidates === undefined
        ? {}
        : { candidates: candidateStage(obj(post, "postprocessing.candidates")) }),
    },
    profiles,
    labels,
    defaultThreshold,
    intendedUse: str(root, "intendedUse", ""),
    notice: str(root, "notice", "Not for clinical use."),
    metrics: root.metrics,
    sha256: isObj(root.file) && typeof root.file.sha256 === "string" ? root.file.sha256 : undefined,
  };
  if (manifest.postprocessing.candidates && !manifest.postprocessing.lung) {
    problems.push(
      "postprocessing.candidates: needs postprocessing.lung (the lung mask it searches)",
    );
  }
  const softmax = manifest.output.activation === "softmax";
  for (const l of labels) if (l.outputChannel < 0) l.outputChannel = softmax ? l.index : 0;
  if (problems.length) throw new ManifestError(folderName, problems);
  return manifest;
}

/** A label's code: a Coding, a CodeableConcept or an array of Codings. */
function codeOf(
  v: unknown,
  path: string,
  problems: string[],
): { coding: Coding[]; text: string } {
  const codingOf = (c: unknown): Coding | undefined => {
    const o = c as Obj;
    if (o && typeof o.system === "string" && typeof o.code === "string") {
      return {
        system: o.system,
        code: o.code,
        ...(typeof o.display === "string" ? { display: o.display } : {}),
      };
    }
  };
  const o = (v ?? {}) as Obj;
  const list = Array.isArray(v) ? v : Array.isArray(o.coding) ? o.coding : [v];
  const coding = list.map(codingOf).filter((c): c is Coding => !!c);
  if (!coding.length) {
    problems.push(`${path}: expected {system, code, display} or {coding: [...]}, got ${show(v)}`);
  }
  const text = typeof o.text === "string" ? o.text : coding[0]?.display ?? "";
  return { coding, text };
}

function show(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}
