/**
 * @module An error that is an HTTP answer: a status, a reason and extra headers. The app answers
 * it with an OperationOutcome carrying the reason, like every other error of the service.
 * DICOMweb's own is `DicomwebError` (`dicom/errors.ts`); the NIfTI upload route throws this one.
 */

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "HttpError";
  }
}
