/**
 * @module The server's own changes to a Subscription's status (requested → active | error | off,
 * active ⇄ error, → off at `end`), written as ordinary FHIR updates guarded by If-Match, so a
 * client's concurrent edit wins and is looked at again when it reaches the change feed.
 */
import type { Subscription } from "@medplum/fhirtypes";
import { FhirError } from "../../platform/outcome.ts";
import type { FhirService } from "../service.ts";

export type SubscriptionStatus = Subscription["status"];

/** The current Subscription, or undefined when it is gone. */
export async function readSubscription(
  fhir: FhirService,
  id: string,
): Promise<Subscription | undefined> {
  try {
    const result = await fhir.interact({ method: "GET", path: ["Subscription", id], query: [] });
    return result.body as Subscription;
  } catch (e) {
    if (e instanceof FhirError && (e.status === 404 || e.status === 410)) return undefined;
    throw e;
  }
}

/**
 * Sets `status` (and `error` when given) if the Subscription is in one of the `from` states;
 * returns whether it wrote. Retries a few times when a concurrent write moves the version on.
 */
export async function setSubscriptionStatus(
  fhir: FhirService,
  id: string,
  to: { status: SubscriptionStatus; error?: string },
  from: SubscriptionStatus[],
): Promise<boolean> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const sub = await readSubscription(fhir, id);
    if (!sub || !from.includes(sub.status)) return false;
    if (sub.status === to.status && (to.error === undefined || sub.error === to.error)) {
      return false;
    }
    const next: Subscription = { ...sub, status: to.status };
    if (to.error !== undefined) next.error = to.error.slice(0, 1000);
    try {
      await fhir.interact({
        method: "PUT",
        path: ["Subscription", id],
        query: [],
        body: next,
        ifMatch: sub.meta?.versionId,
      });
      return true;
    } catch (e) {
      if (!(e instanceof FhirError) || (e.status !== 412 && e.status !== 409)) throw e;
    }
  }
  return false;
}
