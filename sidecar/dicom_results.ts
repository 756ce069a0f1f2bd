/**
 * @module An analysis's results as DICOM objects for PACS and viewers (IHE AI Results): a
 * Segmentation with one segment per finding, on the analysed series' own grid, and a TID 1500
 * Measurement Report whose measurement groups reference those segments. Both go into the analysed
 * study as new series made by the model (its name, version and manufacturer as the equipment).
 *
 * Their UIDs derive from the job's idempotency key, so a redelivered job writes the same objects
 * again (the archive answers "already stored") instead of new ones; a new analysis of the study
 * has a new key and makes new series. `storeDicomResults` stores them over STOW-RS.
 */
import { failedInstances, stowBody } from "../dicom/codec/stow_client.ts";
import {
  CODES,
  SEGMENTATION_STORAGE,
  uidFrom,
  writeSegmentation,
} from "../dicom/codec/seg_writer.ts";
import {
  COMPREHENSIVE_3D_SR_STORAGE,
  type SrFinding,
  type SrInput,
  writeMeasurementReport,
} from "../dicom/codec/sr_writer.ts";
import type { Logger } from "../platform/log.ts";
import type { AnalysisJob } from "../queue/jobs.ts";
import { type ApiClient, ApiError } from "./api_client.ts";
import { findingSite, findingTracking, LUNG_MASS, type ResultFiles } from "./findings_bundle.ts";
import type { Code } from "../dicom/codec/part10.ts";
import type { ModelManifest } from "./manifest.ts";
import type { Finding, Segmentation } from "./postprocess.ts";
import type { Volume } from "./volume.ts";
import { axialAxes } from "./nodules/measure.ts";

/** One written object: where it goes, and its bytes (Part 10). */
export interface DicomObject {
  seriesInstanceUid: string;
  sopInstanceUid: string;
  sopClassUid: string;
  bytes: Uint8Array;
}

export interface DicomResults {
  /** Absent when there is no finding (a Segmentation needs a segment). */
  segmentation?: DicomObject;
  report: DicomObject;
}

/** Series numbers of the results, high enough not to meet the modality's own. */
export const SEG_SERIES_NUMBER = 9001;
export const SR_SERIES_NUMBER = 9002;

/** The most segments a label plane can tell apart (its values stop at 255). */
const MAX_SEGMENTS = 254;

/** CIELab display colours, one per segment in turn (red, yellow, green, cyan, blue, magenta). */
const COLOURS: [number, number, number][] = [
  [34886, 53484, 50171],
  [63163, 32586, 59856],
  [56950, 14122, 55011],
  [59029, 21298, 29530],
  [21049, 51786, 21186],
  [39326, 57680, 26138],
];

type Source = Omit<Volume, "data">;

/** The segment's type: Nodule or Mass, its region the lung (CID 7159 lesion types). */
function segmentType(f: Finding) {
  return f.lung?.kind === "mass" ? CODES.mass : CODES.nodule;
}

/**
 * The finding's axial long axis and where it lies, so a viewer can draw it: the lung stage's
 * measure on its slice for lung findings, else the longest on any slice (edge to edge, as the lung
 * stage measures). Undefined when the finding has no pixel in the label planes.
 */
function longAxisOf(
  f: Finding,
  maskSlice: (z: number) => Uint8Array | null,
  v: Source,
): Pick<SrFinding, "longAxisMm" | "longAxisLine"> {
  const { min, max } = f.boundingBox;
  const slices = f.lung ? [f.lung.measures.axialSlice] : range(min[2], max[2]);
  let best: { z: number; long: number; ends: [[number, number], [number, number]] } | undefined;
  for (const z of slices) {
    const plane = maskSlice(z);
    if (!plane) continue;
    const xs: number[] = [], ys: number[] = [];
    for (let y = min[1]; y <= max[1]; y++) {
      for (let x = min[0]; x <= max[0]; x++) {
        if (plane[y * v.dims.x + x] === f.number) xs.push(x), ys.push(y);
      }
    }
    if (!xs.length) continue;
    const axes = axialAxes(xs, ys, v.spacing.x, v.spacing.y);
    if (!best || axes.long > best.long) best = { z, ...axes };
  }
  if (!best) return f.lung ? { longAxisMm: f.lung.measures.longAxisMm } : {};
  // Pixel units with centres at the index → image coordinates, whose origin is the first
  // pixel's outer corner (centres at index + 0.5).
  const [[x1, y1], [x2, y2]] = best.ends;
  return {
    longAxisMm: f.lung?.measures.longAxisMm ?? Math.round(best.long * 10) / 10,
    longAxisLine: {
      points: [x1 + 0.5, y1 + 0.5, x2 + 0.5, y2 + 0.5],
      sopInstanceUid: v.sopInstanceUids[best.z],
    },
  };
}

