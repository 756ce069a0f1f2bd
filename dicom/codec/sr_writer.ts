/**
 * @module Writes an AI result as a DICOM Comprehensive 3D SR holding a TID 1500 Measurement Report
 * (PS3.16), with dcmjs's encoder, Explicit VR Little Endian.
 *
 * The tree: the report (126000 Imaging Measurement Report) with its language, the device that
 * observed (TID 1004: the model's name, UID, manufacturer, version), the procedure reported; an
 * Image Library of the source images the findings lie on (TID 1600); Imaging Measurements with one
 * Measurement Group per finding (TID 1411 Volumetric ROI Measurements): tracking identifier and
 * UID, the finding (nodule, mass), its site, the referenced segment of the Segmentation written
 * beside it and the series it was drawn on, then the axial long axis (mm) where measured, the
 * longest diameter in 3D (Diameter with derivation Maximum, mm), the volume (mm³) and, where
 * the model gives one, its probability (a local code: no standard code says "probability that
 * this finding is real"); and Qualitative Evaluations with the report's conclusion in words.
 * Codes are DCM, SCT and UCUM except that one.
 */
import { type Code, codeSequence, daTm, IMPLEMENTATION, writePart10 } from "./part10.ts";
import { SEGMENTATION_STORAGE } from "./seg_writer.ts";

export const COMPREHENSIVE_3D_SR_STORAGE = "1.2.840.10008.5.1.4.1.1.88.34";

/** The concepts of the report (PS3.16 Annex D for DCM; SNOMED CT; UCUM units). */
export const SR_CODES = {
  report: { value: "126000", scheme: "DCM", meaning: "Imaging Measurement Report" },
  language: {
    value: "121049",
    scheme: "DCM",
    meaning: "Language of Content Item and Descendants",
  },
  englishUs: { value: "en-US", scheme: "RFC5646", meaning: "English (United States)" },
  observerType: { value: "121005", scheme: "DCM", meaning: "Observer Type" },
  device: { value: "121007", scheme: "DCM", meaning: "Device" },
  deviceUid: { value: "121012", scheme: "DCM", meaning: "Device Observer UID" },
  deviceName: { value: "121013", scheme: "DCM", meaning: "Device Observer Name" },
  deviceManufacturer: { value: "121014", scheme: "DCM", meaning: "Device Observer Manufacturer" },
  deviceModel: { value: "121015", scheme: "DCM", meaning: "Device Observer Model Name" },
  procedureReported: { value: "121058", scheme: "DCM", meaning: "Procedure reported" },
  ctChest: { value: "169069000", scheme: "SCT", meaning: "CT of chest" },
  imageLibrary: { value: "111028", scheme: "DCM", meaning: "Image Library" },
  imageLibraryGroup: { value: "126200", scheme: "DCM", meaning: "Image Library Group" },
  imagingMeasurements: { value: "126010", scheme: "DCM", meaning: "Imaging Measurements" },
  measurementGroup: { value: "125007", scheme: "DCM", meaning: "Measurement Group" },
  trackingId: { value: "112039", scheme: "DCM", meaning: "Tracking Identifier" },
  trackingUid: { value: "112040", scheme: "DCM", meaning: "Tracking Unique Identifier" },
  finding: { value: "121071", scheme: "DCM", meaning: "Finding" },
  findingSite: { value: "363698007", scheme: "SCT", meaning: "Finding Site" },
  referencedSegment: { value: "121191", scheme: "DCM", meaning: "Referenced Segment" },
  sourceSeries: { value: "121232", scheme: "DCM", meaning: "Source series for segmentation" },
  longAxis: { value: "103339001", scheme: "SCT", meaning: "Long Axis" },
  diameter: { value: "81827009", scheme: "SCT", meaning: "Diameter" },
  derivation: { value: "121401", scheme: "DCM", meaning: "Derivation" },
  maximum: { value: "56851009", scheme: "SCT", meaning: "Maximum" },
  volume: { value: "118565006", scheme: "SCT", meaning: "Volume" },
  mm: { value: "mm", scheme: "UCUM", meaning: "millimeter" },
  mm3: { value: "mm3", scheme: "UCUM", meaning: "cubic millimeter" },
  unity: { value: "1", scheme: "UCUM", meaning: "no units" },
  /** No standard concept names the model's probability that a finding is real. */
  probability: { value: "ai-probability", scheme: "99IMAGINGAI", meaning: "AI probability" },
  qualitative: { value: "C0034375", scheme: "UMLS", meaning: "Qualitative Evaluations" },
  conclusion: { value: "121077", scheme: "DCM", meaning: "Conclusion" },
} as const satisfies Record<string, Code>;

