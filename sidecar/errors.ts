/**
 * @module Why a job failed, and whether trying again could help: a `JobError` with `fatal` set
 * (unsupported transfer syntax, model missing, no suitable series, WADO 404) is dead-lettered at
 * once; anything else is retried by the queue with backoff.
 */
import { PixelDecodeError } from "../dicom/codec/pixels.ts";
import { ApiError } from "./api_client.ts";

export class JobError extends Error {
  constructor(message: string, readonly fatal: boolean) {
    super(message);
    this.name = "JobError";
  }
}

/** A failure that will not go away by itself. */
export const fatal = (message: string): JobError => new JobError(message, true);

/** The reason to record and whether it is fatal, for any error a job threw. */
export function classify(e: unknown): { reason: string; fatal: boolean } {
  if (e instanceof JobError) return { reason: e.message, fatal: e.fatal };
  if (e instanceof PixelDecodeError) return { reason: e.message, fatal: true };
  if (e instanceof ApiError) {
    // A 4xx other than a conflict is our request's fault (or the resource is gone): retrying the
    // same request cannot help. 408, 409, 412 (a concurrent update) and 429 may pass next time.
    const transient = e.status >= 500 || [408, 409, 412, 429].includes(e.status);
    return { reason: e.message, fatal: !transient };
  }
  return { reason: e instanceof Error ? e.message : String(e), fatal: false };
}
