/**
 * @module Which DICOM attributes belong to which query level (PS3.18 Table 10.6.3-3/4/5, plus the
 * patient and study modules), keyword ↔ tag lookup, and the index columns a parsed instance gives.
 */
import dcmjs from "dcmjs";
import type { InstanceRow, SeriesRow, StudyRow } from "../db/dicom_repo.ts";
import type { DicomJson } from "./codec/dicom_json.ts";
import { firstNumber, firstString } from "./codec/dicom_json.ts";
import { frameCount, type ParsedInstance } from "./codec/parse.ts";

export const STUDY_TAGS = [
  "00080005", // SpecificCharacterSet
  "00080020", // StudyDate
  "00080030", // StudyTime
  "00080050", // AccessionNumber
  "00080051", // IssuerOfAccessionNumberSequence
  "00080090", // ReferringPhysicianName
  "00080201", // TimezoneOffsetFromUTC
  "00081030", // StudyDescription
  "00081032", // ProcedureCodeSequence
  "00100010", // PatientName
  "00100020", // PatientID
  "00100021", // IssuerOfPatientID
  "00100030", // PatientBirthDate
  "00100040", // PatientSex
  "00101010", // PatientAge
  "0020000D", // StudyInstanceUID
  "00200010", // StudyID
];

export const SERIES_TAGS = [
  "00080005", // SpecificCharacterSet
  "00080021", // SeriesDate
  "00080031", // SeriesTime
  "00080060", // Modality
  "0008103E", // SeriesDescription
  "00180015", // BodyPartExamined
  "0020000E", // SeriesInstanceUID
  "00200011", // SeriesNumber
  "00400244", // PerformedProcedureStepStartDate
  "00400245", // PerformedProcedureStepStartTime
  "00400275", // RequestAttributesSequence
];

export const INSTANCE_TAGS = [
  "00080005", // SpecificCharacterSet
  "00080016", // SOPClassUID
  "00080018", // SOPInstanceUID
  "00080201", // TimezoneOffsetFromUTC
  "00083002", // AvailableTransferSyntaxUID
  "00200013", // InstanceNumber
  "00280008", // NumberOfFrames
  "00280010", // Rows
  "00280011", // Columns
  "00280100", // BitsAllocated
];

/** The listed attributes of a data set (those present). */
export function pick(json: DicomJson, tags: readonly string[]): DicomJson {
  const out: DicomJson = {};
  for (const tag of tags) if (json[tag]) out[tag] = json[tag];
  return out;
}

const nameMap = dcmjs.data.DicomMetaDictionary.nameMap as Record<string, { tag: string }>;

/** `PatientName` or `00100010` → `00100010`; undefined for an unknown keyword. */
export function tagOf(keywordOrTag: string): string | undefined {
  if (/^[0-9A-Fa-f]{8}$/.test(keywordOrTag)) return keywordOrTag.toUpperCase();
  const entry = nameMap[keywordOrTag];
  return entry ? entry.tag.replace(/[(),]/g, "").toUpperCase() : undefined;
}

const str = (json: DicomJson, tag: string) => firstString(json, tag)?.trim() || null;

/** The index rows one parsed instance gives (study and series attributes from this instance). */
export function indexRows(
  p: ParsedInstance,
  stored: { objectKey: string; size: number; sha256: string },
): {
  study: Omit<
    StudyRow,
    "modalities" | "num_series" | "num_instances" | "patient_ref" | "imaging_study_id"
  >;
  series: Omit<SeriesRow, "num_instances">;
  instance: InstanceRow;
} {
  const m = p.metadata;
  const intOrNull = (tag: string) => {
    const n = firstNumber(m, tag);
    return n !== undefined && Number.isInteger(n) && Math.abs(n) < 2 ** 31 ? n : null;
  };
  return {
    study: {
      study_uid: p.studyUid,
      patient_id: str(m, "00100020"),
      issuer: str(m, "00100021"),
      patient_name: str(m, "00100010"),
      birth_date: str(m, "00100030"),
      sex: str(m, "00100040"),
      study_date: str(m, "00080020"),
      study_time: str(m, "00080030"),
      accession: str(m, "00080050"),
      study_id: str(m, "00200010"),
      description: str(m, "00081030"),
      referring: str(m, "00080090"),
      attrs: JSON.stringify(pick(m, STUDY_TAGS)),
    },
    series: {
      series_uid: p.seriesUid,
      study_uid: p.studyUid,
      modality: str(m, "00080060"),
      series_number: intOrNull("00200011"),
      description: str(m, "0008103E"),
      body_part: str(m, "00180015"),
      series_date: str(m, "00080021"),
      series_time: str(m, "00080031"),
      attrs: JSON.stringify(pick(m, SERIES_TAGS)),
    },
    instance: {
      sop_uid: p.sopUid,
      series_uid: p.seriesUid,
      study_uid: p.studyUid,
      sop_class: p.sopClassUid,
      transfer_syntax: p.transferSyntaxUid,
      instance_number: intOrNull("00200013"),
      title: instanceTitle(m),
      frames: frameCount(m),
      object_key: stored.objectKey,
      size: stored.size,
      sha256: stored.sha256,
      metadata: JSON.stringify(m),
    },
  };
}

/** A human title for an instance: an SR's concept name, a document title or a content label. */
function instanceTitle(m: DicomJson): string | null {
  const concept = m["0040A043"]?.Value?.[0] as DicomJson | undefined;
  return (concept && str(concept, "00080104")) ?? str(m, "00420010") ?? str(m, "00700080");
}
