/**
 * @module Writes a binary DICOM Segmentation (PS3.3 A.51, Segmentation Storage) of label planes on
 * a source series' own grid, with dcmjs's encoder (a naturalized dataset → `denaturalizeDataset` →
 * `DicomDict.write()`, Explicit VR Little Endian).
 *
 * One segment per label value (the caller's choice of what a label is: this service writes one per
 * finding, so each finding keeps its own number, tracking id and UID). A frame is one segment on
 * one source slice, written only where that segment has pixels; every frame references its source
 * image (Derivation Image Sequence) and carries its plane position, so a viewer places it without
 * reading the source series. The Frame of Reference, orientation and pixel spacing are the
 * source's. Frames are ordered by segment, then by slice, and indexed on the two dimensions
 * ReferencedSegmentNumber and ImagePositionPatient.
 */
import { type Code, codeSequence, daTm, IMPLEMENTATION, uidFrom, writePart10 } from "./part10.ts";

export { type Code, uidFrom };

export const SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4";

/** The codes a segment of a lung finding uses (SNOMED CT, as DICOM CID 7150/7151 list them). */
export const CODES = {
  morphologicallyAltered: {
    value: "49755003",
    scheme: "SCT",
    meaning: "Morphologically Altered Structure",
  },
  nodule: { value: "27925004", scheme: "SCT", meaning: "Nodule" },
  mass: { value: "4147007", scheme: "SCT", meaning: "Mass" },
  lung: { value: "39607008", scheme: "SCT", meaning: "Lung" },
  /** CID 7162: the family of the algorithm that made the segments. */
  artificialIntelligence: { value: "123110", scheme: "DCM", meaning: "Artificial Intelligence" },
} as const satisfies Record<string, Code>;

/** The source series the segmentation is drawn on: its identity, patient, study and grid. */
export interface SegSource {
  /** Patient and General Study attributes to copy (naturalized keywords, e.g. PatientName). */
  patientStudy: Record<string, string | undefined>;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  frameOfReferenceUid: string;
  /** SOP Class of the source images (e.g. CT Image Storage). */
  sopClassUid: string;
  /** One per slice, in slice order (index z of `maskSlice`). */
  sopInstanceUids: string[];
  rows: number;
  columns: number;
  /** mm between rows, then between columns (DICOM PixelSpacing order). */
  pixelSpacing: [number, number];
  /** mm; the distance between slices when absent. */
  sliceThickness?: number;
  spacingBetweenSlices: number;
  /** ImageOrientationPatient: the row direction, then the column direction. */
  orientation: number[];
  /** ImagePositionPatient of each slice (LPS mm), in slice order. */
  positions: number[][];
}

export interface SegSegment {
  /** 1-based; the label value of its pixels in `maskSlice`. */
  number: number;
  label: string;
  category: Code;
  type: Code;
  anatomicRegion?: Code;
  trackingId?: string;
  trackingUid?: string;
  /** Recommended display colour, CIELab scaled to 0–65535 (PS3.3 C.10.7.1.1). */
  cieLab?: [number, number, number];
}

/** The algorithm (and device) that made the segments. */
export interface SegAlgorithm {
  name: string;
  version: string;
  manufacturer: string;
  /** The Enhanced General Equipment module's model name. */
  modelName: string;
  /** Defaults to the algorithm name and version. */
  deviceSerialNumber?: string;
  softwareVersions: string;
}

export interface SegInput {
  source: SegSource;
  segments: SegSegment[];
  algorithm: SegAlgorithm;
  /** Label value per pixel of slice z, `[row][column]`; null where the slice has no label. */
  maskSlice(z: number): Uint8Array | null;
  seriesInstanceUid: string;
  sopInstanceUid: string;
  seriesNumber: number;
  seriesDescription: string;
  /** ContentLabel (a code string: A–Z, 0–9, _ and space, up to 16). */
  contentLabel: string;
  contentDescription?: string;
  /** Defaults to now. */
  created?: Date;
}

const DS = (v: number): number => Math.round(v * 1e6) / 1e6 + 0;

type Frame = { segment: number; z: number };

/**
 * One pass over the label planes (each asked for once: `maskSlice` may compute it): the frames in
 * order (segment, then slice), and the planes they are drawn from. Throws for a plane of the wrong
 * size.
 */
