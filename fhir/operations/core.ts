/** @module The FHIR core's own operations, by the key `FhirContext.operations` files them under. */
import type { OperationHandler } from "../context.ts";
import { EVERYTHING_DEFINITION, everythingOperation } from "./everything.ts";
import { VALIDATE_DEFINITION, validateOperation } from "./validate.ts";

export function coreOperations(): [string, OperationHandler][] {
  return [
    ["Resource/$validate", Object.assign(validateOperation(), { definition: VALIDATE_DEFINITION })],
    [
      "Patient/$everything",
      Object.assign(everythingOperation(), { definition: EVERYTHING_DEFINITION }),
    ],
  ];
}
