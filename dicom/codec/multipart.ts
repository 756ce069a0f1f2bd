/**
 * @module multipart/related for DICOMweb (PS3.18): STOW-RS request bodies are read with
 * `readMultipart`, WADO-RS responses written with `writeMultipart`, both streaming a part at a
 * time (RFC 2046 §5.1, RFC 2387). `parseMediaType` reads the `boundary` and `type` parameters of
 * the Content-Type; every failure is a `MultipartError` with a `kind`.
 */
export { MultipartError, type MultipartErrorKind } from "./_multipart_error.ts";
export { type MediaType, parseMediaType } from "./_multipart_media_type.ts";
export { newBoundary } from "./_multipart_boundary.ts";
export { type MultipartLimits, type MultipartPart, readMultipart } from "./_multipart_reader.ts";
export { type OutgoingPart, writeMultipart } from "./_multipart_writer.ts";
