/**
 * @module The last step of building a job's results transaction (findings_bundle.ts): the links to
 * the order and the performers, the AI label, and one Provenance for everything the job creates.
 *
 * - FHIR workflow (fulfillment): the DiagnosticReport and its Observations are `basedOn` the order
 *   the job fulfils (`job.order`, a ServiceRequest), as its Task is. The report's `performer` is the
 *   order's performers and this service's Organization (`job.performers`); the model's Device is not
 *   among them, because R4 DiagnosticReport.performer may only be a Practitioner, PractitionerRole,
 *   Organization or CareTeam: the Device is each Observation's `device`, the results document's
 *   `author`, and the Provenance's agent (IHE AI Results (AIR) likewise names the algorithm as the
 *   observer/device of its results, not as the report's performer).
 * - HL7 AI Transparency on FHIR (STU1): every resource the model made carries the security label
 *   `v3-ObservationValue|AIAST` ("Artificial Intelligence asserted", level 1, labelling), and one
 *   Provenance (level 2) says which model made them, when, from what: `target` every new resource of
 *   the transaction (the report, each Observation, the results DocumentReference, by their
 *   `urn:uuid:` fullUrls, which the transaction resolves), `occurredPeriod` the inference (the Task's
 *   start to now), `recorded`, `activity` v3-DataOperation CREATE, `reason` AIAST, `agent` the
 *   model's Device (provenance-participant-type `author`, `onBehalfOf` the Organization when one is
 *   configured), `entity` the ImagingStudy (`source`), the order (`source`; R4 Provenance has no
 *   `basedOn`, R5 adds it) and, when this analysis supersedes earlier results, their
 *   DocumentReferences (`revision`).
 * - Idempotent like the rest of the bundle: R4 Provenance has no `identifier`, so the job's key is a
 *   `meta.tag` (`urn:imaging-ai:analysis-job|<key>#provenance`) and the entry a conditional create on
 *   `_tag`. A redelivery files none; a new analysis (a re-analysis superseding this one) has another
 *   key, so it gets a Provenance of its own and earlier ones are never changed.
 */
import type {
  Bundle,
  BundleEntry,
  Coding,
  Device,
  Provenance,
  Reference,
  Resource,
  Task,
} from "@medplum/fhirtypes";
import { type AnalysisJob, JOB_KEY_SYSTEM } from "../queue/jobs.ts";

/** HL7 AI Transparency on FHIR's label: "Artificial Intelligence asserted". */
export const AI_ASSERTED: Coding = {
  system: "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
  code: "AIAST",
  display: "Artificial Intelligence asserted",
};
const CREATE: Coding = {
  system: "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
  code: "CREATE",
  display: "create",
};
const AUTHOR: Coding = {
  system: "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
  code: "author",
  display: "Author",
};
/** The resources a model's results are made of: labelled, and the Provenance's targets. */
const RESULT_TYPES = new Set(["DiagnosticReport", "Observation", "DocumentReference"]);

/** The `meta.tag` (and `_tag` search) that makes a job's Provenance one of a kind. */
export function provenanceTag(key: string): Coding {
  return { system: JOB_KEY_SYSTEM, code: `${key}#provenance` };
}

export interface ProvenanceInput {
  job: AnalysisJob;
  /** The Task as read: its `executionPeriod.start` is when the inference began. */
  task: Task;
  issued: string;
  /** The model's Device (the transaction's `urn:uuid:` reference). */
  device: Reference<Device>;
  /** Earlier results documents this analysis supersedes. */
  priors?: { id: string }[];
}

/** `bundle` with the order and performers linked, the results labelled and the Provenance added. */
export function withOrderAndProvenance(bundle: Bundle, input: ProvenanceInput): Bundle {
  const { job } = input;
  const basedOn = job.order ? [{ reference: job.order }] : undefined;
  const targets: Reference[] = [];
  const entries = (bundle.entry ?? []).map((e): BundleEntry => {
    const r = e.resource;
    if (!r || e.request?.method !== "POST" || !RESULT_TYPES.has(r.resourceType)) return e;
    if (e.fullUrl) targets.push({ reference: e.fullUrl });
    const labelled = {
      ...r,
      meta: { ...r.meta, security: [...r.meta?.security ?? [], AI_ASSERTED] },
    } as Resource;
    if (labelled.resourceType === "DiagnosticReport") {
      if (basedOn) labelled.basedOn = basedOn;
      if (job.performers?.length) {
        labelled.performer = job.performers.map((reference) => ({ reference }));
      }
    } else if (labelled.resourceType === "Observation" && basedOn) {
      labelled.basedOn = basedOn;
    }
    return { ...e, resource: labelled };
  });
  if (!targets.length) return bundle;
  const tag = provenanceTag(job.idempotencyKey);
  const provenance: Provenance = {
    resourceType: "Provenance",
    meta: { tag: [tag], security: [AI_ASSERTED] },
    target: targets,
    occurredPeriod: {
      start: input.task.executionPeriod?.start ?? job.enqueuedAt,
      end: input.issued,
    },
    recorded: input.issued,
    reason: [{ coding: [AI_ASSERTED], text: "AI inference" }],
    activity: { coding: [CREATE], text: `AI analysis by ${input.device.display ?? job.model}` },
    agent: [{
      type: { coding: [AUTHOR] },
      who: input.device,
      ...(job.organization ? { onBehalfOf: { reference: job.organization } } : {}),
    }],
    entity: [
      { role: "source", what: { reference: `ImagingStudy/${job.imagingStudyId}` } },
      ...(job.order ? [{ role: "source" as const, what: { reference: job.order } }] : []),
      ...(input.priors ?? []).map((p) => ({
        role: "revision" as const,
        what: { reference: `DocumentReference/${p.id}` },
      })),
    ],
  };
  return {
    ...bundle,
    entry: [
      ...entries,
      {
        fullUrl: `urn:uuid:${crypto.randomUUID()}`,
        resource: provenance,
        request: {
          method: "POST",
          url: "Provenance",
          // The query part of a URL: "#" must be escaped there.
          ifNoneExist: `_tag=${tag.system}|${tag.code!.replaceAll("#", "%23")}`,
        },
      },
    ],
  };
}