export interface SrFinding {
  trackingId: string;
  trackingUid: string;
  /** Nodule or mass. */
  finding: Code;
  /** The lung, a lobe, a zone. */
  site: Code;
  /** The longest diameter on the axial slice where it is longest. */
  longAxisMm?: number;
  /**
   * Where the long axis was measured: its end points (column, row) in the image's 2D coordinates
   * (PS3.3 C.18.6.1.2: the top left pixel's outer corner is 0,0) on one source image.
   */
  longAxisLine?: { points: [number, number, number, number]; sopInstanceUid: string };
  /** The longest diameter in 3D (Diameter, derivation Maximum). */
  diameterMm: number;
  volumeMm3: number;
  /** 0–1; left out where the model gives none. */
  probability?: number;
  /** Its segment in the Segmentation. */
  segmentNumber: number;
  /** The source images it lies on (SOP Instance UIDs of the source series). */
  sourceSopInstanceUids: string[];
}

export interface SrInput {
  source: {
    /** Patient and General Study attributes to copy (naturalized keywords). */
    patientStudy: Record<string, string | undefined>;
    studyInstanceUid: string;
    seriesInstanceUid: string;
    sopClassUid: string;
  };
  /** The Segmentation the findings' segments are in (none when there is no finding). */
  segmentation?: { seriesInstanceUid: string; sopInstanceUid: string };
  findings: SrFinding[];
  device: {
    name: string;
    version: string;
    manufacturer: string;
    modelName: string;
    /** Device Observer UID: one per model version. */
    uid: string;
  };
  /** The report's conclusion in words (the same text as the FHIR DiagnosticReport's). */
  conclusion: string;
  procedure?: Code;
  seriesInstanceUid: string;
  sopInstanceUid: string;
  seriesNumber: number;
  seriesDescription: string;
  /** Defaults to now. */
  created?: Date;
  /**
   * Earlier reports this one supersedes (an analysis of the same study by the same model, run
   * again): the Predecessor Documents Sequence (PS3.3 C.17.2), so a PACS shows them as replaced.
   */
  predecessors?: { studyInstanceUid: string; seriesInstanceUid: string; sopInstanceUid: string }[];
}

type Item = Record<string, unknown>;

const DS = (v: number): number => Number(v.toPrecision(8));

function item(relationship: string, valueType: string, concept: Code | null, rest: Item): Item {
  return {
    RelationshipType: relationship,
    ValueType: valueType,
    ...(concept ? { ConceptNameCodeSequence: codeSequence(concept) } : {}),
    ...rest,
  };
}
const container = (rel: string, concept: Code, children: Item[]) =>
  item(rel, "CONTAINER", concept, { ContinuityOfContent: "SEPARATE", ContentSequence: children });
const text = (rel: string, concept: Code, value: string) =>
  item(rel, "TEXT", concept, { TextValue: value });
const code = (rel: string, concept: Code, value: Code) =>
  item(rel, "CODE", concept, { ConceptCodeSequence: codeSequence(value) });
const uidref = (rel: string, concept: Code, value: string) =>
  item(rel, "UIDREF", concept, { UID: value });
const num = (concept: Code, value: number, unit: Code, children: Item[] = []) =>
  item("CONTAINS", "NUM", concept, {
    MeasuredValueSequence: [{
      NumericValue: DS(value),
      MeasurementUnitsCodeSequence: codeSequence(unit),
    }],
    ...(children.length ? { ContentSequence: children } : {}),
  });

