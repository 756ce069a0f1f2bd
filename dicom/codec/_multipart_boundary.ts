/** @module Multipart boundaries: `newBoundary()` makes one, `assertBoundary()` checks one (RFC 2046 §5.1.1). */
import { MultipartError } from "./_multipart_error.ts";

/** RFC 2046 `bchars`: at most 70, and a space may not be the last. */
const RFC_BOUNDARY = /^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$/;
/** What a reader accepts: any printable ASCII, as some clients stray from the RFC's set. */
const LENIENT_BOUNDARY = /^[\x20-\x7e]{1,200}$/;

/** A random boundary of 32 hex digits: RFC 2046 characters that need no quoting in a header. */
export function newBoundary(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Throws a `bad-boundary` MultipartError unless `boundary` is usable; `strict` holds to RFC 2046. */
export function assertBoundary(boundary: string, strict: boolean): void {
  if (!(strict ? RFC_BOUNDARY : LENIENT_BOUNDARY).test(boundary)) {
    throw new MultipartError("bad-boundary", `bad multipart boundary ${JSON.stringify(boundary)}`);
  }
}
