/**
 * @module `$validate` (http://hl7.org/fhir/OperationDefinition/Resource-validate) at the type
 * level (`POST Type/$validate`, the resource or a Parameters with `resource`, `mode`, `profile`)
 * and the instance level (`GET|POST Type/id/$validate`: the stored resource, or the body as an
 * update of it; `mode=delete` asks whether it could be deleted). The same checks as a write
 * (`validate.ts`), against the base definition and the `profile` asked for, or else those the
 * resource claims in `meta.profile`, when stored as StructureDefinitions (others: a warning). As
 * the specification says, the answer is 200 with an OperationOutcome whether or not the resource
 * is valid; a 4xx means the validation itself could not be done (an unknown profile, no resource).
 */
import type {
  OperationOutcome,
  OperationOutcomeIssue,
  Parameters,
  Resource,
  StructureDefinition,
} from "@medplum/fhirtypes";
import type { Sql } from "../../db/db.ts";
import { badRequest, FhirError } from "../../platform/outcome.ts";
import type { FhirContext, OperationHandler, OperationRequest } from "../context.ts";
import { visible } from "../guard.ts";
import * as ops from "../resource_ops.ts";
import { executeSearch } from "../search/execute.ts";
import { parseSearch } from "../search/parse.ts";
import { validationIssues } from "../validate.ts";

const BASE_PROFILE = "http://hl7.org/fhir/StructureDefinition/";
const MODES = ["create", "update", "delete"] as const;
type Mode = typeof MODES[number];

export const VALIDATE_DEFINITION = "http://hl7.org/fhir/OperationDefinition/Resource-validate";

interface ValidateInput {
  resource?: Resource;
  mode?: Mode;
  profile?: string;
}

/** The operation's handler, registered as `Resource/$validate` (type and instance level). */
export function validateOperation(): OperationHandler {
  const handler: OperationHandler = async (ctx, req) => {
    const input = inputOf(req);
    const type = req.type as string;
    const sql = ctx.db;
    if (req.level === "instance") {
      const stored = await visible(ctx, sql, await ops.read(sql, type, req.id as string));
      if (input.mode === "delete") return answer(await deleteIssues(ctx, sql, stored));
      if (input.resource && input.resource.id !== req.id) {
        return answer([issue(
          "error",
          "invalid",
          `An update of ${type}/${req.id} must carry id "${req.id}", got ` +
            `${JSON.stringify(input.resource.id ?? null)}`,
          `${type}.id`,
        )]);
      }
      input.resource ??= stored;
    } else if (input.mode === "delete") {
      throw badRequest("mode=delete needs an instance: POST Type/[id]/$validate", "mode");
    }
    const resource = input.resource;
    if (!resource) {
      throw badRequest(
        `$validate on ${type} needs a resource: the body, or a Parameters with "resource"`,
      );
    }
    if (resource.resourceType !== type) {
      return answer([issue(
        "error",
        "invalid",
        `Expected resourceType "${type}", got "${resource.resourceType}"`,
        "resourceType",
      )]);
    }
    if (input.profile) {
      const { issues, warnings } = validationIssues(
        resource,
        await profileOf(sql, type, input.profile),
      );
      return answer([...issues, ...warnings]);
    }
    // No profile asked for: the base definition, then each profile the resource claims
    // (`meta.profile`) that is stored here; one that is not is said, not checked.
    const { issues, warnings } = validationIssues(resource);
    const found = [...issues, ...warnings];
    for (const url of resource.meta?.profile ?? []) {
      let claimed: StructureDefinition | undefined;
      try {
        claimed = await profileOf(sql, type, url);
      } catch (e) {
        if (!(e instanceof FhirError)) throw e;
        found.push(
          issue("warning", "not-supported", `meta.profile ${url}: ${e.message}; not checked`),
        );
        continue;
      }
      if (!claimed) continue;
      const more = validationIssues(resource, claimed);
      for (const i of [...more.issues, ...more.warnings]) {
        const key = JSON.stringify([i.severity, i.expression, i.diagnostics]);
        if (!found.some((f) => JSON.stringify([f.severity, f.expression, f.diagnostics]) === key)) {
          found.push({ ...i, diagnostics: `${i.diagnostics ?? ""} (profile ${url})`.trim() });
        }
      }
    }
    return answer(found);
  };
  return Object.assign(handler, {
    levels: ["type", "instance"] as OperationRequest["level"][],
    idempotent: true,
    // Validating writes nothing: reading the type is enough.
    access: (type: string | undefined) => [[type ?? "*", "read"]] as [string, "read"][],
  });
}

