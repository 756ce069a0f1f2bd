/**
 * @module Whether an error means that a dependency cannot be reached right now (the server
 * restarting, failing over, refusing connections, a connection dropped mid-query), as opposed to a
 * fault of the request or of our code. The API answers those with 503 and Retry-After; the request
 * may be repeated once the database is back. Reads the driver's error codes (postgres.js, Node's
 * socket errors, SQLSTATE classes 08 and 57P) through the `cause` chain. The object store's faults
 * arrive as ObjectStoreUnavailable (`object_store.ts`); `dependencyFault` answers for both.
 */

import { causeChain, SOCKET_ERROR_CODES } from "../platform/socket_errors.ts";
import { ObjectStoreUnavailable } from "./object_store.ts";

/** postgres.js and socket error codes of a connection that is gone or cannot be made. */
const CONNECTION_CODES = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  ...SOCKET_ERROR_CODES,
]);

/**
 * SQLSTATEs of a server that is going away or not accepting work: 57P01 admin shutdown, 57P02
 * crash shutdown, 57P03 cannot connect now (starting up, shutting down, recovering), 53300 too many
 * connections; class 08, connection exceptions.
 */
function unavailableState(code: string): boolean {
  return code === "57P01" || code === "57P02" || code === "57P03" || code === "53300" ||
    /^08[0-9A-Z]{3}$/.test(code);
}

/** The database's unavailability behind `error`, in words (for the OperationOutcome), or null. */
export function databaseUnavailable(error: unknown): string | null {
  for (const e of causeChain(error)) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") {
      if (CONNECTION_CODES.has(code)) return describe(code);
      if (unavailableState(code)) return `the database server answered ${code}`;
    }
  }
  return null;
}

function describe(code: string): string {
  switch (code) {
    case "ECONNREFUSED":
      return "the database refused the connection";
    case "CONNECT_TIMEOUT":
    case "ETIMEDOUT":
      return "the connection to the database timed out";
    default:
      return `the connection to the database was lost (${code})`;
  }
}

/** A dependency that is down, as the API answers it (503, or 507 for a full object store). */
export interface DependencyFault {
  dependency: "database" | "object store";
  reason: string;
  status: 503 | 507;
}

/**
 * The dependency fault behind `error`, or null: an ObjectStoreUnavailable (the stores throw it,
 * `withStoreFaults`) in its cause chain, else the database's unavailability.
 */
export function dependencyFault(error: unknown): DependencyFault | null {
  for (const e of causeChain(error)) {
    if (e instanceof ObjectStoreUnavailable) {
      return { dependency: "object store", reason: e.reason, status: e.status };
    }
  }
  const db = databaseUnavailable(error);
  return db ? { dependency: "database", reason: db, status: 503 } : null;
}

/** Seconds a client is asked to wait (Retry-After) before repeating a request a fault failed. */
export const RETRY_AFTER_SECONDS = 5;

/**
 * Whether a failure may well pass on a later try: a dependency down (`dependencyFault`), or an
 * error that carries status 503 (an OperationOutcome answer, the queue unavailable).
 */
export function isTransientFailure(error: unknown): boolean {
  return (error as { status?: unknown } | null)?.status === 503 || dependencyFault(error) !== null;
}
