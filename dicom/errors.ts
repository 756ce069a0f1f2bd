/**
 * @module The DICOMweb layer's one error: an HTTP status and a reason. The route answers it with
 * an OperationOutcome (PS3.18 defines no error body), like every other error of the service.
 */

export class DicomwebError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "DicomwebError";
  }
}