const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

/** The SR's finding site: the lung, as the Observation's bodySite says. */
function siteConcept(f: Finding): Code {
  const site = findingSite(f);
  return { value: site.code, scheme: "SCT", meaning: site.display };
}

/**
 * The SR's finding: the SNOMED CT concept the FHIR Observation is coded with (Lung mass, or the
 * model's label, e.g. Nodule of lung), so the SR and the Observation say the same thing.
 */
function findingConcept(f: Finding, m: ModelManifest): Code {
  const concept = f.lung?.kind === "mass" ? LUNG_MASS : m.labels[0]?.code;
  const sct = concept?.coding?.find((c) => c.system === "http://snomed.info/sct" && c.code);
  if (!sct) return segmentType(f);
  return { value: sct.code!, scheme: "SCT", meaning: sct.display ?? concept?.text ?? sct.code! };
}

/** The SEG (when anything was found) and the SR of one analysis. */
export function dicomResults(input: {
  job: AnalysisJob;
  manifest: ModelManifest;
  volume: Source;
  segmentation: Pick<Segmentation, "findings" | "maskSlice">;
  conclusion: string;
  created?: Date;
  /** Earlier SRs of this model for the study, which this one supersedes. */
  predecessors?: SrInput["predecessors"];
}): DicomResults {
  const { job, manifest: m, volume: v } = input;
  const key = job.idempotencyKey;
  const findings = input.segmentation.findings.filter((f) => f.number <= MAX_SEGMENTS);
  const device = {
    name: m.name,
    version: m.version,
    manufacturer: m.manufacturer ?? "imaging-ai (this service)",
    modelName: m.displayName,
  };
  const tracking = (f: Finding) => findingTracking(key, f.number);
  const source = {
    patientStudy: v.patientStudy,
    studyInstanceUid: v.studyInstanceUid,
    seriesInstanceUid: v.seriesInstanceUid,
    sopClassUid: v.sopClassUid,
  };
  const frameOfReferenceUid = v.frameOfReferenceUid ?? uidFrom(`${v.seriesInstanceUid}:frame`);
  let segmentation: DicomObject | undefined;
  if (findings.length) {
    const seriesInstanceUid = uidFrom(`${key}:seg-series`);
    const sopInstanceUid = uidFrom(`${key}:seg`);
    segmentation = {
      seriesInstanceUid,
      sopInstanceUid,
      sopClassUid: SEGMENTATION_STORAGE,
      bytes: writeSegmentation({
        source: {
          ...source,
          frameOfReferenceUid,
          sopInstanceUids: v.sopInstanceUids,
          rows: v.dims.y,
          columns: v.dims.x,
          pixelSpacing: [v.spacing.y, v.spacing.x],
          sliceThickness: v.sliceThickness,
          spacingBetweenSlices: v.spacing.z,
          orientation: [...v.rowDirection, ...v.columnDirection],
          positions: v.positions,
        },
        segments: findings.map((f, i) => ({
          number: f.number,
          label: `${segmentType(f).meaning} ${f.number}`,
          category: CODES.morphologicallyAltered,
          type: segmentType(f),
          anatomicRegion: CODES.lung,
          trackingId: tracking(f).id,
          trackingUid: tracking(f).uid,
          cieLab: COLOURS[i % COLOURS.length],
        })),
        algorithm: { ...device, softwareVersions: m.version },
        maskSlice: (z) => input.segmentation.maskSlice(z),
        seriesInstanceUid,
        sopInstanceUid,
        seriesNumber: SEG_SERIES_NUMBER,
        seriesDescription: `${m.displayName} ${m.version}: findings (SEG)`.slice(0, 64),
        contentLabel: "AI_FINDINGS",
        contentDescription: `${m.displayName} ${m.version}`.slice(0, 64),
        created: input.created,
      }),
    };
  }
  const srSeries = uidFrom(`${key}:sr-series`);
  const srInstance = uidFrom(`${key}:sr`);
  const report: DicomObject = {
    seriesInstanceUid: srSeries,
    sopInstanceUid: srInstance,
    sopClassUid: COMPREHENSIVE_3D_SR_STORAGE,
    bytes: writeMeasurementReport({
      source,
      segmentation,
      findings: segmentation
        ? findings.map((f) => ({
          trackingId: tracking(f).id,
          trackingUid: tracking(f).uid,
          finding: findingConcept(f, m),
          site: siteConcept(f),
          ...longAxisOf(f, input.segmentation.maskSlice, v),
          diameterMm: f.longestDiameterMm,
          volumeMm3: f.volumeMm3,
          probability: f.probability ?? f.maxProbability,
          segmentNumber: f.number,
          sourceSopInstanceUids: v.sopInstanceUids.slice(
            f.boundingBox.min[2],
            f.boundingBox.max[2] + 1,
          ),
        }))
        : [],
      device: { ...device, uid: uidFrom(`model:${m.name}@${m.version}`) },
      conclusion: input.conclusion,
      predecessors: input.predecessors,
      seriesInstanceUid: srSeries,
      sopInstanceUid: srInstance,
      seriesNumber: SR_SERIES_NUMBER,
      seriesDescription: `${m.displayName} ${m.version}: report (SR)`.slice(0, 64),
      created: input.created,
    }),
  };
  return { segmentation, report };
}

