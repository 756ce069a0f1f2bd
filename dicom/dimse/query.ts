/**
 * @module C-FIND over the DICOM index: a query identifier (PS3.4 C.4.1) becomes a QIDO-RS query
 * (the same matching: UID lists, wildcards, date ranges, case-insensitive names), and each match a
 * response identifier holding the keys that were asked for. Study Root (study, series, image) and
 * Patient Root (patient, study, series, image). Also finds the SOP Instances a C-GET or C-MOVE
 * identifier names.
 */
import dcmjs from "dcmjs";
import type { DicomService } from "../service.ts";
import type { QidoLevel } from "../qido.ts";

const { DicomMetaDictionary } = dcmjs.data;

export const STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1";
export const PATIENT_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.1.1";
export const STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2";
export const STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3";
export const PATIENT_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.1.2";
export const PATIENT_ROOT_GET = "1.2.840.10008.5.1.4.1.2.1.3";

/** The most matches one C-FIND answers (the rest would not fit a reading room's patience). */
const MAX_MATCHES = 10_000;
const PAGE = 1000;

export class QueryError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** Keys that steer the query, not matched: never sent to QIDO. */
const CONTROL = new Set(["QueryRetrieveLevel", "SpecificCharacterSet", "_vrMap"]);
/** Patient-level attributes (PS3.4 C.6.1.1.2), asked of studies and grouped by Patient ID. */
const PATIENT_KEYS = new Set([
  "PatientName",
  "PatientID",
  "IssuerOfPatientID",
  "PatientBirthDate",
  "PatientSex",
  "NumberOfPatientRelatedStudies",
  "NumberOfPatientRelatedSeries",
  "NumberOfPatientRelatedInstances",
]);

type Identifier = Record<string, unknown>;

/** A matching value as QIDO writes it; undefined for a universal (empty) key. */
function matchValue(value: unknown): string | undefined {
  if (value === undefined || value === null || value === "") return undefined;
  if (Array.isArray(value)) {
    const parts = value.map((v) => matchValue(v)).filter((v) => v !== undefined);
    return parts.length ? parts.join(",") : undefined;
  }
  if (typeof value === "object") {
    // A PN: its alphabetic group matches (QIDO-RS matches names that way).
    const pn = value as { Alphabetic?: string };
    return pn.Alphabetic || undefined;
  }
  const text = String(value).trim();
  return text === "" ? undefined : text;
}

function qidoParams(identifier: Identifier, skip: Set<string> = new Set()): URLSearchParams {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(identifier)) {
    if (CONTROL.has(key) || skip.has(key)) continue;
    if (!DicomMetaDictionary.nameMap[key]) continue; // a private or unknown key: not matched
    const v = matchValue(value);
    if (v === undefined || Array.isArray(value) && value.some((x) => typeof x === "object")) {
      params.append("includefield", key);
    } else params.append(key, v);
  }
  return params;
}

async function allMatches(
  dicom: DicomService,
  level: QidoLevel,
  params: URLSearchParams,
): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  for (let offset = 0; offset < MAX_MATCHES; offset += PAGE) {
    const page = new URLSearchParams(params);
    page.set("limit", String(PAGE));
    page.set("offset", String(offset));
    const { results } = await dicom.qido({ level, params: page });
    out.push(...(results as Record<string, unknown>[]));
    if (results.length < PAGE) break;
  }
  return out;
}

const LEVELS: Record<string, QidoLevel> = { STUDY: "study", SERIES: "series", IMAGE: "instance" };

/**
 * The C-FIND matches of `identifier` under `sopClass` (Study or Patient Root), each holding the
 * keys asked for (and the level, the character set and where to retrieve from).
 */
export async function find(
  dicom: DicomService,
  sopClass: string,
  identifier: Identifier,
  retrieveAe: string,
): Promise<Identifier[]> {
  const level = String(identifier.QueryRetrieveLevel ?? "").trim().toUpperCase();
  const patientRoot = sopClass === PATIENT_ROOT_FIND;
  if (level === "PATIENT" && !patientRoot) {
    throw new QueryError(0xa900, "PATIENT level needs the Patient Root information model");
  }
  if (level !== "PATIENT" && !LEVELS[level]) {
    throw new QueryError(
      0xa900,
      `Query/Retrieve Level ${level || "(none)"} is not one of ${
        patientRoot ? "PATIENT, " : ""
      }STUDY, SERIES, IMAGE`,
    );
  }
  const asked = Object.keys(identifier).filter((k) => !CONTROL.has(k));
  const answer = (json: Record<string, unknown>, extra: Identifier = {}): Identifier => {
    const natural = DicomMetaDictionary.naturalizeDataset(json) as Identifier;
    const out: Identifier = {
      QueryRetrieveLevel: level,
      SpecificCharacterSet: "ISO_IR 192",
      RetrieveAETitle: retrieveAe,
    };
    for (const key of asked) out[key] = extra[key] ?? natural[key] ?? "";
    return out;
  };
  if (level === "PATIENT") {
    // Patients are the studies' patients, one answer per Patient ID.
    const params = qidoParams(identifier, new Set(["NumberOfPatientRelatedStudies"]));
    const studies = await allMatches(dicom, "study", params);
    const byPatient = new Map<string, { json: Record<string, unknown>; studies: number }>();
    for (const s of studies) {
      const id = String((s["00100020"] as { Value?: unknown[] })?.Value?.[0] ?? "");
      const entry = byPatient.get(id);
      if (entry) entry.studies++;
      else byPatient.set(id, { json: s, studies: 1 });
    }
    return [...byPatient.values()].map((p) => {
      const json = Object.fromEntries(
        Object.entries(p.json).filter(([tag]) => {
          const name = DicomMetaDictionary.punctuateTag(tag);
          const keyword = DicomMetaDictionary.dictionary[name]?.name;
          return keyword === undefined || PATIENT_KEYS.has(keyword);
        }),
      );
      return answer(json, { NumberOfPatientRelatedStudies: String(p.studies) });
    });
  }
  const results = await allMatches(dicom, LEVELS[level], qidoParams(identifier));
  return results.map((r) => answer(r));
}

/**
 * The SOP Instance UIDs a C-GET or C-MOVE identifier names (its level's unique keys, lists
 * allowed), through the same index; a PATIENT level names every study of the Patient ID.
 */
export async function instancesNamed(
  dicom: DicomService,
  identifier: Identifier,
): Promise<string[]> {
  const level = String(identifier.QueryRetrieveLevel ?? "").trim().toUpperCase();
  const keys: Record<string, string[]> = {
    PATIENT: ["PatientID"],
    STUDY: ["StudyInstanceUID"],
    SERIES: ["StudyInstanceUID", "SeriesInstanceUID"],
    IMAGE: ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"],
  };
  const unique = keys[level];
  if (!unique) throw new QueryError(0xa900, `Query/Retrieve Level ${level || "(none)"} unknown`);
  const params = new URLSearchParams();
  for (const key of unique) {
    const v = matchValue(identifier[key]);
    if (v === undefined && key !== "StudyInstanceUID") {
      throw new QueryError(0xa900, `${key} is required at the ${level} level`);
    }
    if (v !== undefined) params.set(key, v);
  }
  if (level !== "PATIENT" && !params.has("StudyInstanceUID") && level === "STUDY") {
    throw new QueryError(0xa900, "StudyInstanceUID is required at the STUDY level");
  }
  params.append("includefield", "SOPInstanceUID");
  const rows = await allMatches(dicom, "instance", params);
  return rows.map((r) => String((r["00080018"] as { Value?: unknown[] })?.Value?.[0]));
}
