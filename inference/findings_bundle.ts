/**
 * @module The results of one job as one FHIR R4 transaction: the model's Device (conditional
 * create), the DiagnosticReport and its Observations (conditional creates on the job's
 * idempotency key, so a second run files nothing new) and the Task's update (completed, its
 * output the report; `If-Match` on the version read). All or nothing.
 */
import type {
  Bundle,
  BundleEntry,
  CodeableConcept,
  DiagnosticReport,
  Observation,
  ObservationComponent,
  Task,
} from "@medplum/fhirtypes";
import { MODEL_SYSTEM, modelDevice, modelIdentifier } from "./devices.ts";
import { type AnalysisJob, JOB_KEY_SYSTEM } from "./jobs.ts";
import type { ModelManifest, RunSettings } from "./manifest.ts";
import type { Finding } from "./postprocess.ts";
import type { Vec3, Volume } from "./volume.ts";
import { conclusionText, describeLocation, isChestModel } from "./report_text.ts";

export { conclusionText, describeLocation };

/** Codes of this service for measurements no standard code fits. */
export const MEASURE_SYSTEM = "urn:imaging-ai:measure";
const UCUM = "http://unitsofmeasure.org";
const SNOMED = "http://snomed.info/sct";
const LUNG = { system: SNOMED, code: "39607008", display: "Lung structure" };
const RIGHT_LUNG = { system: SNOMED, code: "3341006", display: "Right lung structure" };
const LEFT_LUNG = { system: SNOMED, code: "44029006", display: "Left lung structure" };

export interface ResultFiles {
  mask: { url: string; size: number };
  summary: { url: string; size: number };
}

export interface ReportInput {
  job: AnalysisJob;
  manifest: ModelManifest;
  settings: RunSettings;
  volume: Pick<
    Volume,
    | "seriesInstanceUid"
    | "studyDateTime"
    | "dims"
    | "sopInstanceUids"
    | "origin"
    | "sliceStep"
    | "spacing"
    | "rowDirection"
    | "columnDirection"
  >;
  findings: Finding[];
  maxProbability: number;
  /** The Task as read, with meta.versionId. */
  task: Task;
  files: ResultFiles;
  /** Now, ISO 8601. */
  issued: string;
  /** The execution provider used, for the report's text. */
  provider?: string;
}

const uuid = () => `urn:uuid:${crypto.randomUUID()}`;
const round = (v: number, digits = 1) => Math.round(v * 10 ** digits) / 10 ** digits;
const quantity = (value: number, unit: string, code = unit) => ({
  value,
  unit,
  system: UCUM,
  code,
});
const measure = (code: string, display: string): CodeableConcept => ({
  coding: [{ system: MEASURE_SYSTEM, code, display }],
  text: display,
});

