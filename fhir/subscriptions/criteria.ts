/**
 * @module What makes an R4 Subscription usable: its criteria (`Type?query`, parsed by the server's
 * own search parser, so every search feature works in criteria) and its rest-hook channel.
 */
import { hostProblem } from "../../platform/outbound.ts";
import type { Subscription } from "@medplum/fhirtypes";
import { FhirError, fhirError } from "../../platform/outcome.ts";
import { isSupportedType } from "../resource_types.ts";
import { parseSearch } from "../search/parse.ts";
import { endpointAllowed, type EndpointPattern } from "../../platform/endpoint_patterns.ts";

/** A Subscription that can be matched and notified. */
export interface ActiveSubscription {
  id: string;
  status: "active" | "error";
  /** The criteria's resource type. */
  type: string;
  /** The criteria's filters, without result parameters (`_count`, `_sort`, `_include`, …). */
  params: [string, string][];
  /** `end` as epoch ms; undefined when open-ended. */
  end?: number;
  endpoint: string;
  /** True when `channel.payload` asks for the resource (`application/fhir+json`). */
  payload: boolean;
  headers: [string, string][];
}

/** Why a Subscription cannot be activated, as text for `Subscription.error`. */
export class SubscriptionProblem extends Error {}

/** The endpoint is outside SUBSCRIPTION_ENDPOINTS: nothing may be sent there. */
export class EndpointNotAllowed extends SubscriptionProblem {}

const PAYLOAD_TYPES = new Set(["application/fhir+json", "application/json"]);
const RESULT_PARAM =
  /^_(count|sort|total|summary|elements|include|revinclude|cursor|format|pretty)\b/;

/** Parses `Type?query` (or a bare `Type`); throws a SubscriptionProblem naming what is wrong. */
export function parseCriteria(criteria: string | undefined): {
  type: string;
  params: [string, string][];
} {
  if (!criteria?.trim()) throw new SubscriptionProblem("Subscription.criteria is missing");
  const text = criteria.trim();
  const q = text.indexOf("?");
  const type = q < 0 ? text : text.slice(0, q);
  if (!isSupportedType(type)) {
    throw new SubscriptionProblem(
      `Subscription.criteria: resource type "${type}" is not supported by this server`,
    );
  }
  const params = [...new URLSearchParams(q < 0 ? "" : text.slice(q + 1))]
    .filter(([k]) => !RESULT_PARAM.test(k));
  try {
    parseSearch(type, params, { lenient: false, defaultCount: 1, maxCount: 1, baseUrl: "" });
  } catch (e) {
    if (e instanceof FhirError) {
      throw new SubscriptionProblem(`Subscription.criteria: ${e.message}`);
    }
    throw e;
  }
  return { type, params };
}

/** `Name: value` lines of `channel.header` as header pairs. */
export function parseHeaders(lines: string[] | undefined): [string, string][] {
  return (lines ?? []).map((line) => {
    const colon = line.indexOf(":");
    const name = colon > 0 ? line.slice(0, colon).trim() : "";
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) {
      throw new SubscriptionProblem(
        `Subscription.channel.header "${line}": expected "Name: value"`,
      );
    }
    return [name, line.slice(colon + 1).trim()];
  });
}

/**
 * The rest-hook endpoint as an absolute http(s) URL that `allowed` (SUBSCRIPTION_ENDPOINTS; empty:
 * any public endpoint) lets the server send to; throws a SubscriptionProblem, EndpointNotAllowed
 * for the list and, unless `privateAddresses` is `allow` or the list names it, for a loopback,
 * private, link-local or metadata address or `localhost` (names are resolved and checked again
 * before each notification: `platform/outbound.ts`).
 */
