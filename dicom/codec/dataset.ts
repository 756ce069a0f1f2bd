/**
 * @module A stored instance's bytes as a dicom-parser DataSet, with deflated data sets inflated
 * (fflate) and implicit-VR attributes typed from the dcmjs dictionary (so their sequences parse);
 * the Patient and General Study attributes a derived object copies.
 */
import dicomParser, { type DataSet } from "dicom-parser";
import { inflateSync } from "fflate";
import { decodeValue } from "./charset.ts";
import { dataSetCharset, dictionaryVr } from "./dicom_json.ts";

const OPTIONS = {
  inflater(bytes: Uint8Array, position: number): Uint8Array {
    const inflated = inflateSync(bytes.subarray(position));
    const full = new Uint8Array(position + inflated.length);
    full.set(bytes.subarray(0, position));
    full.set(inflated, position);
    return full;
  },
  vrCallback: (tag: string) => dictionaryVr(tag.slice(1).toUpperCase()),
} as unknown as dicomParser.ParseDicomOptions;

/** Parses a Part 10 file; throws what dicom-parser throws (a string or an object) on bad input. */
export function parseDataSet(bytes: Uint8Array): DataSet {
  return dicomParser.parseDicom(bytes, OPTIONS);
}

/** Patient and General Study attributes copied into derived objects (Type 2 ones always). */
const PATIENT_STUDY: [keyword: string, tag: string, type2: boolean][] = [
  ["PatientName", "x00100010", true],
  ["PatientID", "x00100020", true],
  ["IssuerOfPatientID", "x00100021", false],
  ["PatientBirthDate", "x00100030", true],
  ["PatientSex", "x00100040", true],
  ["StudyDate", "x00080020", true],
  ["StudyTime", "x00080030", true],
  ["ReferringPhysicianName", "x00080090", true],
  ["StudyID", "x00200010", true],
  ["AccessionNumber", "x00080050", true],
  ["StudyDescription", "x00081030", false],
];

/**
 * The Patient and General Study attributes of `ds` (naturalized keywords), decoded with its
 * character set, for objects derived from it (SEG, SR) that join its study. Type 2 attributes it
 * lacks are empty strings.
 */
export function patientStudyAttributes(ds: DataSet): Record<string, string> {
  const charset = dataSetCharset(ds);
  const out: Record<string, string> = {};
  for (const [keyword, tag, type2] of PATIENT_STUDY) {
    const el = ds.elements[tag];
    const value = el && el.length > 0
      ? decodeValue(
        charset,
        ds.byteArray.subarray(el.dataOffset, el.dataOffset + el.length),
        el.vr ?? dictionaryVr(tag.slice(1).toUpperCase()),
      ).replace(/[\0 ]+$/, "").trim()
      : undefined;
    if (value || type2) out[keyword] = value ?? "";
  }
  return out;
}
