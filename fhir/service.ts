/** @module The FHIR service the routes call: one entry point, `interact`, over a FhirContext. */
import type { Caller } from "../auth/access.ts";
import type { Db } from "../db/db.ts";
import type { FhirContext } from "./context.ts";
import { interact } from "./interaction.ts";
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
  baseUrl: string;
  defaultCount: number;
  maxCount: number;
  subscriptionEndpoints?: FhirContext["subscriptionEndpoints"];
  outboundPrivateAddresses?: FhirContext["outboundPrivateAddresses"];
}

export function createFhirService(options: FhirServiceOptions): FhirService {
  const context: FhirContext = { ...options };
  return {
    context,
    interact: (request, caller) => interact(caller ? { ...context, caller } : context, request),
  };
}
