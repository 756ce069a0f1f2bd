/**
 * @module Follows the change feed for Subscriptions: activates new or edited Subscriptions, and
 * for every other change asks each notified Subscription of that type whether the resource
 * matches (its criteria run as a search with `_id`), queueing a delivery when it does.
 */
import type { Bundle, Resource, Subscription } from "@medplum/fhirtypes";
import type { Db } from "../../db/db.ts";
import type { ResourceChange } from "../change_feed.ts";
import { FhirError } from "../../platform/outcome.ts";
import type { FhirService } from "../service.ts";
import { type ActiveSubscription, checkSubscription, SubscriptionProblem } from "./criteria.ts";
import { enqueueDelivery, notifiedSubscriptions } from "./delivery_repo.ts";
import { readSubscription, setSubscriptionStatus } from "./lifecycle.ts";

export interface MatcherDeps {
  db: Db;
  fhir: FhirService;
  /** Called when a delivery was queued. */
  queued(): void;
  log(level: "debug" | "info" | "warn" | "error", msg: string, data?: object): void;
}

/** How long the list of notified Subscriptions is trusted when no Subscription changed. */
const CACHE_MS = 30_000;

export function createMatcher(deps: MatcherDeps) {
  const { fhir, log } = deps;
  let subscriptions: ActiveSubscription[] | undefined;
  let loadedAt = 0;

  /** Active and error Subscriptions that parse; those past `end` are turned off. */
  const load = async (): Promise<ActiveSubscription[]> => {
    const out: ActiveSubscription[] = [];
    for (const sub of await notifiedSubscriptions(deps.db)) {
      let checked: ActiveSubscription;
      try {
        checked = checkSubscription(
          sub,
          fhir.context.subscriptionEndpoints,
          fhir.context.outboundPrivateAddresses,
        );
      } catch (e) {
        if (!(e instanceof SubscriptionProblem)) throw e;
        continue;
      }
      if (checked.end !== undefined && checked.end <= Date.now()) {
        await setSubscriptionStatus(fhir, checked.id, { status: "off" }, ["active", "error"]);
        continue;
      }
      out.push(checked);
    }
    return out;
  };

  /** A Subscription version: requested (or active) ones are checked and set active or error. */
  const onSubscription = async (change: ResourceChange) => {
    const sub = await readSubscription(fhir, change.id);
    if (!sub || sub.meta?.versionId !== String(change.version)) return; // a later version follows
    if (sub.status !== "requested" && sub.status !== "active") return;
    const from: Subscription["status"][] = ["requested", "active"];
    try {
      const checked = checkSubscription(
        sub,
        fhir.context.subscriptionEndpoints,
        fhir.context.outboundPrivateAddresses,
      );
      if (checked.end !== undefined && checked.end <= Date.now()) {
        await setSubscriptionStatus(fhir, sub.id!, { status: "off" }, from);
      } else if (sub.status === "requested") {
        await setSubscriptionStatus(fhir, sub.id!, { status: "active" }, from);
        log("info", "subscription active", { subscription: sub.id, criteria: sub.criteria });
      }
    } catch (e) {
      if (!(e instanceof SubscriptionProblem)) throw e;
      await setSubscriptionStatus(fhir, sub.id!, { status: "error", error: e.message }, from);
      log("info", "subscription refused", { subscription: sub.id, error: e.message });
    }
  };

  /** Whether the current version of `type/id` matches the Subscription's criteria. */
  const matches = async (sub: ActiveSubscription, id: string): Promise<boolean> => {
    try {
      const result = await fhir.interact({
        method: "GET",
        path: [sub.type],
        query: [...sub.params, ["_id", id], ["_summary", "count"]],
      });
      return ((result.body as Bundle).total ?? 0) > 0;
    } catch (e) {
      if (!(e instanceof FhirError) || e.status >= 500) throw e;
      log("warn", "subscription criteria failed", { subscription: sub.id, error: e.message });
      return false;
    }
  };

  const onResource = async (change: ResourceChange, candidates: ActiveSubscription[]) => {
    const current = await fhir.interact({
      method: "GET",
      path: [change.type, change.id],
      query: [],
    })
      .then((r) => r.body as Resource, () => undefined);
    // Criteria are searches, so they see the current version: when a newer one exists (or the
    // resource is gone), its own change decides.
    if (current?.meta?.versionId !== String(change.version)) return;
    for (const sub of candidates) {
      if (sub.end !== undefined && sub.end <= Date.now()) {
        await setSubscriptionStatus(fhir, sub.id, { status: "off" }, ["active", "error"]);
        continue;
      }
      if (!(await matches(sub, change.id))) continue;
      const queued = await enqueueDelivery(deps.db, {
        subscriptionId: sub.id,
        type: change.type,
        id: change.id,
        version: change.version,
        seq: change.seq,
      });
      if (queued) deps.queued();
    }
  };

  return {
    /** Handles one batch of changes, in feed order. Deletions are not notified. */
    async process(changes: ResourceChange[]): Promise<void> {
      for (const change of changes) {
        if (change.type === "Subscription") {
          subscriptions = undefined;
          if (!change.deleted) await onSubscription(change);
          continue;
        }
        if (change.deleted) continue;
        if (!subscriptions || Date.now() - loadedAt > CACHE_MS) {
          subscriptions = await load();
          loadedAt = Date.now();
        }
        const candidates = subscriptions.filter((s) => s.type === change.type);
        if (candidates.length) await onResource(change, candidates);
      }
    },
  };
}

export type Matcher = ReturnType<typeof createMatcher>;