/** The transaction Bundle that files the results of `input.job`. */
export function buildFindingsBundle(input: ReportInput): Bundle {
  const { job, manifest: m, findings, volume, settings } = input;
  const key = job.idempotencyKey;
  const chest = isChestModel(m);
  const label = m.labels[0];
  const deviceUrl = uuid();
  const reportUrl = uuid();
  const imagingStudy = { reference: `ImagingStudy/${job.imagingStudyId}` };
  const subject = { reference: job.patient };
  const device = { reference: deviceUrl, display: `${m.displayName} ${m.version}` };
  const effective = volume.studyDateTime ? { effectiveDateTime: volume.studyDateTime } : {};
  const seriesNote = `Series ${volume.seriesInstanceUid}`;

  const findingEntries = findings.map((f): BundleEntry => {
    const slice = Math.min(volume.dims.z - 1, Math.max(0, Math.round(f.centreVoxel[2])));
    const components: ObservationComponent[] = [
      {
        code: measure("probability", "Probability (maximum)"),
        valueQuantity: quantity(round(f.maxProbability, 4), "1"),
      },
      {
        code: measure("mean-probability", "Probability (mean)"),
        valueQuantity: quantity(round(f.meanProbability, 4), "1"),
      },
      {
        code: measure("longest-diameter", "Longest diameter"),
        valueQuantity: quantity(round(f.longestDiameterMm), "mm"),
      },
      ...axes("centre", "Centre (patient LPS, mm)", f.centrePatient, (v) => ({
        valueQuantity: quantity(round(v, 2), "mm"),
      })),
      ...axes("centre-voxel", "Centre voxel index", f.centreVoxel, (v) => ({
        valueInteger: Math.round(v),
      }), ["i", "j", "k"]),
      {
        code: measure("bounding-box", "Bounding box (voxel index, inclusive)"),
        valueString: `[${f.boundingBox.min.join(",")}]-[${f.boundingBox.max.join(",")}]`,
      },
      { code: measure("voxel-count", "Voxels"), valueInteger: f.voxels },
      {
        code: measure("series-instance-uid", "Series Instance UID"),
        valueString: volume.seriesInstanceUid,
      },
      {
        code: measure("centre-sop-instance-uid", "SOP Instance UID of the centre slice"),
        valueString: volume.sopInstanceUids[slice],
      },
    ];
    const observation: Observation = {
      resourceType: "Observation",
      identifier: [{ system: JOB_KEY_SYSTEM, value: `${key}#${f.number}` }],
      status: "final",
      category: [imagingCategory()],
      code: label.code,
      subject,
      focus: [imagingStudy],
      derivedFrom: [imagingStudy],
      ...effective,
      issued: input.issued,
      device,
      valueQuantity: quantity(round(f.volumeMm3), "mm3"),
      ...(chest
        ? {
          bodySite: {
            coding: [
              f.centrePatient[0] < 0 ? RIGHT_LUNG : f.centrePatient[0] > 0 ? LEFT_LUNG : LUNG,
            ],
          },
        }
        : {}),
      component: components,
      note: [{
        text: `Finding ${f.number} of ${findings.length}: ${round(f.longestDiameterMm)} mm, ${
          round(f.volumeMm3)
        } mm³, ${describeLocation(f, volume, chest)}. ${seriesNote}.`,
      }],
    };
    return conditionalCreate(uuid(), observation, `${key}#${f.number}`);
  });

  const positive = findings.length > 0;
  const studyObservation: Observation = {
    resourceType: "Observation",
    identifier: [{ system: JOB_KEY_SYSTEM, value: `${key}#study` }],
    status: "final",
    category: [imagingCategory()],
    code: measure("study-decision", `${label.name} present (model decision)`),
    subject,
    focus: [imagingStudy],
    derivedFrom: [imagingStudy],
    ...effective,
    issued: input.issued,
    device,
    valueBoolean: positive,
    interpretation: [{
      coding: [{
        system: "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
        code: positive ? "POS" : "NEG",
        display: positive ? "Positive" : "Negative",
      }],
    }],
    component: [
      {
        code: measure("max-probability", "Highest probability"),
        valueQuantity: quantity(round(input.maxProbability, 4), "1"),
      },
      {
        code: measure("threshold", "Decision threshold"),
        valueQuantity: quantity(settings.threshold, "1"),
      },
      { code: measure("finding-count", "Findings"), valueInteger: findings.length },
      {
        code: measure("series-instance-uid", "Series Instance UID"),
        valueString: volume.seriesInstanceUid,
      },
    ],
  };
  const studyEntry = conditionalCreate(uuid(), studyObservation, `${key}#study`);
  const observationEntries = [studyEntry, ...findingEntries];

  const conclusion = conclusionText(input);
  const report: DiagnosticReport = {
    resourceType: "DiagnosticReport",
    identifier: [{ system: JOB_KEY_SYSTEM, value: key }],
    status: "final",
    category: [{
      coding: [{
        system: "http://terminology.hl7.org/CodeSystem/v2-0074",
        code: "RAD",
        display: "Radiology",
      }],
    }],
    code: {
      coding: [{
        system: "http://loinc.org",
        code: "18748-4",
        display: "Diagnostic imaging study",
      }],
      text: `${m.displayName} analysis`,
    },
    subject,
    ...effective,
    issued: input.issued,
    imagingStudy: [imagingStudy],
    result: observationEntries.map((e) => ({ reference: e.fullUrl! })),
    conclusion,
    conclusionCode: [
      positive ? { coding: label.code.coding, text: label.code.text } : {
        text: `No ${label.name} found by the model`,
      },
    ],
    presentedForm: [
      {
        contentType: "application/gzip",
        url: input.files.mask.url,
        size: input.files.mask.size,
        title: "Segmentation mask (NIfTI)",
      },
      {
        contentType: "application/json",
        url: input.files.summary.url,
        size: input.files.summary.size,
        title: "Findings (JSON)",
      },
    ],
  };

  const summary = { ...modelSummaryOf(m) };
  const deviceEntry: BundleEntry = {
    fullUrl: deviceUrl,
    resource: modelDevice(summary),
    request: {
      method: "POST",
      url: "Device",
      ifNoneExist: `identifier=${MODEL_SYSTEM}|${modelIdentifier(m)}`,
    },
  };
  return {
    resourceType: "Bundle",
    type: "transaction",
    entry: [
      deviceEntry,
      {
        fullUrl: reportUrl,
        resource: report,
        request: {
          method: "POST",
          url: "DiagnosticReport",
          ifNoneExist: `identifier=${JOB_KEY_SYSTEM}|${key}`,
        },
      },
      ...observationEntries,
      taskCompletedEntry(input.task, reportUrl, deviceUrl, input.issued),
    ],
  };
}

