/**
 * @module The words of a report: where a finding lies ("right upper zone") and the conclusion a
 * clinician reads, with the model, its profile and threshold, and the model's notice.
 */
import type { ModelManifest } from "./manifest.ts";
import type { Finding } from "./postprocess.ts";
import type { ReportInput } from "./findings_bundle.ts";

const round = (v: number, digits = 1) => Math.round(v * 10 ** digits) / 10 ** digits;

/** Whether findings of this model lie in the lungs (then right/left and zones are named). */
export function isChestModel(m: ModelManifest): boolean {
  return /chest|lung|thorax/i.test(`${m.bodyPart ?? ""} ${m.name}`);
}

/** "right upper zone": the side from patient x (LPS: negative is right), the third of the scan. */
export function describeLocation(
  f: Finding,
  volume: ReportInput["volume"],
  chest: boolean,
): string {
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

/** The words a clinician reads. */
export function conclusionText(input: ReportInput): string {
  const { manifest: m, findings, settings } = input;
  const label = m.labels[0]?.name ?? "lesion";
  const chest = isChestModel(m);
  const model = `${m.displayName} ${m.version} (${input.job.profile} profile, threshold ${
    round(settings.threshold, 2)
  })`;
  let head: string;
  if (!findings.length) {
    head = `No ${label} found (highest probability ${round(input.maxProbability, 2)}).`;
  } else {
    const parts = findings.slice(0, 10).map((f) =>
      `${round(f.longestDiameterMm)} mm (probability ${round(f.maxProbability, 2)}) in the ${
        describeLocation(f, input.volume, chest)
      }`
    );
    const more = findings.length > 10 ? `; and ${findings.length - 10} more` : "";
    const noun = findings.length === 1 ? label : /s$/.test(label) ? label : `${label}s`;
    head = `${findings.length} ${noun} found: ${parts.join("; ")}${more}.`;
  }
  return `${head} Model: ${model}. ${m.notice}`.trim();
}
