// deno-lint-ignore-file no-explicit-any
/** @module Helpers shared by the FHIR black-box tests (not a test file itself). */
import assert from "node:assert/strict";
import { fhirJson, type TestContext } from "../_harness.ts";

export const TAG_SYSTEM = "urn:test:tag";

/** A meta carrying one unique tag, so that `_tag=urn:test:tag|u` finds only this test's data. */
export function tagged(u: string): { tag: { system: string; code: string }[] } {
  return { tag: [{ system: TAG_SYSTEM, code: u }] };
}

/** `_tag=...` query fragment (URL-encoded) for a test's unique tag. */
export function tagQ(u: string): string {
  return `_tag=${encodeURIComponent(`${TAG_SYSTEM}|${u}`)}`;
}

/** POSTs a resource and asserts 201; returns the stored resource. */
export async function create(ctx: TestContext, resource: any): Promise<any> {
  const res = await fhirJson(ctx, "POST", resource.resourceType, resource);
  assert.equal(res.status, 201, `create ${resource.resourceType}: ${JSON.stringify(res.body)}`);
  assert.ok(res.body?.id, "created resource has an id");
  return res.body;
}

/** GETs a search and asserts a 200 searchset Bundle. */
export async function search(
  ctx: TestContext,
  query: string,
  headers: Record<string, string> = {},
): Promise<any> {
  const res = await fhirJson(ctx, "GET", query, undefined, headers);
  assert.equal(res.status, 200, `GET ${query}: ${JSON.stringify(res.body)}`);
  assert.equal(res.body?.resourceType, "Bundle");
  assert.equal(res.body.type, "searchset");
  return res.body;
}

/** The ids of the `match` entries of a searchset, sorted. */
export function matchIds(bundle: any): string[] {
  return (bundle.entry ?? [])
    .filter((e: any) => (e.search?.mode ?? "match") === "match")
    .map((e: any) => e.resource.id)
    .sort();
}

/** Searches and returns the sorted ids of the matches. */
export async function searchIds(ctx: TestContext, query: string): Promise<string[]> {
  return matchIds(await search(ctx, query));
}

/** Asserts an OperationOutcome with at least one issue. */
export function assertOutcome(body: any, note = ""): void {
  assert.equal(
    body?.resourceType,
    "OperationOutcome",
    `expected OperationOutcome ${note}: ${JSON.stringify(body)}`,
  );
  assert.ok(Array.isArray(body.issue) && body.issue.length > 0, "OperationOutcome has issues");
}

export function sorted(ids: string[]): string[] {
  return [...ids].sort();
}

export function link(bundle: any, relation: string): string | undefined {
  return bundle.link?.find((l: any) => l.relation === relation)?.url;
}
