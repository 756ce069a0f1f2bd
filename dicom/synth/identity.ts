/**
 * @module Seeded identities that no real person owns: a synthetic patient (`SYNTH^…`, `SYN…` ids
 * issued by `SYNTHETIC`) and the study/series header values of one chest CT.
 */

import { createRng, uid225 } from "./rng.ts";

/** A synthetic patient; the same seed always yields the same patient. */
export interface SynthPatient {
  /** DICOM PN, e.g. `SYNTH^ALICE^Q`. */
  name: string;
  /** `SYN` + 7 digits. */
  id: string;
  issuer: "SYNTHETIC";
  /** DA, YYYYMMDD. */
  birthDate: string;
  sex: "M" | "F";
  /** AS, e.g. `064Y`. */
  age: string;
}

/** Study- and series-level header values. */
export interface SynthStudyInfo {
  studyInstanceUid: string;
  seriesInstanceUid: string;
  frameOfReferenceUid: string;
  accessionNumber: string;
  studyId: string;
  /** DA, YYYYMMDD. */
  studyDate: string;
  /** TM, HHMMSS. */
  studyTime: string;
  referringPhysicianName: string;
  studyDescription: "CT CHEST";
  seriesDescription: string;
  seriesNumber: number;
}

// deno-fmt-ignore
const FEMALE = [
  "ALICE", "BEATRIX", "CLARA", "DORA", "EDITH", "FIONA", "GRETA", "HANNA", "IRIS", "JUNE",
  "KAREN", "LENA", "MAYA", "NORA", "OLIVIA", "PAULA", "RUTH", "SARA", "TESSA", "VERA",
] as const;
// deno-fmt-ignore
const MALE = [
  "ADAM", "BRUNO", "CARL", "DAVID", "EMIL", "FELIX", "GUS", "HUGO", "IVAN", "JONAS",
  "KARL", "LEO", "MAX", "NOAH", "OSCAR", "PETER", "RUBEN", "SIMON", "THEO", "VICTOR",
] as const;
const DOCTORS = ["HOUSE", "GREY", "WATSON", "QUINN", "KILDARE", "ZHIVAGO", "CASEY", "WELBY"];

const pad = (n: number, width: number): string => String(n).padStart(width, "0");
const digits = (rng: ReturnType<typeof createRng>, count: number): string => {
  let out = String(rng.int(1, 9));
  while (out.length < count) out += String(rng.int(0, 9));
  return out;
};

/** The patient of seed `seed` (independent of image size or slice count); age at `studyDate`. */
export function createPatient(seed: number, studyDate: string): SynthPatient {
  const rng = createRng(`synth:${seed}:patient`);
  const sex = rng.next() < 0.5 ? "F" : "M";
  const given = rng.pick(sex === "F" ? FEMALE : MALE);
  const middle = String.fromCharCode(65 + rng.int(0, 25));
  const birthDate = `${rng.int(1935, 1980)}${pad(rng.int(1, 12), 2)}${pad(rng.int(1, 28), 2)}`;
  const years = Number(studyDate.slice(0, 4)) - Number(birthDate.slice(0, 4));
  const age = years - (Number(studyDate.slice(4)) < Number(birthDate.slice(4)) ? 1 : 0);
  return {
    name: `SYNTH^${given}^${middle}`,
    id: `SYN${digits(rng, 7)}`,
    issuer: "SYNTHETIC",
    birthDate,
    sex,
    age: `${pad(age, 3)}Y`,
  };
}

/**
 * The study of seed `seed`; `shape` (e.g. `512x512x100:2`) enters the UIDs so that studies of one
 * seed but different sizes never share a UID, while identical options give identical UIDs.
 */
export function createStudyInfo(seed: number, shape: string, sliceSpacing: number): SynthStudyInfo {
  const rng = createRng(`synth:${seed}:study:${shape}`);
  const year = rng.int(2019, 2025), month = rng.int(1, 12), day = rng.int(1, 28);
  const hour = rng.int(7, 18), minute = rng.int(0, 59), second = rng.int(0, 59);
  return {
    studyInstanceUid: uid225(`synth:${seed}:${shape}:study`),
    seriesInstanceUid: uid225(`synth:${seed}:${shape}:series`),
    frameOfReferenceUid: uid225(`synth:${seed}:${shape}:frame`),
    accessionNumber: `SYNA${digits(rng, 8)}`,
    studyId: digits(rng, 6),
    studyDate: `${year}${pad(month, 2)}${pad(day, 2)}`,
    studyTime: `${pad(hour, 2)}${pad(minute, 2)}${pad(second, 2)}`,
    referringPhysicianName: `SYNTHDOC^${rng.pick(DOCTORS)}`,
    studyDescription: "CT CHEST",
    seriesDescription: `CHEST ${sliceSpacing} MM SYNTHETIC`,
    seriesNumber: rng.int(2, 5),
  };
}

/** The SOP Instance UID of slice `index` (0-based) of a study. */
export function sopInstanceUid(seed: number, shape: string, index: number): string {
  return uid225(`synth:${seed}:${shape}:sop:${index}`);
}
