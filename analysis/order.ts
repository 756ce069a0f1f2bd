/**
 * @module What an AI-analysis order is, read from a FHIR R4 ServiceRequest (pure; the workflow is
 * `order_workflow.ts`). FHIR workflow's fulfillment pattern: the placer writes a ServiceRequest
 * (`intent` order, original-order or instance-order; `code` = PROCEDURE_SYSTEM|ai-analysis), this
 * service, the filler, answers with a Task `basedOn` it and files a DiagnosticReport `basedOn` it.
 *
 * The study is the first `ImagingStudy/{id}` in `supportingInfo`, then in `reasonReference` (R4 has
 * no ServiceRequest element for "the images to look at": IHE AIR leaves ordering to the RIS and
 * FHIR imaging orders put the study in supportingInfo). The model is an optional coding
 * `urn:imaging-ai:model|<name>` (or `<name>@<version>`) in `code` or in `orderDetail`; none: the
 * first installed model, as `$analyze` does. No LOINC or RadLex code is accepted as the trigger:
 * none means "AI analysis" unambiguously (LOINC 18748-4 "Diagnostic imaging study" would start the
 * model on every radiology order), so only this service's own code starts one.
 */
import type { CodeableConcept, ServiceRequest } from "@medplum/fhirtypes";
import { MODEL_SYSTEM } from "../queue/model_devices.ts";
import type { Priority } from "../queue/jobs.ts";

/** This service's procedure codes: `ai-analysis` = "AI analysis of an imaging study". */
export const PROCEDURE_SYSTEM = "urn:imaging-ai:procedure";
export const AI_ANALYSIS_CODE = "ai-analysis";
/** The identifier (value: the ServiceRequest's id) of the one Task that answers an order. */
export const ORDER_TASK_SYSTEM = "urn:imaging-ai:order";
/** Intents of a ServiceRequest that ask for the work to be done (R4 request-intent). */
const ORDER_INTENTS = new Set(["order", "original-order", "instance-order"]);
/**
 * DiagnosticReport.performer's target types in R4 (the order's other performers, a Device
 * among them, are not copied to the report).
 */
const REPORT_PERFORMER_TYPES = ["Practitioner", "PractitionerRole", "Organization", "CareTeam"];

/** The search that finds this service's orders: `ServiceRequest?code=…`. */
export const ORDER_CODE_TOKEN = `${PROCEDURE_SYSTEM}|${AI_ANALYSIS_CODE}`;

/** Whether the ServiceRequest is an order for an AI analysis (any status). */
export function isAnalysisOrder(sr: ServiceRequest): boolean {
  return ORDER_INTENTS.has(sr.intent) &&
    (sr.code?.coding ?? []).some((c) =>
      c.system === PROCEDURE_SYSTEM && c.code === AI_ANALYSIS_CODE
    );
}

/** What an order asks for, or why it cannot be done. */
export type ReadOrder =
  | {
    ok: true;
    studyId: string;
    model?: string;
    priority: Priority;
    subject?: string;
    requester?: ServiceRequest["requester"];
    /** The order's performers a DiagnosticReport may name (`Type/id`). */
    performers: string[];
  }
  | { ok: false; reason: string };

/** Reads an active AI-analysis order; a study reference that is missing or wrong is a reason. */
export function readOrder(sr: ServiceRequest): ReadOrder {
  const refs = [...(sr.supportingInfo ?? []), ...(sr.reasonReference ?? [])]
    .map((r) => r.reference ?? "").filter(Boolean);
  const study = refs.find((r) => /^ImagingStudy\/[A-Za-z0-9\-.]{1,64}$/.test(r));
  if (!study) {
    return {
      ok: false,
      reason: refs.length
        ? `The order names ${
          refs.join(", ")
        }, not an ImagingStudy (supportingInfo or reasonReference)`
        : "The order names no ImagingStudy (supportingInfo or reasonReference)",
    };
  }
  const models = [sr.code, ...(sr.orderDetail ?? [])].flatMap((c?: CodeableConcept) =>
    (c?.coding ?? []).filter((x) => x.system === MODEL_SYSTEM && x.code).map((x) => x.code!)
  );
  if (new Set(models.map((m) => m.split("@")[0])).size > 1) {
    return { ok: false, reason: `The order names more than one model: ${models.join(", ")}` };
  }
  return {
    ok: true,
    studyId: study.split("/")[1],
    model: models[0],
    priority: ["stat", "asap", "urgent"].includes(sr.priority ?? "") ? "stat" : "routine",
    subject: sr.subject?.reference,
    requester: sr.requester,
    performers: (sr.performer ?? []).map((p) => p.reference ?? "")
      .filter((r) => REPORT_PERFORMER_TYPES.some((t) => r.startsWith(`${t}/`))),
  };
}
