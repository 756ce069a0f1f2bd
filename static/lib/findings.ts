/**
 * @module A report's findings as the viewer and the report page use them: one per result
 * Observation that is not the study-level decision, with size, probability, location, the centre
 * slice and the bounding box in voxel indices of the analysed series.
 */
import type { Resource } from "./fhir_types.ts";

export const MEASURE_SYSTEM = "urn:imaging-ai:measure";

export type Vec3 = [number, number, number];

export interface Finding {
  id: string;
  /** 1-based, in the report's order. */
  number: number;
  label: string;
  volumeMm3?: number;
  probability?: number;
  meanProbability?: number;
  diameterMm?: number;
  centreMm?: Vec3;
  /** Column, row, slice (0-based) in the analysed series. */
  centreVoxel?: Vec3;
  box?: { min: Vec3; max: Vec3 };
  bodySite?: string;
  centreSopInstanceUid?: string;
  seriesInstanceUid?: string;
  note?: string;
  /** Where it lies in words (`left lower zone`), from the note. */
  location?: string;
}

export interface StudyDecision {
  positive: boolean;
  maxProbability?: number;
  threshold?: number;
  count?: number;
  seriesInstanceUid?: string;
}

const isMeasure = (o: Resource) =>
  (o.code?.coding ?? []).some((c: { system?: string }) => c.system === MEASURE_SYSTEM);

function component(o: Resource, code: string) {
  return (o.component ?? []).find((c: Resource) =>
    (c.code?.coding ?? []).some((k: { system?: string; code?: string }) =>
      k.system === MEASURE_SYSTEM && k.code === code
    )
  );
}

function num(o: Resource, code: string): number | undefined {
  const c = component(o, code);
  const v = c?.valueQuantity?.value ?? c?.valueInteger;
  return typeof v === "number" ? v : undefined;
}

function vec(o: Resource, prefix: string, axes: string[]): Vec3 | undefined {
  const v = axes.map((a) => num(o, `${prefix}-${a}`));
  return v.every((x) => x !== undefined) ? v as Vec3 : undefined;
}

/** `[1,2,3]-[4,5,6]` → min and max corners. */
export function parseBox(text: string | undefined): { min: Vec3; max: Vec3 } | undefined {
  const m = /^\[(-?\d+),(-?\d+),(-?\d+)\]-\[(-?\d+),(-?\d+),(-?\d+)\]$/.exec(text ?? "");
  if (!m) return undefined;
  const n = m.slice(1).map(Number);
  return { min: [n[0], n[1], n[2]], max: [n[3], n[4], n[5]] };
}

/** `Finding 1 of 2: 13.1 mm, 892.5 mm³, left lower zone. Series …` → `left lower zone`. */
export function locationOf(note: string | undefined): string | undefined {
  return /mm³, ([^.]+)\./.exec(note ?? "")?.[1];
}

/** One finding Observation. */
export function findingOf(o: Resource, number: number): Finding {
  return {
    id: o.id!,
    number,
    label: o.code?.text ?? o.code?.coding?.[0]?.display ?? "Finding",
    volumeMm3: o.valueQuantity?.value,
    probability: num(o, "probability"),
    meanProbability: num(o, "mean-probability"),
    diameterMm: num(o, "longest-diameter"),
    centreMm: vec(o, "centre", ["x", "y", "z"]),
    centreVoxel: vec(o, "centre-voxel", ["i", "j", "k"]),
    box: parseBox(component(o, "bounding-box")?.valueString),
    bodySite: o.bodySite?.coding?.[0]?.display ?? o.bodySite?.text,
    centreSopInstanceUid: component(o, "centre-sop-instance-uid")?.valueString,
    seriesInstanceUid: component(o, "series-instance-uid")?.valueString,
    note: o.note?.[0]?.text,
    location: locationOf(o.note?.[0]?.text),
  };
}

/** The findings of `report` among `observations` (in the report's result order). */
export function findingsOf(report: Resource, observations: Resource[]): Finding[] {
  const byRef = new Map(observations.map((o) => [`Observation/${o.id}`, o]));
  const out: Finding[] = [];
  for (const r of report.result ?? []) {
    const o = byRef.get(r.reference);
    if (!o || isMeasure(o) || o.valueQuantity === undefined) continue;
    out.push(findingOf(o, out.length + 1));
  }
  return out;
}

/** The study-level decision Observation of `report`, if present. */
export function decisionOf(report: Resource, observations: Resource[]): StudyDecision | undefined {
  const refs = new Set((report.result ?? []).map((r: { reference?: string }) => r.reference));
  const o = observations.find((x) => refs.has(`Observation/${x.id}`) && isMeasure(x));
  if (!o) return undefined;
  return {
    positive: o.valueBoolean === true,
    maxProbability: num(o, "max-probability"),
    threshold: num(o, "threshold"),
    count: num(o, "finding-count"),
    seriesInstanceUid: component(o, "series-instance-uid")?.valueString,
  };
}

/** The model that made `report` (`Device` display of its Observations, or the report's code). */
export function modelOf(report: Resource, observations: Resource[]): string | undefined {
  const refs = new Set((report.result ?? []).map((r: { reference?: string }) => r.reference));
  return observations.find((o) => refs.has(`Observation/${o.id}`) && o.device?.display)?.device
    ?.display;
}

/** Whether a finding spans slice `k` (its bounding box, inclusive). */
export function onSlice(f: Finding, k: number): boolean {
  return !!f.box && k >= f.box.min[2] && k <= f.box.max[2];
}