export function checkEndpoint(
  raw: string | undefined,
  allowed: readonly EndpointPattern[] = [],
  privateAddresses: "refuse" | "allow" = "refuse",
): URL {
  let endpoint: URL;
  try {
    endpoint = new URL(raw ?? "");
  } catch {
    throw new SubscriptionProblem(
      `Subscription.channel.endpoint "${raw ?? ""}" is not an absolute URL`,
    );
  }
  if (endpoint.protocol !== "http:" && endpoint.protocol !== "https:") {
    throw new SubscriptionProblem(
      `Subscription.channel.endpoint must be http: or https:, got ${endpoint.protocol}`,
    );
  }
  if (!endpointAllowed(allowed, endpoint.toString())) {
    throw new EndpointNotAllowed(
      `Subscription.channel.endpoint "${raw}" is not in SUBSCRIPTION_ENDPOINTS, the endpoints this server may notify`,
    );
  }
  if (privateAddresses !== "allow" && !allowed.length) {
    const problem = hostProblem(endpoint.hostname);
    if (problem) throw new EndpointNotAllowed(privateMessage(raw ?? "", problem));
  }
  return endpoint;
}

/**
 * On every write of a Subscription (create, update, patch, in a Bundle too): a requested or active
 * rest-hook Subscription whose endpoint is outside SUBSCRIPTION_ENDPOINTS is a 400, like a channel
 * the validator refuses. Other problems are left to activation, which sets the status `error`; a
 * Subscription set `off` or `error` passes, so it can always be turned off.
 */
export function assertEndpointAllowed(
  sub: Subscription,
  allowed: readonly EndpointPattern[] | undefined,
  privateAddresses: "refuse" | "allow" = "refuse",
): void {
  if (sub.channel?.type !== "rest-hook") return;
  if (sub.status !== "requested" && sub.status !== "active") return;
  try {
    checkEndpoint(sub.channel.endpoint, allowed ?? [], privateAddresses);
  } catch (e) {
    if (!(e instanceof EndpointNotAllowed)) return;
    throw fhirError(400, "value", e.message, "Subscription.channel.endpoint");
  }
}

/**
 * Checks a Subscription's criteria and channel; returns it ready to match, or throws a
 * SubscriptionProblem. Only rest-hook is supported, to an absolute http(s) endpoint that
 * `allowed` (SUBSCRIPTION_ENDPOINTS) lets through.
 */
export function checkSubscription(
  sub: Subscription,
  allowed: readonly EndpointPattern[] = [],
  privateAddresses: "refuse" | "allow" = "refuse",
): ActiveSubscription {
  const { type, params } = parseCriteria(sub.criteria);
  const channel = sub.channel;
  if (channel?.type !== "rest-hook") {
    throw new SubscriptionProblem(
      `Subscription.channel.type "${channel?.type}" is not supported; use rest-hook`,
    );
  }
  const endpoint = checkEndpoint(channel.endpoint, allowed, privateAddresses);
  const payload = channel.payload?.split(";")[0].trim().toLowerCase();
  if (payload && !PAYLOAD_TYPES.has(payload)) {
    throw new SubscriptionProblem(
      `Subscription.channel.payload "${channel.payload}" is not supported; use application/fhir+json or leave it out`,
    );
  }
  const end = sub.end ? Date.parse(sub.end) : undefined;
  return {
    id: sub.id!,
    status: sub.status === "error" ? "error" : "active",
    type,
    params,
    end: Number.isNaN(end) ? undefined : end,
    endpoint: endpoint.toString(),
    payload: Boolean(payload),
    headers: parseHeaders(channel.header),
  };
}

/** Where a notification goes: the endpoint (no payload), or `[endpoint]/Type/id` for a PUT. */
export function notificationUrl(sub: ActiveSubscription, type: string, id: string): string {
  if (!sub.payload) return sub.endpoint;
  const url = new URL(sub.endpoint);
  url.pathname = `${url.pathname.replace(/\/+$/, "")}/${type}/${encodeURIComponent(id)}`;
  return url.toString();
}

/** Why a Subscription may not notify an address, and how an administrator allows it. */
export function privateMessage(endpoint: string, problem: string): string {
  return `Subscription.channel.endpoint "${endpoint}": ${problem}; this server does not send ` +
    `notifications to loopback, private, link-local or metadata addresses unless ` +
    `SUBSCRIPTION_ENDPOINTS names the endpoint or OUTBOUND_PRIVATE_ADDRESSES=allow`;
}
