/** @module The one error of the multipart modules: a `MultipartError` with a `kind` a route can map to a status. */

/**
 * What went wrong. `too-large` (the whole body is over its limit) answers 413; `part-too-large`
 * may answer per part (a STOW-RS failed instance) or 413; the rest are the client's mistake (400).
 */
export type MultipartErrorKind =
  | "bad-media-type"
  | "bad-boundary"
  | "no-boundary"
  | "malformed"
  | "headers-too-large"
  | "truncated"
  | "part-too-large"
  | "too-large";

/** A malformed or oversized multipart body or media type; `reason` says why in plain words. */
export class MultipartError extends Error {
  override readonly name = "MultipartError";

  constructor(
    readonly kind: MultipartErrorKind,
    readonly reason: string,
    /** The 0-based index of the part the error is about, where it is about one part. */
    readonly partIndex?: number,
  ) {
    super(reason);
  }
}
