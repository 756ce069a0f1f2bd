/**
 * @module The one error model: a FhirError carries an HTTP status and an OperationOutcome.
 * Outcomes come from @medplum/core's helpers where one fits, so the wording matches Medplum's.
 */
import {
  badRequest as medplumBadRequest,
  getStatus,
  isOperationOutcome,
  OperationOutcomeError,
} from "@medplum/core";
import type { OperationOutcome, OperationOutcomeIssue } from "@medplum/fhirtypes";

type IssueCode = OperationOutcomeIssue["code"];

/** An error a service throws for the route layer to answer with `status` and `outcome`. */
export class FhirError extends Error {
  constructor(readonly status: number, readonly outcome: OperationOutcome) {
    super(outcome.issue?.[0]?.diagnostics ?? outcome.issue?.[0]?.details?.text ?? "error");
  }
}

/** An OperationOutcome with one issue. */
export function outcome(
  severity: OperationOutcomeIssue["severity"],
  code: IssueCode,
  diagnostics: string,
  expression?: string | string[],
): OperationOutcome {
  const issue: OperationOutcomeIssue = {
    severity,
    code,
    diagnostics,
    details: { text: diagnostics },
  };
  if (expression) issue.expression = Array.isArray(expression) ? expression : [expression];
  return { resourceType: "OperationOutcome", issue: [issue] };
}

/** An informational outcome (for `Prefer: return=OperationOutcome` and deletes). */
export function informational(diagnostics: string): OperationOutcome {
  return outcome("information", "informational", diagnostics);
}

export function fhirError(
  status: number,
  code: IssueCode,
  diagnostics: string,
  expression?: string | string[],
) {
  return new FhirError(status, outcome("error", code, diagnostics, expression));
}

export const badRequest = (msg: string, expression?: string | string[]) =>
  new FhirError(400, withDiagnostics(medplumBadRequest(msg, expression), msg));
export const invalid = (msg: string, expression?: string | string[]) =>
  fhirError(400, "invalid", msg, expression);
export const unprocessable = (msg: string, expression?: string | string[]) =>
  fhirError(422, "processing", msg, expression);
export const notFound = (msg: string) => fhirError(404, "not-found", msg);
export const gone = (msg: string) => fhirError(410, "deleted", msg);
export const conflict = (msg: string) => fhirError(409, "conflict", msg);
export const preconditionFailed = (msg: string) => fhirError(412, "conflict", msg);
export const notSupported = (msg: string, status = 400) => fhirError(status, "not-supported", msg);
export const multipleMatches = (msg: string) => fhirError(412, "multiple-matches", msg);

function withDiagnostics(o: OperationOutcome, msg: string): OperationOutcome {
  return { ...o, issue: o.issue?.map((i) => ({ ...i, diagnostics: i.diagnostics ?? msg })) };
}

/**
 * Turns anything thrown into a FhirError: ours pass through, Medplum's keep their outcome and
 * status, and anything else becomes a 500 `exception` naming the request id, never a stack.
 */
export function toFhirError(error: unknown, requestId?: string): FhirError {
  if (error instanceof FhirError) return error;
  if (
    error instanceof OperationOutcomeError ||
    isOperationOutcome((error as { outcome?: unknown })?.outcome)
  ) {
    const o = (error as OperationOutcomeError).outcome;
    const status = getStatus(o);
    const issue = o.issue?.map((i) => ({ ...i, diagnostics: i.diagnostics ?? i.details?.text }));
    return new FhirError(status >= 200 && status < 300 ? 400 : status, { ...o, issue });
  }
  const ref = requestId ? ` (request id ${requestId})` : "";
  return fhirError(500, "exception", `Internal server error${ref}`);
}
