/**
 * @module The results of one job as one FHIR R4 transaction: the model's Device (conditional
 * create), the DiagnosticReport and its Observations (conditional creates on the job's
 * idempotency key, so a second run files nothing new), the Task's update (completed, its
 * output the report; `If-Match` on the version read), then the order, performers and Provenance
 * (result_provenance.ts). All or nothing.
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
import {
  MEASURE_SYSTEM,
  MODEL_SYSTEM,
  modelDevice,
  modelIdentifier,
} from "../queue/model_devices.ts";
import { type AnalysisJob, JOB_KEY_SYSTEM } from "../queue/jobs.ts";
import type { ModelManifest, RunSettings } from "./manifest.ts";
import type { Finding } from "./postprocess.ts";
import type { Vec3, Volume } from "./volume.ts";
import {
  conclusionText,
  describeLocation,
  findingWords,
  isChestModel,
  sizeGroup,
} from "./report_text.ts";
import type { LungFinding } from "./nodules/assess.ts";
import { uidFrom } from "../dicom/codec/part10.ts";
import {
  type DicomResultFiles,
  type PriorResults,
  resultDocumentEntries,
} from "./result_documents.ts";
import { withOrderAndProvenance } from "./result_provenance.ts";

export { conclusionText, describeLocation, MEASURE_SYSTEM };

const UCUM = "http://unitsofmeasure.org";
const SNOMED = "http://snomed.info/sct";
const LUNG = { system: SNOMED, code: "39607008", display: "Lung structure" };
const RIGHT_LUNG = { system: SNOMED, code: "3341006", display: "Right lung structure" };
const LEFT_LUNG = { system: SNOMED, code: "44029006", display: "Left lung structure" };
/** A lesion of the lung over 30 mm (Fleischner Society glossary): a mass, not a nodule. */
export const LUNG_MASS: CodeableConcept = {
  coding: [{ system: SNOMED, code: "309529002", display: "Lung mass" }],
  text: "Lung mass",
};
const DCM = "http://dicom.nema.org/resources/ontology/DCM";
const LONG_AXIS = { system: SNOMED, code: "103339001", display: "Long axis" };
/** The longest diameter in 3D: SNOMED's Diameter, as the SR writes it (with derivation Maximum). */
const DIAMETER = { system: SNOMED, code: "81827009", display: "Diameter" };
const VOLUME = { system: SNOMED, code: "118565006", display: "Volume" };
const TRACKING_ID = { system: DCM, code: "112039", display: "Tracking Identifier" };
const TRACKING_UID = { system: DCM, code: "112040", display: "Tracking Unique Identifier" };

/** The lung a finding lies in (patient LPS: x < 0 is the right), as the SR's finding site too. */
export function findingSite(f: Pick<Finding, "lung" | "centrePatient">) {
  return f.lung
    ? (f.lung.lung === "right" ? RIGHT_LUNG : LEFT_LUNG)
    : f.centrePatient[0] < 0
    ? RIGHT_LUNG
    : f.centrePatient[0] > 0
    ? LEFT_LUNG
    : LUNG;
}

/**
 * A finding's tracking identifier and UID, the same in its Observation and in the SR's measurement
 * group and the SEG's segment, so a reader can go from one to the other.
 */
export function findingTracking(key: string, number: number): { id: string; uid: string } {
  return { id: `finding-${number}`, uid: uidFrom(`${key}:finding:${number}`) };
}
const SHORT_AXIS = { system: SNOMED, code: "103340004", display: "Short axis" };

