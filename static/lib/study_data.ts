/**
 * @module What the viewer and the report page read about one study: the ImagingStudy and its
 * Patient, its analysis Tasks, the latest DiagnosticReport with its Observations, the findings,
 * and the clinicians' reviews of them; and the series' slices from WADO-RS metadata.
 */
import { fhirGet, getJson } from "./api.ts";
import { type Bundle, type Json, refId, type Resource, resourcesOf } from "./fhir_types.ts";
import { decisionOf, type Finding, findingsOf, modelOf, type StudyDecision } from "./findings.ts";
import { type Review, reviewQuery, reviewsByFinding } from "./review.ts";
import { type SliceInfo, sliceInfo, sortSlices } from "./series.ts";

export interface Analysis {
  tasks: Resource[];
  report?: Resource;
  observations: Resource[];
  findings: Finding[];
  decision?: StudyDecision;
  model?: string;
  reviews: Map<string, Review[]>;
}

export interface StudyHead {
  study: Resource;
  patient?: Resource;
  studyUid: string;
}

/** The study, its Patient and its DICOM Study Instance UID. */
export async function loadStudyHead(id: string, signal?: AbortSignal): Promise<StudyHead> {
  const study = await fhirGet<Resource>(`ImagingStudy/${id}`, signal);
  const patientId = refId(study.subject?.reference);
  const patient = patientId
    ? await fhirGet<Resource>(`Patient/${patientId}`, signal).catch(() => undefined)
    : undefined;
  const uid = (study.identifier ?? []).find((i: Json) => i.system === "urn:dicom:uid")?.value ?? "";
  return { study, patient, studyUid: uid.replace(/^urn:oid:/, "") };
}

/** The Tasks, the latest report and its findings, and their reviews. */
export async function loadAnalysis(id: string, signal?: AbortSignal): Promise<Analysis> {
  const focus = encodeURIComponent(`ImagingStudy/${id}`);
  const [taskBundle, reportBundle] = await Promise.all([
    fhirGet<Bundle>(`Task?focus=${focus}&_sort=-_lastUpdated&_count=20`, signal),
    fhirGet<Bundle>(
      `DiagnosticReport?imaging-study=${focus}&_sort=-_lastUpdated&_count=1&_include=DiagnosticReport:result`,
      signal,
    ),
  ]);
  const tasks = resourcesOf(taskBundle, "Task");
  const report = resourcesOf(reportBundle, "DiagnosticReport", "match")[0];
  const observations = resourcesOf(reportBundle, "Observation");
  const findings = report ? findingsOf(report, observations) : [];
  let reviews = new Map<string, Review[]>();
  if (findings.length) {
    const bundle = await fhirGet<Bundle>(reviewQuery(findings.map((f) => f.id)), signal);
    reviews = reviewsByFinding(resourcesOf(bundle, "Observation"));
  }
  return {
    tasks,
    report,
    observations,
    findings,
    decision: report ? decisionOf(report, observations) : undefined,
    model: report ? modelOf(report, observations) : undefined,
    reviews,
  };
}

/** The series of a study that the viewer opens: the analysed one, else the longest. */
export function defaultSeries(study: Resource, analysedUid?: string): string | undefined {
  const series = (study.series ?? []) as Json[];
  if (analysedUid && series.some((s) => s.uid === analysedUid)) return analysedUid;
  return series.slice().sort((a, b) =>
    (b.numberOfInstances ?? b.instance?.length ?? 0) -
    (a.numberOfInstances ?? a.instance?.length ?? 0)
  )[0]?.uid;
}

/** The slices of one series, sorted, from WADO-RS metadata. */
export async function loadSlices(
  studyUid: string,
  seriesUid: string,
  signal?: AbortSignal,
): Promise<SliceInfo[]> {
  const metadata = await getJson<Json[]>(
    `/dicomweb/studies/${studyUid}/series/${seriesUid}/metadata`,
    signal,
  );
  return sortSlices(metadata.map(sliceInfo).filter((s) => s.rows > 0 && s.columns > 0));
}

/** The instance number of an instance of the study (its image number in the series). */
export function instanceNumberOf(study: Resource, sopUid: string | undefined): number | undefined {
  if (!sopUid) return undefined;
  for (const series of (study.series ?? []) as Json[]) {
    const hit = (series.instance ?? []).find((i: Json) => i.uid === sopUid);
    if (hit) return hit.number;
  }
  return undefined;
}
