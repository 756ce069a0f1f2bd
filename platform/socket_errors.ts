/**
 * @module Error codes of a network peer that cannot be reached or went away: Node's socket codes
 * (which npm clients such as postgres.js and the AWS SDK raise under Deno too) and Deno's error
 * class names. Whoever classifies a dependency's failure as "unavailable" starts from these, and
 * walks the error's `cause` chain with `causeChain` (clients wrap the socket's error in their own).
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

/** `error` and its causes (`error.cause`, its cause, …), at most `depth` of them. */
export function* causeChain(error: unknown, depth = 4): Generator<object> {
  let e: unknown = error;
  for (let i = 0; e && typeof e === "object" && i < depth; i++) {
    yield e;
    e = (e as { cause?: unknown }).cause;
  }
}