/** A polyline on one image the measurement was inferred from (TID 320: SCOORD, then its image). */
const drawnOn = (
  sopClassUid: string,
  line: NonNullable<SrFinding["longAxisLine"]>,
): Item =>
  item("INFERRED FROM", "SCOORD", null, {
    GraphicType: "POLYLINE",
    GraphicData: line.points.map((v) => Math.round(v * 1000) / 1000),
    ContentSequence: [
      item("SELECTED FROM", "IMAGE", null, {
        ReferencedSOPSequence: [{
          ReferencedSOPClassUID: sopClassUid,
          ReferencedSOPInstanceUID: line.sopInstanceUid,
        }],
      }),
    ],
  });

/** One Measurement Group (TID 1411) for a finding. */
function group(input: SrInput, f: SrFinding): Item {
  const c = SR_CODES;
  return container("CONTAINS", c.measurementGroup, [
    text("HAS OBS CONTEXT", c.trackingId, f.trackingId),
    uidref("HAS OBS CONTEXT", c.trackingUid, f.trackingUid),
    code("CONTAINS", c.finding, f.finding),
    code("HAS CONCEPT MOD", c.findingSite, f.site),
    item("CONTAINS", "IMAGE", c.referencedSegment, {
      ReferencedSOPSequence: [{
        ReferencedSOPClassUID: SEGMENTATION_STORAGE,
        ReferencedSOPInstanceUID: input.segmentation!.sopInstanceUid,
        ReferencedSegmentNumber: f.segmentNumber,
      }],
    }),
    uidref("CONTAINS", c.sourceSeries, input.source.seriesInstanceUid),
    ...(f.longAxisMm !== undefined
      ? [num(
        c.longAxis,
        f.longAxisMm,
        c.mm,
        f.longAxisLine ? [drawnOn(input.source.sopClassUid, f.longAxisLine)] : [],
      )]
      : []),
    num(c.diameter, f.diameterMm, c.mm, [code("HAS CONCEPT MOD", c.derivation, c.maximum)]),
    num(c.volume, f.volumeMm3, c.mm3),
    ...(f.probability !== undefined ? [num(c.probability, f.probability, c.unity)] : []),
  ]);
}

/**
 * The report as a DICOM Part 10 file. Throws a RangeError for a finding without source images or
 * with a measurement that is not a finite number.
 */
