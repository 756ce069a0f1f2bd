/** @module The FHIR service the routes call: one entry point, `interact`, over a FhirContext. */
import type { Caller } from "../auth/access.ts";
import type { Db } from "../db/db.ts";
import type { FhirContext } from "./context.ts";
import { interact } from "./interaction.ts";
import { coreOperations } from "./operations/core.ts";
import type { FhirRequest, FhirResult } from "./request.ts";

export interface FhirService {
  readonly context: FhirContext;
  /** One interaction; `caller` (absent: the service itself) is checked against every step. */
  interact(request: FhirRequest, caller?: Caller): Promise<FhirResult>;
}

export interface FhirServiceOptions {
  db: Db;
  readDb?: Db;
  operations?: FhirContext["operations"];
  declaredOperations?: FhirContext["declaredOperations"];
  instantiates?: FhirContext["instantiates"];
  baseUrl: string;
  defaultCount: number;
  maxCount: number;
  subscriptionEndpoints?: FhirContext["subscriptionEndpoints"];
  outboundPrivateAddresses?: FhirContext["outboundPrivateAddresses"];
}

export function createFhirService(options: FhirServiceOptions): FhirService {
  const context: FhirContext = {
    ...options,
    // The core's own operations; others (ImagingStudy/$analyze) are registered by their parts.
    operations: new Map([...coreOperations(), ...(options.operations ?? [])]),
  };
  return {
    context,
    interact: (request, caller) => interact(caller ? { ...context, caller } : context, request),
  };
}