function framesOf(input: SegInput): { frames: Frame[]; planes: Map<number, Uint8Array> } {
  const { source, segments } = input;
  const size = source.rows * source.columns;
  const wanted = new Set(segments.map((s) => s.number));
  const onSlice = new Map<number, number[]>(segments.map((s) => [s.number, []]));
  const planes = new Map<number, Uint8Array>();
  for (let z = 0; z < source.sopInstanceUids.length; z++) {
    const plane = input.maskSlice(z);
    if (!plane) continue;
    if (plane.length !== size) {
      throw new RangeError(
        `slice ${z} has ${plane.length} pixels, not ${source.rows}×${source.columns}`,
      );
    }
    const seen = new Set<number>();
    for (let i = 0; i < plane.length; i++) {
      const v = plane[i];
      if (v && !seen.has(v) && wanted.has(v)) seen.add(v);
    }
    for (const v of seen) onSlice.get(v)!.push(z);
    if (seen.size) planes.set(z, plane);
  }
  const frames: Frame[] = [];
  for (const s of [...segments].sort((a, b) => a.number - b.number)) {
    for (const z of onSlice.get(s.number)!) frames.push({ segment: s.number, z });
  }
  return { frames, planes };
}

/** The frames' pixels, one bit each, frames back to back (PS3.5 8.1.1), padded to even length. */
function packFrames(frames: Frame[], planes: Map<number, Uint8Array>, pixels: number): Uint8Array {
  const bytes = Math.ceil((frames.length * pixels) / 8);
  const out = new Uint8Array(bytes + (bytes % 2));
  let bit = 0;
  for (const f of frames) {
    const plane = planes.get(f.z)!;
    for (let i = 0; i < pixels; i++, bit++) {
      if (plane[i] === f.segment) out[bit >> 3] |= 1 << (bit & 7);
    }
  }
  return out;
}

/**
 * The Segmentation as a DICOM Part 10 file. Throws a RangeError when the input does not hold
 * together (a segment without pixels anywhere, a plane of the wrong size, no segments).
 */
