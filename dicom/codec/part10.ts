/**
 * @module A naturalized dataset (dcmjs keywords) written as a DICOM Part 10 file, Explicit VR Little
 * Endian, with its File Meta Information, by dcmjs's encoder (`denaturalizeDataset` →
 * `DicomDict.write()`). The writers of this service (SEG, SR) and the synthetic CT use it.
 */
import dcmjs from "dcmjs";

const { DicomDict, DicomMetaDictionary } = dcmjs.data;

export const EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1";

/** Who wrote the file (File Meta Information: Implementation Class UID and Version Name). */
export interface Implementation {
  classUid: string;
  versionName: string;
}

/**
 * The file of `dataset`; its SOPClassUID and SOPInstanceUID go into the meta information. Binary
 * values are ArrayBuffers; `_vrMap` names the VR where dcmjs cannot tell (PixelData: OB or OW).
 */
export function writePart10(
  dataset: Record<string, unknown>,
  implementation: Implementation,
): Uint8Array {
  const meta = {
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: dataset.SOPClassUID,
    MediaStorageSOPInstanceUID: dataset.SOPInstanceUID,
    TransferSyntaxUID: EXPLICIT_VR_LITTLE_ENDIAN,
    ImplementationClassUID: implementation.classUid,
    ImplementationVersionName: implementation.versionName,
  };
  const dict = new DicomDict(DicomMetaDictionary.denaturalizeDataset(meta));
  dict.dict = DicomMetaDictionary.denaturalizeDataset(dataset);
  return new Uint8Array(dict.write());
}
