/**
 * @module `_include` and `_revinclude` values read into an `IncludeSpec` (`Type:param[:target]`),
 * and why one can never add anything (strict handling refuses those).
 */
import { badRequest } from "../../platform/outcome.ts";
import { searchParamsOf } from "../definitions.ts";
import { isSupportedType } from "../resource_types.ts";
import type { IncludeSpec } from "./model.ts";

/**
 * Why an include can never add anything, or undefined: a target type the parameter cannot point
 * at, or (without :iterate) a `_revinclude` whose parameter cannot point at the searched type.
 */
export function includeProblem(
  spec: IncludeSpec,
  name: string,
  searchType: string,
): string | undefined {
  const targets = (spec.def.resource.target ?? []) as string[];
  const label = `${spec.sourceType}.${spec.code}`;
  if (spec.targetType && targets.length && !targets.includes(spec.targetType)) {
    return `${label} cannot refer to ${spec.targetType} (its targets: ${targets.join(", ")})`;
  }
  if (name !== "_revinclude" || spec.iterate) return undefined;
  if (spec.targetType && spec.targetType !== searchType) {
    return `the target ${spec.targetType} is not the searched type ${searchType}`;
  }
  if (targets.length && !targets.includes(searchType)) {
    return `${label} cannot refer to ${searchType} (its targets: ${targets.join(", ")})`;
  }
  return undefined;
}

export function parseInclude(
  value: string,
  iterate: boolean,
  searchType: string | undefined,
): IncludeSpec {
  const [sourceType, code, targetType] = value.split(":");
  if (!sourceType || !code) {
    throw badRequest(`Invalid include "${value}": expected Type:parameter[:targetType]`);
  }
  if (!isSupportedType(sourceType)) {
    throw badRequest(`Unknown resource type "${sourceType}" in include "${value}"`);
  }
  const def = searchParamsOf(sourceType).get(code);
  if (!def || def.type !== "reference") {
    throw badRequest(`"${code}" is not a reference search parameter of ${sourceType}`);
  }
  if (targetType && !isSupportedType(targetType)) {
    throw badRequest(`Unknown target type "${targetType}"`);
  }
  if (!iterate && searchType && sourceType !== searchType) {
    throw badRequest(
      `_include=${value} must start with the searched type ${searchType} (or use :iterate)`,
    );
  }
  return { sourceType, code, def, targetType, iterate };
}