export function writeSegmentation(input: SegInput): Uint8Array {
  const { source: src, algorithm: alg } = input;
  if (!input.segments.length) throw new RangeError("a Segmentation needs at least one segment");
  const slices = src.sopInstanceUids.length;
  if (src.positions.length !== slices) {
    throw new RangeError(`${src.positions.length} positions for ${slices} slices`);
  }
  const { frames, planes } = framesOf(input);
  for (const s of input.segments) {
    if (!frames.some((f) => f.segment === s.number)) {
      throw new RangeError(`segment ${s.number} has no pixels`);
    }
  }
  const created = daTm(input.created ?? new Date());
  const dimensionOrganizationUid = uidFrom(`${input.sopInstanceUid}:dimensions`);
  const sourceItem = (z: number) => ({
    ReferencedSOPClassUID: src.sopClassUid,
    ReferencedSOPInstanceUID: src.sopInstanceUids[z],
  });
  const usedSlices = [...new Set(frames.map((f) => f.z))].sort((a, b) => a - b);
  const dataset: Record<string, unknown> = {
    ...Object.fromEntries(Object.entries(src.patientStudy).filter(([, v]) => v !== undefined)),
    // dcmjs writes every string as UTF-8.
    SpecificCharacterSet: "ISO_IR 192",
    SOPClassUID: SEGMENTATION_STORAGE,
    SOPInstanceUID: input.sopInstanceUid,
    InstanceCreationDate: created.date,
    InstanceCreationTime: created.time,
    StudyInstanceUID: src.studyInstanceUid,
    SeriesInstanceUID: input.seriesInstanceUid,
    Modality: "SEG",
    SeriesNumber: input.seriesNumber,
    SeriesDescription: input.seriesDescription,
    SeriesDate: created.date,
    SeriesTime: created.time,
    InstanceNumber: 1,
    ContentDate: created.date,
    ContentTime: created.time,
    FrameOfReferenceUID: src.frameOfReferenceUid,
    PositionReferenceIndicator: "",
    // General Equipment and Enhanced General Equipment: the model is the device.
    Manufacturer: alg.manufacturer,
    ManufacturerModelName: alg.modelName,
    DeviceSerialNumber: alg.deviceSerialNumber ?? `${alg.name}@${alg.version}`,
    SoftwareVersions: alg.softwareVersions,
    // Segmentation Image module.
    ImageType: ["DERIVED", "PRIMARY"],
    ContentLabel: input.contentLabel,
    ContentDescription: input.contentDescription ?? "",
    ContentCreatorName: "",
    SamplesPerPixel: 1,
    PhotometricInterpretation: "MONOCHROME2",
    Rows: src.rows,
    Columns: src.columns,
    BitsAllocated: 1,
    BitsStored: 1,
    HighBit: 0,
    PixelRepresentation: 0,
    LossyImageCompression: "00",
    SegmentationType: "BINARY",
    NumberOfFrames: frames.length,
    SegmentSequence: input.segments.map((s) => ({
      SegmentNumber: s.number,
      SegmentLabel: s.label,
      SegmentedPropertyCategoryCodeSequence: codeSequence(s.category),
      SegmentedPropertyTypeCodeSequence: codeSequence(s.type),
      ...(s.anatomicRegion ? { AnatomicRegionSequence: codeSequence(s.anatomicRegion) } : {}),
      SegmentAlgorithmType: "AUTOMATIC",
      SegmentAlgorithmName: alg.name,
      SegmentationAlgorithmIdentificationSequence: [{
        AlgorithmFamilyCodeSequence: codeSequence(CODES.artificialIntelligence),
        AlgorithmName: alg.name,
        AlgorithmVersion: alg.version,
      }],
      ...(s.trackingId ? { TrackingID: s.trackingId } : {}),
      ...(s.trackingUid ? { TrackingUID: s.trackingUid } : {}),
      ...(s.cieLab ? { RecommendedDisplayCIELabValue: s.cieLab } : {}),
    })),
    // Multi-frame Dimension module.
    DimensionOrganizationSequence: [{ DimensionOrganizationUID: dimensionOrganizationUid }],
    DimensionOrganizationType: "3D",
    DimensionIndexSequence: [
      {
        DimensionOrganizationUID: dimensionOrganizationUid,
        DimensionIndexPointer: 0x0062000b,
        FunctionalGroupPointer: 0x0062000a,
        DimensionDescriptionLabel: "ReferencedSegmentNumber",
      },
      {
        DimensionOrganizationUID: dimensionOrganizationUid,
        DimensionIndexPointer: 0x00200032,
        FunctionalGroupPointer: 0x00209113,
        DimensionDescriptionLabel: "ImagePositionPatient",
      },
    ],
    // Multi-frame Functional Groups module.
    SharedFunctionalGroupsSequence: [{
      PlaneOrientationSequence: [{ ImageOrientationPatient: src.orientation.map(DS) }],
      PixelMeasuresSequence: [{
        PixelSpacing: src.pixelSpacing.map(DS),
        SliceThickness: DS(src.sliceThickness ?? src.spacingBetweenSlices),
        SpacingBetweenSlices: DS(src.spacingBetweenSlices),
      }],
    }],
    PerFrameFunctionalGroupsSequence: frames.map((f) => ({
      FrameContentSequence: [{ DimensionIndexValues: [f.segment, f.z + 1] }],
      PlanePositionSequence: [{ ImagePositionPatient: src.positions[f.z].map(DS) }],
      SegmentIdentificationSequence: [{ ReferencedSegmentNumber: f.segment }],
      DerivationImageSequence: [{
        SourceImageSequence: [{
          ...sourceItem(f.z),
          PurposeOfReferenceCodeSequence: [{
            CodeValue: "121322",
            CodingSchemeDesignator: "DCM",
            CodeMeaning: "Source image for image processing operation",
          }],
        }],
        DerivationCodeSequence: [{
          CodeValue: "113076",
          CodingSchemeDesignator: "DCM",
          CodeMeaning: "Segmentation",
        }],
      }],
    })),
    // Common Instance Reference module: the source slices the frames were drawn on.
    ReferencedSeriesSequence: [{
      SeriesInstanceUID: src.seriesInstanceUid,
      ReferencedInstanceSequence: usedSlices.map(sourceItem),
    }],
    PixelData: packFrames(frames, planes, src.rows * src.columns).buffer,
    _vrMap: { PixelData: "OB" },
  };
  return writePart10(dataset, IMPLEMENTATION);
}