/**
 * Stores the SEG and SR into the analysed study over STOW-RS and answers their WADO-RS URLs. An
 * object the archive holds already under its UID (a redelivered job) counts as stored. A refusal
 * (a 4xx: a client registered before workers could store, say) is logged and the report is filed
 * without them; a 5xx or a network failure throws, so the job is tried again.
 */
export async function storeDicomResults(
  api: ApiClient,
  log: Logger,
  job: AnalysisJob,
  results: DicomResults,
  signal?: AbortSignal,
): Promise<ResultFiles["dicom"]> {
  const objects = [results.segmentation, results.report].filter((o) => o !== undefined);
  const { body, contentType } = await stowBody(objects.map((o) => o.bytes));
  const path = `dicomweb/studies/${job.studyInstanceUid}`;
  const response = await api.request(path, {
    method: "POST",
    headers: {
      "Content-Type": contentType,
      Accept: "application/dicom+json",
    },
    body,
    requestId: job.requestId,
    signal,
  });
  const text = await response.text();
  if (response.status >= 500) {
    throw new ApiError(response.status, "POST", path, text.slice(0, 500));
  }
  const failed = failedInstances(text);
  // Every part held already under its UID (a 409 when all failed so): stored, as by the first try.
  const onlyDuplicates = failed.size > 0 &&
    [...failed.values()].every((reason) => reason === DUPLICATE_SOP_INSTANCE);
  const refused = onlyDuplicates ? false : response.status >= 400 || failed.size > 0;
  if (refused) {
    log("warn", "the DICOM results (SEG, SR) were not stored; the report is filed without", {
      jobId: job.jobId,
      requestId: job.requestId,
      status: response.status,
      detail: text.slice(0, 300),
    });
    return undefined;
  }
  const url = (o: DicomObject) =>
    `${api.baseUrl}/dicomweb/studies/${job.studyInstanceUid}/series/${o.seriesInstanceUid}` +
    `/instances/${o.sopInstanceUid}`;
  const file = (o: DicomObject) => ({ url: url(o), size: o.bytes.length });
  return {
    ...(results.segmentation ? { segmentation: file(results.segmentation) } : {}),
    report: file(results.report),
  };
}

/** STOW-RS's reason for a SOP Instance UID the archive holds with other content (PS3.4 B.2.3). */
const DUPLICATE_SOP_INSTANCE = 0x0111;
