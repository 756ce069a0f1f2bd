/**
 * @module The DICOM → FHIR mapping: a Patient from the DICOM patient module and one ImagingStudy
 * per StudyInstanceUID, built from the index rows (so it is the same whichever instance came
 * last), with the codings PITFALLS.md lists: modality in the DCM system, sopClass as `urn:oid:`
 * in `urn:ietf:rfc:3986`, counted numberOfSeries/numberOfInstances.
 */
import type { Coding, ImagingStudy, Patient } from "@medplum/fhirtypes";
import type { InstanceRow, SeriesRow, StudyRow } from "../db/dicom_repo.ts";

export const DCM = "http://dicom.nema.org/resources/ontology/DCM";
export const ENDPOINT_ID = "dicomweb";

/** The FHIR identifier system and value of a Patient ID, by its issuer. */
export function patientIdentifier(
  patientId: string,
  issuer: string | null,
): { system: string; value: string } {
  let system = "urn:dicom:patient-id";
  if (issuer) {
    if (/^[0-2](\.(0|[1-9]\d*))+$/.test(issuer)) system = `urn:oid:${issuer}`;
    else if (/^[a-z][a-z0-9+.-]*:\S+$/i.test(issuer)) system = issuer;
    else system = `urn:dicom:issuer:${encodeURIComponent(issuer)}`;
  }
  return { system, value: patientId };
}

/** DA `YYYYMMDD` → FHIR date; undefined when it is not a valid date. */
export function fhirDate(da: string | null | undefined): string | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(da?.trim() ?? "");
  if (!m) return undefined;
  const [, y, mo, d] = m;
  const date = new Date(`${y}-${mo}-${d}T00:00:00Z`);
  if (isNaN(date.getTime()) || date.getUTCDate() !== Number(d)) return undefined;
  return `${y}-${mo}-${d}`;
}

/**
 * DA + TM (+ the offset from UTC in (0008,0201), or the configured zone) → FHIR dateTime. FHIR
 * requires a zone with a time, so without one the date alone is given.
 */
export function fhirDateTime(
  da: string | null | undefined,
  tm: string | null | undefined,
  offset: string | undefined,
): string | undefined {
  const date = fhirDate(da);
  if (!date) return undefined;
  const t = /^(\d{2})(\d{2})?(\d{2})?(\.\d{1,6})?/.exec(tm?.trim() ?? "");
  const zone = /^[+-]\d{4}$/.test(offset ?? "")
    ? `${offset!.slice(0, 3)}:${offset!.slice(3)}`
    : /^(Z|[+-]\d{2}:\d{2})$/.test(offset ?? "")
    ? offset
    : undefined;
  if (!t || !zone) return date;
  const [, hh, mm = "00", ss = "00", frac = ""] = t;
  if (Number(hh) > 23 || Number(mm) > 59 || Number(ss) > 60) return date;
  return `${date}T${hh}:${mm}:${ss}${frac}${zone === "+00:00" ? "Z" : zone}`;
}

/** A Patient from the patient module of a study's first instance. */
export function patientFromStudy(study: StudyRow): Patient {
  const patient: Patient = { resourceType: "Patient" };
  if (study.patient_id) {
    const { system, value } = patientIdentifier(study.patient_id, study.issuer);
    patient.identifier = [{
      use: "usual",
      type: {
        coding: [{ system: "http://terminology.hl7.org/CodeSystem/v2-0203", code: "MR" }],
      },
      system,
      value,
      ...(study.issuer ? { assigner: { display: study.issuer } } : {}),
    }];
  }
  const name = personName(study.patient_name);
  if (name) patient.name = [name];
  const birthDate = fhirDate(study.birth_date);
  if (birthDate) patient.birthDate = birthDate;
  const gender = ({ M: "male", F: "female", O: "other" } as const)[
    (study.sex ?? "").trim().toUpperCase() as "M" | "F" | "O"
  ];
  if (gender) patient.gender = gender;
  return patient;
}

/** `Family^Given^Middle^Prefix^Suffix` → HumanName. */
export function personName(pn: string | null): Patient["name"] extends (infer N)[] | undefined ?
    | N
    | undefined
  : never {
  if (!pn?.trim()) return undefined;
  const [family, given, middle, prefix, suffix] = pn.split("^").map((s) => s.trim());
  const givens = [given, middle].filter(Boolean) as string[];
  // `^^^^` (no component at all) is no name: FHIR JSON allows no empty strings.
  if (!family && !givens.length && !prefix && !suffix) return undefined;
  return {
    use: "official",
    text: [prefix, ...givens, family, suffix].filter(Boolean).join(" "),
    ...(family ? { family } : {}),
    ...(givens.length ? { given: givens } : {}),
    ...(prefix ? { prefix: [prefix] } : {}),
    ...(suffix ? { suffix: [suffix] } : {}),
  };
}

