/**
 * @module The words of a report: where a finding lies ("right upper zone"), what it is (size,
 * attenuation), and the conclusion a clinician reads — for chest models with a lung stage, nodules
 * counted by the Fleischner Society's size groups (< 6, 6–8, > 8 mm mean diameter), masses apart,
 * "no lung nodules found" when none — with the model, its profile and threshold, and the model's
 * notice.
 */
import type { ModelManifest } from "./manifest.ts";
import type { Finding } from "./postprocess.ts";
import type { ReportInput } from "./findings_bundle.ts";

/** What the conclusion is made of: the report's input without the Task, files and time. */
export type ConclusionInput = Omit<ReportInput, "task" | "files" | "issued">;
import type { LungFinding } from "./nodules/assess.ts";

const round = (v: number, digits = 1) => Math.round(v * 10 ** digits) / 10 ** digits;

/** Whether findings of this model lie in the lungs (then right/left and zones are named). */
export function isChestModel(m: ModelManifest): boolean {
  return /chest|lung|thorax/i.test(`${m.bodyPart ?? ""} ${m.name}`);
}

/**
 * "right upper zone": from the lung stage when it ran (the lung the finding is in, the third of
 * that lung's height), else the side from patient x (LPS: negative is right) and the third of the
 * scan.
 */
export function describeLocation(
  f: Finding,
  volume: ReportInput["volume"],
  chest: boolean,
): string {
  if (f.lung) return `${f.lung.lung} ${f.lung.zone} zone`;
  const k = f.centreVoxel[2];
  const slice = Math.round(k);
  if (!chest) return `around slice ${slice + 1} of ${volume.dims.z}`;
  const side = f.centrePatient[0] < 0 ? "right" : "left";
  // Superior first: order the scan's slices by patient z.
  const zFirst = volume.origin[2],
    zLast = volume.origin[2] + volume.sliceStep[2] * (volume.dims.z - 1);
  const top = Math.max(zFirst, zLast), bottom = Math.min(zFirst, zLast);
  const t = top === bottom ? 0.5 : (top - f.centrePatient[2]) / (top - bottom);
  const zone = t < 1 / 3 ? "upper" : t < 2 / 3 ? "middle" : "lower";
  return `${side} ${zone} zone`;
}

/** The Fleischner Society's size group of a nodule's mean diameter. */
export function sizeGroup(l: LungFinding): "< 6 mm" | "6–8 mm" | "> 8 mm" | "mass (> 30 mm)" {
  if (l.kind === "mass") return "mass (> 30 mm)";
  const d = l.measures.meanDiameterMm;
  return d < 6 ? "< 6 mm" : d <= 8 ? "6–8 mm" : "> 8 mm";
}

/** "12.4 × 10.1 mm (mean 11.3 mm) solid nodule, right lower zone, on the pleura". */
export function findingWords(f: Finding, volume: ReportInput["volume"], chest: boolean): string {
  const where = describeLocation(f, volume, chest);
  if (!f.lung) {
    return `${round(f.longestDiameterMm)} mm, ${round(f.volumeMm3)} mm³, ${where}`;
  }
  const m = f.lung.measures;
  const what = f.lung.kind === "mass" ? "mass" : `${m.attenuation} nodule`;
  return `${round(m.longAxisMm)} × ${round(m.shortAxisMm)} mm (mean ${
    round(m.meanDiameterMm)
  } mm, ${round(f.volumeMm3, 0)} mm³) ${what}, ${where}${
    f.lung.centreInLung ? "" : ", on the pleura"
  }`;
}

/** The words a clinician reads. */
export function conclusionText(input: ConclusionInput): string {
  const { manifest: m, settings } = input;
  const chest = isChestModel(m);
  const model = `${m.displayName} ${m.version} (${input.job.profile} profile, threshold ${
    round(settings.threshold, 2)
  })`;
  const head = m.postprocessing.lung ? lungConclusion(input, chest) : plainConclusion(input, chest);
  return `${head} Model: ${model}. ${m.notice}`.trim();
}

function plainConclusion(input: ConclusionInput, chest: boolean): string {
  const { manifest: m, findings } = input;
  const label = m.labels[0]?.name ?? "lesion";
  if (!findings.length) {
    return `No ${label} found (highest probability ${round(input.maxProbability, 2)}).`;
  }
  const parts = findings.slice(0, 10).map((f) =>
    `${round(f.longestDiameterMm)} mm (probability ${round(f.maxProbability, 2)}) in the ${
      describeLocation(f, input.volume, chest)
    }`
  );
  const more = findings.length > 10 ? `; and ${findings.length - 10} more` : "";
  const noun = findings.length === 1 ? label : /s$/.test(label) ? label : `${label}s`;
  return `${findings.length} ${noun} found: ${parts.join("; ")}${more}.`;
}

function lungConclusion(input: ConclusionInput, chest: boolean): string {
  const { findings, volume } = input;
  if (input.lungs && !input.lungs.found) {
    return "No lungs found in the series: nothing was analysed for lung nodules.";
  }
  const nodules = findings.filter((f) => f.lung?.kind !== "mass");
  const masses = findings.filter((f) => f.lung?.kind === "mass");
  const out: string[] = [];
  if (!nodules.length) {
    out.push("No lung nodules found.");
  } else {
    const groups = new Map<string, number>();
    for (const f of nodules) {
      const g = f.lung ? sizeGroup(f.lung) : "unmeasured";
      groups.set(g, (groups.get(g) ?? 0) + 1);
    }
    const counts = ["< 6 mm", "6–8 mm", "> 8 mm", "unmeasured"]
      .filter((g) => groups.has(g))
      .map((g) => `${groups.get(g)} ${g}`)
      .join(", ");
    out.push(
      `${nodules.length} lung nodule${nodules.length === 1 ? "" : "s"} found (${counts}).`,
    );
  }
  if (masses.length) {
    out.push(`${masses.length} lung mass${masses.length === 1 ? "" : "es"} (over 30 mm) found.`);
  }
  const listed = findings.slice(0, 10).map((f) =>
    `${f.number}. ${findingWords(f, volume, chest)}, probability ${
      round(f.probability ?? f.maxProbability, 2)
    }`
  );
  if (listed.length) {
    out.push(
      `Findings: ${listed.join("; ")}${
        findings.length > 10 ? `; and ${findings.length - 10} more` : ""
      }.`,
    );
  }
  return out.join(" ");
}