export function writeMeasurementReport(input: SrInput): Uint8Array {
  const c = SR_CODES;
  if (input.findings.length && !input.segmentation) {
    throw new RangeError("findings need the Segmentation their segments are in");
  }
  for (const f of input.findings) {
    if (!f.sourceSopInstanceUids.length) {
      throw new RangeError(`finding ${f.trackingId} lies on no source image`);
    }
    for (const v of [f.longAxisMm ?? 0, f.diameterMm, f.volumeMm3, f.probability ?? 0]) {
      if (!Number.isFinite(v)) throw new RangeError(`finding ${f.trackingId}: ${v} is no measure`);
    }
  }
  const created = daTm(input.created ?? new Date());
  const images = [...new Set(input.findings.flatMap((f) => f.sourceSopInstanceUids))];
  const imageRef = (uid: string) => ({
    ReferencedSOPClassUID: input.source.sopClassUid,
    ReferencedSOPInstanceUID: uid,
  });
  const content: Item[] = [
    code("HAS CONCEPT MOD", c.language, c.englishUs),
    code("HAS OBS CONTEXT", c.observerType, c.device),
    uidref("HAS OBS CONTEXT", c.deviceUid, input.device.uid),
    text("HAS OBS CONTEXT", c.deviceName, `${input.device.name} ${input.device.version}`),
    text("HAS OBS CONTEXT", c.deviceManufacturer, input.device.manufacturer),
    text("HAS OBS CONTEXT", c.deviceModel, input.device.modelName),
    code("HAS CONCEPT MOD", c.procedureReported, input.procedure ?? c.ctChest),
    // With no finding, no Image Library and no Imaging Measurements: an empty container is not
    // allowed, and the conclusion says there is nothing.
    ...(images.length
      ? [
        container("CONTAINS", c.imageLibrary, [
          container(
            "CONTAINS",
            c.imageLibraryGroup,
            images.map((uid) =>
              item("CONTAINS", "IMAGE", null, { ReferencedSOPSequence: [imageRef(uid)] })
            ),
          ),
        ]),
        container("CONTAINS", c.imagingMeasurements, input.findings.map((f) => group(input, f))),
      ]
      : []),
    container("CONTAINS", c.qualitative, [text("CONTAINS", c.conclusion, input.conclusion)]),
  ];
  const dataset: Record<string, unknown> = {
    ...Object.fromEntries(
      Object.entries(input.source.patientStudy).filter(([, v]) => v !== undefined),
    ),
    // dcmjs writes every string as UTF-8.
    SpecificCharacterSet: "ISO_IR 192",
    SOPClassUID: COMPREHENSIVE_3D_SR_STORAGE,
    SOPInstanceUID: input.sopInstanceUid,
    InstanceCreationDate: created.date,
    InstanceCreationTime: created.time,
    StudyInstanceUID: input.source.studyInstanceUid,
    SeriesInstanceUID: input.seriesInstanceUid,
    Modality: "SR",
    SeriesNumber: input.seriesNumber,
    SeriesDescription: input.seriesDescription,
    SeriesDate: created.date,
    SeriesTime: created.time,
    ReferencedPerformedProcedureStepSequence: [],
    InstanceNumber: 1,
    ContentDate: created.date,
    ContentTime: created.time,
    Manufacturer: input.device.manufacturer,
    ManufacturerModelName: input.device.modelName,
    DeviceSerialNumber: `${input.device.name}@${input.device.version}`,
    SoftwareVersions: input.device.version,
    // The one local code's scheme, declared where it is used (PS3.3 C.12.1.1.2).
    ...(input.findings.some((f) => f.probability !== undefined)
      ? {
        CodingSchemeIdentificationSequence: [{
          CodingSchemeDesignator: SR_CODES.probability.scheme,
          CodingSchemeName: "imaging-ai local codes",
          CodingSchemeResponsibleOrganization: "imaging-ai",
        }],
      }
      : {}),
    CompletionFlag: "COMPLETE",
    VerificationFlag: "UNVERIFIED",
    PerformedProcedureCodeSequence: [],
    ContentTemplateSequence: [{ MappingResource: "DCMR", TemplateIdentifier: "1500" }],
    // What the document references: the source images the findings lie on and the Segmentation.
    ...(input.segmentation
      ? {
        CurrentRequestedProcedureEvidenceSequence: [{
          StudyInstanceUID: input.source.studyInstanceUid,
          ReferencedSeriesSequence: [
            {
              SeriesInstanceUID: input.source.seriesInstanceUid,
              ReferencedSOPSequence: images.map(imageRef),
            },
            {
              SeriesInstanceUID: input.segmentation.seriesInstanceUid,
              ReferencedSOPSequence: [{
                ReferencedSOPClassUID: SEGMENTATION_STORAGE,
                ReferencedSOPInstanceUID: input.segmentation.sopInstanceUid,
              }],
            },
          ].filter((s) => s.ReferencedSOPSequence.length),
        }],
      }
      : {}),
    ...(input.predecessors?.length
      ? { PredecessorDocumentsSequence: hierarchicalReferences(input.predecessors) }
      : {}),
    ValueType: "CONTAINER",
    ConceptNameCodeSequence: codeSequence(c.report),
    ContinuityOfContent: "SEPARATE",
    ContentSequence: content,
  };
  return writePart10(dataset, IMPLEMENTATION);
}

/** SR instances as the Hierarchical SOP Instance Reference Macro: study, then series, then SOPs. */
function hierarchicalReferences(
  refs: NonNullable<SrInput["predecessors"]>,
): Record<string, unknown>[] {
  const studies = new Map<string, Map<string, string[]>>();
  for (const r of refs) {
    const series = studies.get(r.studyInstanceUid) ?? new Map<string, string[]>();
    studies.set(r.studyInstanceUid, series);
    series.set(r.seriesInstanceUid, [...series.get(r.seriesInstanceUid) ?? [], r.sopInstanceUid]);
  }
  return [...studies].map(([study, series]) => ({
    StudyInstanceUID: study,
    ReferencedSeriesSequence: [...series].map(([uid, sops]) => ({
      SeriesInstanceUID: uid,
      ReferencedSOPSequence: sops.map((sop) => ({
        ReferencedSOPClassUID: COMPREHENSIVE_3D_SR_STORAGE,
        ReferencedSOPInstanceUID: sop,
      })),
    })),
  }));
}
