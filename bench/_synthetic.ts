/** @module Synthetic, seeded FHIR data for the benchmark: Patients, Observations, ImagingStudies. */
// ---------------------------------------------------------------------------------------------
// Synthetic data (seeded, so every run loads the same resources)

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const FAMILY = (
  "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez " +
  "Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris " +
  "Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill " +
  "Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Gomez Phillips " +
  "Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart Morris Morales Murphy Cook Rogers " +
  "Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson " +
  "Watson Brooks Chavez Wood James Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo " +
  "Sanders Patel Myers Long Ross Foster Jimenez Powell Jenkins Perry Russell Sullivan Bell " +
  "Coleman Butler Henderson Barnes Gonzales Fisher Vasquez Simmons Romero Jordan Patterson " +
  "Alexander Hamilton Graham Reynolds Griffin Wallace Moreno West Cole Hayes Bryant Herrera " +
  "Gibson Ellis Tran Medina Aguilar Stevens Murray Ford Castro Marshall Owens Harrison Fernandez " +
  "McDonald Woods Washington Kennedy Wells Vargas Henry Chen Freeman Webb Tucker Guzman Burns " +
  "Crawford Olson Simpson Porter Hunter Gordon Mendez Silva Shaw Snyder Mason Dixon Munoz Hunt " +
  "Hicks Holmes Palmer Wagner Black Robertson Boyd Rose Stone Salazar Fox Warren Mills Meyer " +
  "Rice Schmidt Garza Daniels Ferguson Nichols Stephens Soto Weaver Ryan Gardner Payne Grant " +
  "Dunn Kelley Spencer Hawkins Arnold Pierce Vazquez Hansen Peters Santos Hart Bradley Knight"
).split(" ");

export const GIVEN = (
  "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara " +
  "Richard Susan Joseph Jessica Thomas Sarah Charles Karen Christopher Lisa Daniel Nancy Matthew " +
  "Betty Anthony Margaret Mark Sandra Donald Ashley Steven Kimberly Paul Emily Andrew Donna " +
  "Joshua Michelle Kenneth Carol Kevin Amanda Brian Dorothy George Melissa Timothy Deborah " +
  "Ronald Stephanie Edward Rebecca Jason Sharon Jeffrey Laura Ryan Cynthia Jacob Kathleen Gary " +
  "Amy Nicholas Angela Eric Shirley Jonathan Anna Stephen Brenda Larry Pamela Justin Emma Scott " +
  "Nicole Brandon Helen Benjamin Samantha Samuel Katherine Gregory Christine Alexander Debra " +
  "Frank Rachel Patrick Carolyn Raymond Janet Jack Catherine Dennis Maria Jerry Heather Tyler " +
  "Diane Aaron Ruth Jose Julie Adam Olivia Nathan Joyce Henry Virginia Douglas Victoria Zachary " +
  "Kelly Peter Lauren Kyle Christina Ethan Joan Walter Evelyn Noah Judith Jeremy Megan Christian " +
  "Andrea Keith Cheryl Roger Hannah Terry Jacqueline Gerald Martha Harold Gloria Sean Teresa " +
  "Austin Ann Carl Sara Arthur Madison Lawrence Frances Dylan Kathryn Jesse Janice Jordan Jean " +
  "Bryan Abigail Billy Alice Joe Julia Bruce Judy Gabriel Sophia Logan Grace Albert Denise Willie " +
  "Amber Alan Doris Juan Marilyn Wayne Danielle Elijah Beverly Randy Isabella Roy Theresa Vincent " +
  "Diana Ralph Natalie Eugene Brittany Russell Charlotte Bobby Marie Mason Kayla Philip Alexis " +
  "Louis Lori"
).split(" ");

