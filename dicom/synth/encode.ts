/**
 * @module Writes one synthetic CT slice as a DICOM Part 10 file (Explicit VR Little Endian, CT Image
 * Storage) with dcmjs, through `../codec/part10.ts`.
 */

import { EXPLICIT_VR_LITTLE_ENDIAN, writePart10 } from "../codec/part10.ts";
import type { Geometry } from "./geometry.ts";
import { slicePosition } from "./geometry.ts";
import type { SynthPatient, SynthStudyInfo } from "./identity.ts";
import { uid225 } from "./rng.ts";

export const CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2";
export { EXPLICIT_VR_LITTLE_ENDIAN };
export const IMPLEMENTATION_CLASS_UID = uid225("dicom/synth:implementation");
export const IMPLEMENTATION_VERSION_NAME = "SYNTH_CT_1";

/** What encoding needs of a study plan. */
export interface EncodeInput {
  patient: SynthPatient;
  study: SynthStudyInfo;
  geometry: Geometry;
  sopInstanceUids: readonly string[];
  rescaleIntercept: number;
}

/** A DS-safe number: rounded to 4 decimals, so it never exceeds DS's 16 characters. */
const ds = (v: number): number => Math.round(v * 1e4) / 1e4 + 0;

/** The attributes every slice of a series shares (naturalized dcmjs keywords). */
export function seriesAttributes(input: EncodeInput): Record<string, unknown> {
  const { patient: p, study: s, geometry: g } = input;
  return {
    ImageType: ["ORIGINAL", "PRIMARY", "AXIAL"],
    InstanceCreationDate: s.studyDate,
    InstanceCreationTime: s.studyTime,
    SOPClassUID: CT_IMAGE_STORAGE,
    SyntheticData: "YES",
    StudyDate: s.studyDate,
    SeriesDate: s.studyDate,
    AcquisitionDate: s.studyDate,
    ContentDate: s.studyDate,
    StudyTime: s.studyTime,
    SeriesTime: s.studyTime,
    AcquisitionTime: s.studyTime,
    ContentTime: s.studyTime,
    AccessionNumber: s.accessionNumber,
    Modality: "CT",
    Manufacturer: "Synthetic",
    InstitutionName: "Synthetic General Hospital",
    ReferringPhysicianName: s.referringPhysicianName,
    StationName: "SYNTHCT01",
    StudyDescription: s.studyDescription,
    SeriesDescription: s.seriesDescription,
    ManufacturerModelName: "dicom/synth phantom",
    PatientName: p.name,
    PatientID: p.id,
    IssuerOfPatientID: p.issuer,
    PatientBirthDate: p.birthDate,
    PatientSex: p.sex,
    PatientAge: p.age,
    BodyPartExamined: "CHEST",
    SliceThickness: ds(g.sliceSpacing),
    KVP: 120,
    SpacingBetweenSlices: ds(g.sliceSpacing),
    SoftwareVersions: "dicom/synth 1",
    ProtocolName: "CHEST ROUTINE",
    ReconstructionDiameter: ds(g.cols * g.pixelSpacing),
    GantryDetectorTilt: 0,
    XRayTubeCurrent: 200,
    ConvolutionKernel: "STANDARD",
    PatientPosition: "HFS",
    StudyInstanceUID: s.studyInstanceUid,
    SeriesInstanceUID: s.seriesInstanceUid,
    StudyID: s.studyId,
    SeriesNumber: s.seriesNumber,
    AcquisitionNumber: 1,
    ImageOrientationPatient: [1, 0, 0, 0, 1, 0],
    FrameOfReferenceUID: s.frameOfReferenceUid,
    PositionReferenceIndicator: "",
    SamplesPerPixel: 1,
    PhotometricInterpretation: "MONOCHROME2",
    Rows: g.rows,
    Columns: g.cols,
    PixelSpacing: [ds(g.pixelSpacing), ds(g.pixelSpacing)],
    BitsAllocated: 16,
    BitsStored: 16,
    HighBit: 15,
    PixelRepresentation: 1,
    BurnedInAnnotation: "NO",
    WindowCenter: [-600],
    WindowWidth: [1500],
    RescaleIntercept: input.rescaleIntercept,
    RescaleSlope: 1,
    RescaleType: "HU",
    WindowCenterWidthExplanation: ["LUNG"],
    LossyImageCompression: "00",
  };
}

/**
 * Encodes slice `index` (0-based) with its stored pixels (rows × cols signed 16-bit values; copied,
 * so the caller may reuse the array). `shared` is `seriesAttributes(input)`, built once per series.
 */
export function encodeSlice(
  input: EncodeInput,
  shared: Record<string, unknown>,
  index: number,
  pixels: Int16Array,
): Uint8Array {
  const sopInstanceUid = input.sopInstanceUids[index];
  const position = slicePosition(input.geometry, index).map(ds);
  const pixelBuffer = pixels.byteOffset === 0 && pixels.byteLength === pixels.buffer.byteLength
    ? pixels.buffer
    : pixels.slice().buffer;
  const dataset = {
    ...shared,
    SOPInstanceUID: sopInstanceUid,
    InstanceNumber: index + 1,
    ImagePositionPatient: position,
    SliceLocation: position[2],
    PixelData: pixelBuffer,
    // dcmjs cannot pick between OB/OW for PixelData without this hint (it logs "ox" otherwise).
    _vrMap: { PixelData: "OW" },
  };
  return writePart10(dataset, {
    classUid: IMPLEMENTATION_CLASS_UID,
    versionName: IMPLEMENTATION_VERSION_NAME,
  });
}
