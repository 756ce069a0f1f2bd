/**
 * @module The FHIR side of a de-identified export: the study's ImagingStudy and the results made
 * of it (DiagnosticReports, Observations, DocumentReferences) as one `collection` Bundle without
 * identifiers, consistent with the de-identified DICOM beside it: the same replacement UIDs (the
 * export's HMAC keys), the same per-patient date shift, and the same pseudonym for the patient,
 * who becomes a Patient with only that pseudonym. Resource ids are replaced the same way;
 * narratives, identifiers (other than the study's replaced UID), links back to this server
 * (presentedForm, endpoints), people (performer, interpreter) and meta are left out; free text is
 * cleaned of the patient's names and IDs like the DICOM descriptors.
 */
import type { Bundle, Resource } from "@medplum/fhirtypes";
import { createHash } from "node:crypto";
import { interact } from "../fhir/interaction.ts";
import type { DicomContext } from "./context.ts";
import type { DeidSession } from "./codec/deid.ts";
import { cleanText, standardUid } from "./codec/deid_values.ts";

/** What a study's results are found by (type, search parameter naming the ImagingStudy). */
const RESULTS: [type: string, param: string][] = [
  ["DiagnosticReport", "imaging-study"],
  ["Observation", "derived-from"],
  ["Observation", "focus"],
  ["DocumentReference", "related"],
];

/** Elements left out wherever they are: they identify, or point back at this server. */
const DROPPED = new Set([
  "meta",
  "text",
  "contained",
  "identifier",
  "presentedForm",
  "endpoint",
  "performer",
  "interpreter",
  "resultsInterpreter",
  "referrer",
  "encounter",
  "basedOn",
  "location",
  "author",
  "authenticator",
  "custodian",
]);

/** dateTime, date and instant elements, shifted with the DICOM dates. */
const DATES = new Set([
  "effectiveDateTime",
  "issued",
  "started",
  "date",
  "authoredOn",
  "lastModified",
  "recorded",
  "start",
  "end",
  "valueDateTime",
  "occurrenceDateTime",
]);

/** A UID-shaped token: replaced when it is one of the export's UIDs, a 2.25 UID or long. */
const UID = /\b[0-9]+(?:\.[0-9]+){2,}\b/g;
const REFERENCE = /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})$/;

/** A UUID made from `label`, so a resource keeps its fullUrl within the export. */
function uuidOf(label: string): string {
  const h = createHash("sha256").update(label).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${
    h.slice(20, 32)
  }`;
}

/** A FHIR date, dateTime or instant moved by `days`, keeping its precision and time. */
function shiftDate(value: string, days: number): string | undefined {
  const m = /^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?(.*)$/.exec(value);
  if (!m) return undefined;
  if (!m[3]) return undefined; // a year or a month alone cannot move by days: left out
  const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]) + days));
  return `${d.toISOString().slice(0, 10)}${m[4]}`;
}

/**
 * The study's ImagingStudy and results, de-identified, as a collection Bundle; undefined when the
 * study has no ImagingStudy. `patientKey` and `identifiers` come from the study's de-identified
 * instances (`DeidResult`), so dates and the pseudonym agree with them.
 */
export async function deidentifiedFhir(
  deps: DicomContext,
  studyUid: string,
  session: DeidSession,
  patient: { key: string; identifiers: readonly string[] },
  /** The study's own UIDs (study, series, instances): replaced wherever they appear. */
  knownUids: ReadonlySet<string> = new Set(),
): Promise<Bundle | undefined> {
  const search = async (type: string, query: [string, string][]) =>
    (((await interact(deps.fhir, {
      method: "GET",
      path: [type],
      query: [...query, ["_count", String(deps.fhir.maxCount)]],
    })).body as Bundle).entry ?? []).map((e) => e.resource!).filter((r) =>
      r?.resourceType === type
    );
  const [study] = await search("ImagingStudy", [[
    "identifier",
    `urn:dicom:uid|urn:oid:${studyUid}`,
  ]]);
  if (!study?.id) return undefined;
  const found = new Map<string, Resource>([[`ImagingStudy/${study.id}`, study]]);
  for (const [type, param] of RESULTS) {
    for (const r of await search(type, [[param, `ImagingStudy/${study.id}`]])) {
      found.set(`${type}/${r.id}`, r);
    }
  }
  const keys = session.keys;
  const days = session.options.modifiedDates ? keys.shiftDays(patient.key) : undefined;
  const pseudonym = keys.pseudonym(patient.key);
  const newId = (type: string, id: string) =>
    type === "Patient" ? pseudonym : keys.uid(`fhir:${type}/${id}`);
  const uid = (u: string) => standardUid(u) ? u : keys.uid(u);

  const text = (key: string, value: string): string | undefined => {
    if (DATES.has(key)) return days === undefined ? undefined : shiftDate(value, days);
    const ref = key === "reference" ? REFERENCE.exec(value) : null;
    if (ref) return `${ref[1]}/${newId(ref[1], ref[2])}`;
    if (key === "reference") return undefined; // absolute or contained: nothing to keep
    if (key === "url" && value.startsWith(deps.publicUrl)) return undefined; // back to us
    // A version number (2.1.0) is not a UID: only the study's, 2.25 ones and long ones are.
    const mapped = value.replace(
      UID,
      (u) => knownUids.has(u) || u.startsWith("2.25.") || u.split(".").length >= 5 ? uid(u) : u,
    );
    // Free text: cleaned of the patient's names and IDs, as the DICOM descriptors are.
    return ["text", "conclusion", "description", "display", "valueString"].includes(key)
      ? cleanText(mapped, patient.identifiers) || undefined
      : mapped;
  };
  const walk = (value: unknown, key: string): unknown => {
    if (typeof value === "string") return text(key, value);
    if (Array.isArray(value)) {
      const items = value.map((v) => walk(v, key)).filter((v) => v !== undefined);
      return items.length ? items : undefined;
    }
    if (value && typeof value === "object") {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) {
        if (DROPPED.has(k)) continue;
        const w = walk(v, k);
        if (w !== undefined) out[k] = w;
      }
      return Object.keys(out).length ? out : undefined;
    }
    return value;
  };

  const entries = [...found.values()].map((r) => {
    const out = walk(r, "") as Resource & { id?: string };
    out.id = newId(r.resourceType, r.id!);
    if (r.resourceType === "ImagingStudy") {
      // Its one identifier: the replaced Study Instance UID, as in the DICOM files.
      (out as unknown as Record<string, unknown>).identifier = [{
        system: "urn:dicom:uid",
        value: `urn:oid:${uid(studyUid)}`,
      }];
    }
    return { fullUrl: `urn:uuid:${uuidOf(`${r.resourceType}/${out.id}`)}`, resource: out };
  });
  const patientResource = {
    resourceType: "Patient",
    id: pseudonym,
    identifier: [{ system: "urn:imaging-ai:deidentified-patient", value: pseudonym }],
  } as Resource;
  return {
    resourceType: "Bundle",
    type: "collection",
    entry: [
      { fullUrl: `urn:uuid:${uuidOf(`Patient/${pseudonym}`)}`, resource: patientResource },
      ...entries,
    ],
  };
}