function conditionalCreate(fullUrl: string, resource: Observation, value: string): BundleEntry {
  return {
    fullUrl,
    resource,
    request: {
      method: "POST",
      url: "Observation",
      // The query part of a URL: "#" must be escaped there.
      ifNoneExist: `identifier=${JOB_KEY_SYSTEM}|${value.replaceAll("#", "%23")}`,
    },
  };
}

function imagingCategory(): CodeableConcept {
  return {
    coding: [{
      system: "http://terminology.hl7.org/CodeSystem/observation-category",
      code: "imaging",
      display: "Imaging",
    }],
  };
}

function axes(
  code: string,
  display: string,
  v: Vec3,
  value: (n: number) => Partial<ObservationComponent>,
  names = ["x", "y", "z"],
): ObservationComponent[] {
  return v.map((n, a) => ({
    code: measure(`${code}-${names[a]}`, `${display}: ${names[a]}`),
    ...value(n),
  }));
}

/** The Device fields `devices.ts` needs, from a manifest. */
function modelSummaryOf(m: ModelManifest) {
  return {
    name: m.name,
    version: m.version,
    displayName: m.displayName,
    manufacturer: m.manufacturer ?? "imaging-ai (this service)",
    intendedUse: m.intendedUse,
    notice: m.notice,
    modality: m.modality,
    bodyPart: m.bodyPart,
    defaultThreshold: m.defaultThreshold,
  };
}

/** The Task's PUT entry: completed, its output the report (the rest of the Task kept). */
export function taskCompletedEntry(
  task: Task,
  reportUrl: string,
  deviceUrl: string | undefined,
  now: string,
): BundleEntry {
  const { meta, ...rest } = task;
  const updated: Task = {
    ...rest,
    status: "completed",
    statusReason: undefined,
    lastModified: now,
    executionPeriod: { ...task.executionPeriod, end: now },
    ...(deviceUrl && !task.owner ? { owner: { reference: deviceUrl } } : {}),
    output: [
      ...(task.output ?? []).filter((o) => o.type?.text !== "DiagnosticReport"),
      { type: { text: "DiagnosticReport" }, valueReference: { reference: reportUrl } },
    ],
  };
  if (!updated.statusReason) delete updated.statusReason;
  return {
    resource: updated,
    request: {
      method: "PUT",
      url: `Task/${task.id}`,
      ...(meta?.versionId ? { ifMatch: `W/"${meta.versionId}"` } : {}),
    },
  };
}