export interface ResultFiles {
  mask: { url: string; size: number };
  /** The lung mask (chest models with a lung stage). */
  lungs?: { url: string; size: number };
  summary: { url: string; size: number };
  /** The DICOM results stored into the study (WADO-RS URLs), when they could be. */
  dicom?: DicomResultFiles;
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
  /** Earlier results of this model for this study, superseded by these (result_documents.ts). */
  priors?: PriorResults[];
  /** What the lung stage found of the lungs (chest models with one). */
  lungs?: { found: boolean; volumeMl: { right: number; left: number } };
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
      ...(f.probability === undefined ? [] : [{
        code: measure("calibrated-probability", "Probability (calibrated on held-out data)"),
        valueQuantity: quantity(round(f.probability, 4), "1"),
      }]),
      {
        code: measure("probability", "Probability (maximum)"),
        valueQuantity: quantity(round(f.maxProbability, 4), "1"),
      },
      {
        code: measure("mean-probability", "Probability (mean)"),
        valueQuantity: quantity(round(f.meanProbability, 4), "1"),
      },
      {
        // The standard code first; the local one stays for the readers that know it.
        code: {
          coding: [DIAMETER, ...measure("longest-diameter", "Longest diameter").coding!],
          text: "Longest diameter (3D)",
        },
        valueQuantity: quantity(round(f.longestDiameterMm), "mm"),
      },
      {
        code: { coding: [VOLUME], text: "Volume" },
        valueQuantity: quantity(round(f.volumeMm3), "mm3"),
      },
      { code: { coding: [TRACKING_ID] }, valueString: findingTracking(key, f.number).id },
      { code: { coding: [TRACKING_UID] }, valueString: findingTracking(key, f.number).uid },
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
      ...(f.lung ? lungComponents(f.lung) : []),
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
      code: f.lung?.kind === "mass" ? LUNG_MASS : label.code,
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
            coding: [findingSite(f)],
            text: describeLocation(f, volume, chest),
          },
        }
        : {}),
      component: components,
      note: [{
        text: `Finding ${f.number} of ${findings.length}: ${
          findingWords(f, volume, chest)
        }. ${seriesNote}.`,
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
      ...(input.files.lungs
        ? [{
          contentType: "application/gzip",
          url: input.files.lungs.url,
          size: input.files.lungs.size,
          title: "Lung mask (NIfTI: 1 right, 2 left)",
        }]
        : []),
      ...(input.files.dicom?.segmentation
        ? [{
          contentType: "application/dicom",
          url: input.files.dicom.segmentation.url,
          size: input.files.dicom.segmentation.size,
          title: "Findings as a DICOM Segmentation (SEG), in the study",
        }]
        : []),
      ...(input.files.dicom
        ? [{
          contentType: "application/dicom",
          url: input.files.dicom.report.url,
          size: input.files.dicom.report.size,
          title: "Measurement report as DICOM SR (TID 1500), in the study",
        }]
        : []),
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
  return withOrderAndProvenance({
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
      // The DICOM results as a document, superseding the model's earlier ones for this study.
      ...(input.files.dicom
        ? resultDocumentEntries({
          job,
          manifest: m,
          files: input.files.dicom,
          priors: input.priors ?? [],
          subject,
          imagingStudy,
          report: { reference: reportUrl },
          device: { reference: deviceUrl, display: device.display },
          issued: input.issued,
        })
        : []),
    ],
  }, { job, task: input.task, issued: input.issued, device, priors: input.priors });
}

/** The lung stage's measures as components: axes (SNOMED CT), mean diameter, attenuation. */
function lungComponents(l: LungFinding): ObservationComponent[] {
  return [
    {
      code: { coding: [LONG_AXIS], text: "Long axis (axial)" },
      valueQuantity: quantity(round(l.measures.longAxisMm), "mm"),
    },
    {
      code: { coding: [SHORT_AXIS], text: "Short axis (axial, perpendicular)" },
      valueQuantity: quantity(round(l.measures.shortAxisMm), "mm"),
    },
    {
      code: measure("mean-diameter", "Mean diameter ((long + short axis) / 2)"),
      valueQuantity: quantity(round(l.measures.meanDiameterMm), "mm"),
    },
    { code: measure("attenuation", "Attenuation"), valueString: l.measures.attenuation },
    {
      code: measure("mean-hu", "Mean attenuation (HU)"),
      valueQuantity: quantity(round(l.measures.meanHu, 0), "[hnsf'U]"),
    },
    { code: measure("size-group", "Fleischner size group"), valueString: sizeGroup(l) },
  ];
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