// Body Part Examined (0018,0015) → SNOMED CT, common terms of PS3.16 Annex L (CID 4031).
const BODY_PARTS: Record<string, [string, string]> = {
  ABDOMEN: ["818981001", "Abdomen"],
  ABDOMENPELVIS: ["818982008", "Abdomen and Pelvis"],
  ANKLE: ["70258002", "Ankle joint"],
  BREAST: ["76752008", "Breast"],
  CHEST: ["816094009", "Chest"],
  CHESTABDOMEN: ["416550000", "Chest and Abdomen"],
  CHESTABDPELVIS: ["416775004", "Chest, Abdomen and Pelvis"],
  CSPINE: ["122494005", "Cervical spine"],
  ELBOW: ["16953009", "Elbow joint"],
  FOOT: ["56459004", "Foot"],
  HAND: ["85562004", "Hand"],
  HEAD: ["69536005", "Head"],
  HEADNECK: ["774007", "Head and Neck"],
  HEART: ["80891009", "Heart"],
  HIP: ["29836001", "Hip"],
  KNEE: ["72696002", "Knee"],
  LSPINE: ["122496007", "Lumbar spine"],
  NECK: ["45048000", "Neck"],
  PELVIS: ["816092008", "Pelvis"],
  WHOLEBODY: ["38266002", "Entire body"],
};

export function bodySite(bodyPart: string | null): Coding | undefined {
  const term = bodyPart?.trim().toUpperCase();
  if (!term) return undefined;
  const known = BODY_PARTS[term];
  return known
    ? { system: "http://snomed.info/sct", code: known[0], display: known[1] }
    : { display: term };
}

export interface StudyContent {
  study: StudyRow;
  series: SeriesRow[];
  instances: InstanceRow[];
  patientRef: string | null;
  /** The DICOMweb base this server serves, for the ImagingStudy's Endpoint. */
  timezoneOffset: string | undefined;
}

/** The ImagingStudy for a study as the index holds it now. */
export function imagingStudy(c: StudyContent, id?: string): ImagingStudy {
  const { study } = c;
  const byUid = new Map<string, InstanceRow[]>();
  for (const i of c.instances) {
    const list = byUid.get(i.series_uid) ?? [];
    list.push(i);
    byUid.set(i.series_uid, list);
  }
  const result: ImagingStudy = {
    resourceType: "ImagingStudy",
    ...(id ? { id } : {}),
    identifier: [
      { system: "urn:dicom:uid", value: `urn:oid:${study.study_uid}` },
      ...(study.accession
        ? [{
          type: {
            coding: [{ system: "http://terminology.hl7.org/CodeSystem/v2-0203", code: "ACSN" }],
          },
          value: study.accession,
        }]
        : []),
    ],
    status: "available",
    subject: c.patientRef ? { reference: c.patientRef } : { display: "Unknown patient" },
    endpoint: [{ reference: `Endpoint/${ENDPOINT_ID}` }],
    numberOfSeries: c.series.length,
    numberOfInstances: c.instances.length,
  };
  if (study.modalities.length) {
    result.modality = study.modalities.map((code) => ({ system: DCM, code }));
  }
  const started = fhirDateTime(study.study_date, study.study_time, c.timezoneOffset);
  if (started) result.started = started;
  if (study.description) result.description = study.description;
  const referrer = personName(study.referring)?.text;
  if (referrer) result.referrer = { display: referrer };
  result.series = c.series.map((s) => {
    const instances = byUid.get(s.series_uid) ?? [];
    const site = bodySite(s.body_part);
    const seriesStarted = fhirDateTime(s.series_date, s.series_time, c.timezoneOffset);
    return {
      uid: s.series_uid,
      ...(s.series_number !== null && s.series_number >= 0 ? { number: s.series_number } : {}),
      modality: { system: DCM, code: s.modality || "OT" },
      ...(s.description ? { description: s.description } : {}),
      numberOfInstances: instances.length,
      ...(site ? { bodySite: site } : {}),
      ...(seriesStarted ? { started: seriesStarted } : {}),
      instance: instances.map((i) => ({
        uid: i.sop_uid,
        sopClass: { system: "urn:ietf:rfc:3986", code: `urn:oid:${i.sop_class}` },
        ...(i.instance_number !== null && i.instance_number >= 0
          ? { number: i.instance_number }
          : {}),
        ...(i.title ? { title: i.title } : {}),
      })),
    };
  });
  return result;
}
