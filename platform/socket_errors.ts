/**
 * @module Error codes of a network peer that cannot be reached or went away: Node's socket codes
 * (which npm clients such as postgres.js and the AWS SDK raise under Deno too) and Deno's error
 * class names. Whoever classifies a dependency's failure as "unavailable" starts from these.
 */
export const SOCKET_ERROR_CODES: readonly string[] = [
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
  "ERR_SOCKET_CONNECTION_TIMEOUT",
  "ConnectionRefused",
  "ConnectionReset",
  "ConnectionAborted",
  "BrokenPipe",
  "TimedOut",
];