/** The resource, mode and profile, from a Parameters body, a bare resource, or the query. */
function inputOf(req: OperationRequest): ValidateInput {
  const input: ValidateInput = {};
  for (const [k, v] of req.query) {
    if (k === "mode") input.mode = modeOf(v);
    else if (k === "profile") input.profile = v;
  }
  const body = req.body as Resource | undefined;
  if (!body) return input;
  if (body.resourceType !== "Parameters") {
    input.resource = body;
    return input;
  }
  for (const p of (body as Parameters).parameter ?? []) {
    switch (p.name) {
      case "resource":
        if (!p.resource) throw badRequest("parameter resource must carry a resource", "resource");
        input.resource = p.resource;
        break;
      case "mode":
        input.mode = modeOf(p.valueCode ?? p.valueString);
        break;
      case "profile":
        input.profile = p.valueUri ?? p.valueCanonical ?? p.valueString;
        break;
      default:
        throw badRequest(`Unknown parameter "${p.name}" of $validate`, "Parameters.parameter");
    }
  }
  return input;
}

function modeOf(value: string | undefined): Mode {
  if (!MODES.includes(value as Mode)) {
    throw badRequest(`mode must be create, update or delete, got "${value}"`, "mode");
  }
  return value as Mode;
}

/**
 * The profile `url` names: the type's base definition (none needed), or a StructureDefinition
 * stored here with that canonical URL (`url|version` picks a version). A 400 when unknown or
 * unusable, since the validation cannot then be done.
 */
async function profileOf(
  sql: Sql,
  type: string,
  url: string,
): Promise<StructureDefinition | undefined> {
  if (url === `${BASE_PROFILE}${type}`) return undefined;
  const [canonical, version] = url.split("|");
  const query: [string, string][] = [["url", canonical], ["_count", "2"], ["_total", "none"]];
  if (version) query.push(["version", version]);
  const request = parseSearch("StructureDefinition", query, {
    lenient: false,
    defaultCount: 2,
    maxCount: 2,
    baseUrl: "",
  });
  const found = (await executeSearch(sql, request)).matches as StructureDefinition[];
  if (!found.length) {
    throw badRequest(
      `Profile ${url} is not known to this server: store its StructureDefinition first`,
      "profile",
    );
  }
  const profile = found[0];
  if (profile.type !== type) {
    throw badRequest(`Profile ${url} constrains ${profile.type}, not ${type}`, "profile");
  }
  if (!profile.snapshot?.element?.length) {
    throw badRequest(`Profile ${url} has no snapshot; this server validates snapshots`, "profile");
  }
  return profile;
}

/** Whether `resource` could be deleted: the checks a delete runs (none is an empty list). */
async function deleteIssues(
  ctx: FhirContext,
  sql: Sql,
  resource: Resource,
): Promise<OperationOutcomeIssue[]> {
  const check = ctx.deleteChecks?.get(resource.resourceType);
  if (!check) return [];
  try {
    await check(sql, resource);
    return [];
  } catch (e) {
    if (!(e instanceof FhirError)) throw e;
    return (e.outcome.issue ?? []).map((i) => ({ ...i, severity: "error" as const }));
  }
}

function issue(
  severity: OperationOutcomeIssue["severity"],
  code: OperationOutcomeIssue["code"],
  text: string,
  expression?: string,
): OperationOutcomeIssue {
  return {
    severity,
    code,
    details: { text },
    diagnostics: text,
    ...(expression ? { expression: [expression] } : {}),
  };
}

/** 200 with the issues, or with one informational issue saying that all is well. */
function answer(issues: OperationOutcomeIssue[]): { status: number; body: OperationOutcome } {
  return {
    status: 200,
    body: {
      resourceType: "OperationOutcome",
      issue: issues.length ? issues : [issue("information", "informational", "Validation passed")],
    },
  };
}
