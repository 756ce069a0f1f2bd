/**
 * @module The DICOMweb layer's one error: an HTTP status and a reason. The route answers it with
 * an OperationOutcome (PS3.18 defines no error body), like every other error of the service.
 */
import { HttpError } from "../platform/http_error.ts";

export class DicomwebError extends HttpError {
  constructor(status: number, message: string, headers: Record<string, string> = {}) {
    super(status, message, headers);
    this.name = "DicomwebError";
  }
}