/** LOINC code, display, UCUM unit, low, high, category. */
export const LOINC: [string, string, string, number, number, string][] = [
  ["8867-4", "Heart rate", "/min", 50, 120, "vital-signs"],
  ["8480-6", "Systolic blood pressure", "mm[Hg]", 95, 180, "vital-signs"],
  ["8462-4", "Diastolic blood pressure", "mm[Hg]", 55, 110, "vital-signs"],
  ["8310-5", "Body temperature", "Cel", 35.5, 39.5, "vital-signs"],
  ["9279-1", "Respiratory rate", "/min", 10, 28, "vital-signs"],
  ["29463-7", "Body weight", "kg", 3, 140, "vital-signs"],
  ["8302-2", "Body height", "cm", 50, 200, "vital-signs"],
  ["39156-5", "Body mass index", "kg/m2", 15, 45, "vital-signs"],
  ["59408-5", "Oxygen saturation by pulse oximetry", "%", 85, 100, "vital-signs"],
  ["2339-0", "Glucose [Mass/volume] in Blood", "mg/dL", 60, 250, "laboratory"],
  ["2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", 120, 300, "laboratory"],
  ["2085-9", "HDL Cholesterol", "mg/dL", 25, 90, "laboratory"],
  ["13457-7", "LDL Cholesterol (calculated)", "mg/dL", 50, 220, "laboratory"],
  ["2571-8", "Triglyceride [Mass/volume] in Serum or Plasma", "mg/dL", 40, 400, "laboratory"],
  ["4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 4, 12, "laboratory"],
  ["718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 8, 18, "laboratory"],
  ["6690-2", "Leukocytes [#/volume] in Blood", "10*3/uL", 3, 15, "laboratory"],
  ["777-3", "Platelets [#/volume] in Blood", "10*3/uL", 100, 450, "laboratory"],
  ["2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.5, 2.5, "laboratory"],
  ["2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 130, 150, "laboratory"],
];

export const MODALITIES: [string, string][] = [
  ["CT", "Computed Tomography"],
  ["MR", "Magnetic Resonance"],
  ["CR", "Computed Radiography"],
  ["DX", "Digital Radiography"],
  ["US", "Ultrasound"],
  ["MG", "Mammography"],
  ["NM", "Nuclear Medicine"],
  ["PT", "Positron emission tomography"],
];
export const DCM = "http://dicom.nema.org/resources/ontology/DCM";

export const OBS_PER_PATIENT = 7;
export const STUDIES_PER_PATIENT = 2;
export const PER_PATIENT = 1 + OBS_PER_PATIENT + STUDIES_PER_PATIENT;

export const DAY = 86_400_000;
export const T2015 = Date.UTC(2015, 0, 1);
export const T2025 = Date.UTC(2025, 0, 1);

export function pick<T>(rand: () => number, list: readonly T[]): T {
  return list[Math.floor(rand() * list.length)];
}

export function isoDate(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

export function isoDateTime(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(".000Z", "Z");
}

export type Json = Record<string, unknown>;

export function patient(rand: () => number, n: number): Json {
  const female = rand() < 0.5;
  const family = pick(rand, FAMILY);
  const given = [pick(rand, GIVEN)];
  if (rand() < 0.3) given.push(pick(rand, GIVEN));
  return {
    resourceType: "Patient",
    identifier: [{
      use: "usual",
      type: { coding: [{ system: "http://terminology.hl7.org/CodeSystem/v2-0203", code: "MR" }] },
      system: "http://bench.example.org/mrn",
      value: `MRN${String(n).padStart(8, "0")}`,
    }],
    active: true,
    name: [{ use: "official", family, given }],
    gender: female ? "female" : "male",
    birthDate: isoDate(Date.UTC(1930, 0, 1) + Math.floor(rand() * 90 * 365.25) * DAY),
    telecom: [{
      system: "phone",
      value: `555-${String(Math.floor(rand() * 1e7)).padStart(7, "0")}`,
    }],
    address: [{
      line: [`${1 + Math.floor(rand() * 9999)} ${pick(rand, FAMILY)} St`],
      city: pick(rand, ["Springfield", "Riverton", "Fairview", "Madison", "Georgetown", "Salem"]),
      postalCode: String(10000 + Math.floor(rand() * 89999)),
      country: "US",
    }],
  };
}

export function observation(rand: () => number, patientId: string): Json {
  const [code, display, unit, lo, hi, category] = pick(rand, LOINC);
  const value = Math.round((lo + rand() * (hi - lo)) * 10) / 10;
  return {
    resourceType: "Observation",
    status: "final",
    category: [{
      coding: [{
        system: "http://terminology.hl7.org/CodeSystem/observation-category",
        code: category,
      }],
    }],
    code: { coding: [{ system: "http://loinc.org", code, display }], text: display },
    subject: { reference: `Patient/${patientId}` },
    effectiveDateTime: isoDateTime(T2015 + rand() * (T2025 - T2015)),
    valueQuantity: { value, unit, system: "http://unitsofmeasure.org", code: unit },
  };
}

export function imagingStudy(rand: () => number, patientId: string): Json {
  const [modality, display] = pick(rand, MODALITIES);
  const uid = () => `2.25.${Math.floor(rand() * 1e15)}${Math.floor(rand() * 1e6)}`;
  const instances = 1 + Math.floor(rand() * 200);
  return {
    resourceType: "ImagingStudy",
    identifier: [{ system: "urn:dicom:uid", value: `urn:oid:${uid()}` }],
    status: "available",
    modality: [{ system: DCM, code: modality, display }],
    subject: { reference: `Patient/${patientId}` },
    started: isoDateTime(T2015 + rand() * (T2025 - T2015)),
    numberOfSeries: 1,
    numberOfInstances: instances,
    series: [{
      uid: uid(),
      number: 1,
      modality: { system: DCM, code: modality, display },
      numberOfInstances: instances,
    }],
  };
}
