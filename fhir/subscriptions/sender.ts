/**
 * @module Sends queued Subscription notifications (R4 rest-hook): without a payload an empty POST
 * to the endpoint; with `application/fhir+json` an update, `PUT [endpoint]/Type/id` with the
 * resource version that matched. Failures are retried with exponential backoff; after the last
 * attempt the delivery fails and the Subscription goes to `error`, and a later success sets it
 * back to `active`. One loop per process claims due rows, so replicas share the work.
 */
import { guardedRequest, outboundProblem, OutboundRefused } from "../../platform/outbound.ts";
import type { Db } from "../../db/db.ts";
import type { FhirService } from "../service.ts";
import { FhirError } from "../../platform/outcome.ts";
import {
  checkSubscription,
  EndpointNotAllowed,
  notificationUrl,
  privateMessage,
  SubscriptionProblem,
} from "./criteria.ts";
import {
  claimDue,
  type Delivery,
  markCancelled,
  markDelivered,
  markFailed,
  nextDueIn,
} from "./delivery_repo.ts";
import { readSubscription, setSubscriptionStatus } from "./lifecycle.ts";
import { backoffDelay, createDueLoop } from "../../platform/due_loop.ts";

export interface RetryOptions {
  /** Attempts before a notification is given up (SUBSCRIPTION_MAX_ATTEMPTS). */
  maxAttempts: number;
  /** Delay after the first failure, doubled after each further one, capped at `backoffMaxMs`. */
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** How long one POST/PUT may take. */
  timeoutMs: number;
  /** How often to look for deliveries other replicas queued or that fell due. */
  pollMs: number;
  /** Notifications in flight at once, across Subscriptions (one at a time per Subscription). */
  concurrency: number;
}

export interface SenderDeps {
  db: Db;
  fhir: FhirService;
  options: RetryOptions;
  log(level: "debug" | "info" | "warn" | "error", msg: string, data?: object): void;
}

export function createSender(deps: SenderDeps) {
  const { db, fhir, options, log } = deps;
  const fail = async (d: Delivery, error: string, status?: number) => {
    const last = d.attempts >= options.maxAttempts;
    await markFailed(db, d.id, {
      status,
      error,
      retryInMs: last ? undefined : backoffDelay(options, d.attempts),
    });
    log(last ? "warn" : "info", "subscription notification failed", {
      subscription: d.subscriptionId,
      resource: `${d.type}/${d.resourceId}/_history/${d.version}`,
      attempt: d.attempts,
      error,
    });
    if (!last) return;
    const text = `Notification of ${d.type}/${d.resourceId}/_history/${d.version} failed after ` +
      `${d.attempts} attempts: ${error}`;
    await setSubscriptionStatus(fhir, d.subscriptionId, { status: "error", error: text }, [
      "active",
      "error",
    ]);
  };

  const send = async (d: Delivery, signal: AbortSignal) => {
    const stored = await readSubscription(fhir, d.subscriptionId);
    if (!stored || (stored.status !== "active" && stored.status !== "error")) {
      return await markCancelled(db, d.id, `Subscription is ${stored?.status ?? "deleted"}`);
    }
    let sub;
    // Refused addresses: checked before sending, and again by the connection itself (below).
    const guarded = fhir.context.outboundPrivateAddresses !== "allow" &&
      !fhir.context.subscriptionEndpoints?.length;
    const refuse = async (message: string) => {
      // A private address, or SUBSCRIPTION_ENDPOINTS tightened after the Subscription was made:
      // never send there.
      await markFailed(db, d.id, { error: message });
      log("warn", "subscription notification refused", {
        subscription: d.subscriptionId,
        resource: `${d.type}/${d.resourceId}/_history/${d.version}`,
        error: message,
      });
      await setSubscriptionStatus(fhir, d.subscriptionId, { status: "error", error: message }, [
        "active",
        "error",
      ]);
    };
    try {
      sub = checkSubscription(
        stored,
        fhir.context.subscriptionEndpoints,
        fhir.context.outboundPrivateAddresses,
      );
      // The endpoint's name, resolved now (it may point elsewhere than when it was checked).
      if (guarded) {
        const problem = await outboundProblem(new URL(sub.endpoint), fhir.context.resolveHost);
        if (problem) throw new EndpointNotAllowed(privateMessage(sub.endpoint, problem));
      }
    } catch (e) {
      if (e instanceof EndpointNotAllowed) return await refuse(e.message);
      if (!(e instanceof SubscriptionProblem)) throw e;
      return await markCancelled(db, d.id, e.message);
    }
    if (sub.end !== undefined && sub.end <= Date.now()) {
      await setSubscriptionStatus(fhir, sub.id, { status: "off" }, ["active", "error"]);
      return await markCancelled(db, d.id, "Subscription ended");
    }
    const headers = new Headers();
    let body: string | undefined;
    if (sub.payload) {
      try {
        const path = [d.type, d.resourceId, "_history", String(d.version)];
        body = JSON.stringify((await fhir.interact({ method: "GET", path, query: [] })).body);
      } catch (e) {
        if (!(e instanceof FhirError) || e.status >= 500) throw e;
        return await markCancelled(db, d.id, e.message);
      }
      headers.set("Content-Type", "application/fhir+json; charset=utf-8");
    }
    for (const [name, value] of sub.headers) headers.append(name, value);
    const url = notificationUrl(sub, d.type, d.resourceId);
    let status: number;
    try {
      const init = {
        method: sub.payload ? "PUT" : "POST",
        headers,
        body: body ?? new Uint8Array(0),
        signal: AbortSignal.any([signal, AbortSignal.timeout(options.timeoutMs)]),
      };
      if (guarded) {
        // Connects to the addresses it checked: a name cannot rebind to a private one meanwhile.
        status = (await guardedRequest(new URL(url), init, fhir.context.resolveHost)).status;
      } else {
        const response = await fetch(url, { ...init, redirect: "manual" });
        await response.body?.cancel();
        status = response.status;
      }
    } catch (e) {
      if (signal.aborted) return; // the lease runs out and the next start sends it again
      if (e instanceof OutboundRefused && guarded) {
        return await refuse(privateMessage(sub.endpoint, e.message));
      }
      return await fail(d, `${(e as Error).name}: ${(e as Error).message}`);
    }
    if (status < 200 || status > 299) return await fail(d, `HTTP ${status}`, status);
    await markDelivered(db, d.id, status);
    if (sub.status === "error") {
      await setSubscriptionStatus(fhir, sub.id, { status: "active" }, ["error"]);
    }
  };

  const loop = createDueLoop({
    name: "subscription sender",
    concurrency: options.concurrency,
    pollMs: options.pollMs,
    claim: (limit) => claimDue(db, limit, options.timeoutMs + 30_000),
    nextDueIn: () => nextDueIn(db),
    handle: send,
    log,
  });
  return {
    wake: loop.wake,
    /** Resolves when nothing is due now and nothing is in flight (for tests). */
    idle: loop.idle,
    close: loop.close,
  };
}

export type Sender = ReturnType<typeof createSender>;
