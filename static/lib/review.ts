/**
 * @module A clinician's review of one AI finding, stored as its own FHIR Observation: `focus` and
 * `derivedFrom` the finding, `performer` the reviewer (by account identifier), the verdict as
 * `valueCodeableConcept` (agree / disagree) and the comment as `note`. One per finding and reviewer
 * (identifier `urn:imaging-ai:review|<finding id>/<user>`, written by conditional update), so a
 * change of mind is a new version with history, and the model's own Observation is never altered.
 */
import type { Resource } from "./fhir_types.ts";

export const REVIEW_SYSTEM = "urn:imaging-ai:review";
export const VERDICT_SYSTEM = "urn:imaging-ai:review-verdict";
export const USER_SYSTEM = "urn:imaging-ai:user";

export type Verdict = "agree" | "disagree";

export interface Review {
  id?: string;
  findingId: string;
  verdict?: Verdict;
  comment?: string;
  reviewer: string;
  reviewerId?: string;
  time?: string;
  version?: string;
}

export interface Reviewer {
  sub: string;
  name: string;
}

/** The identifier value of `reviewer`'s review of finding `findingId`. */
export function reviewKey(findingId: string, reviewer: Reviewer): string {
  return `${findingId}/${reviewer.sub}`;
}

/** The review Observation for `finding` (a finding Observation with subject and focus). */
export function reviewObservation(
  finding: Resource,
  verdict: Verdict | undefined,
  comment: string,
  reviewer: Reviewer,
  now: string,
): Resource {
  const text = comment.trim();
  const obs: Resource = {
    resourceType: "Observation",
    identifier: [{ system: REVIEW_SYSTEM, value: reviewKey(finding.id!, reviewer) }],
    status: "final",
    category: [{
      coding: [{
        system: "http://terminology.hl7.org/CodeSystem/observation-category",
        code: "imaging",
        display: "Imaging",
      }],
    }],
    code: {
      coding: [{
        system: REVIEW_SYSTEM,
        code: "finding-review",
        display: "Clinician review of an AI finding",
      }],
      text: "Clinician review of an AI finding",
    },
    subject: finding.subject,
    focus: [{ reference: `Observation/${finding.id}` }],
    derivedFrom: [{ reference: `Observation/${finding.id}` }],
    effectiveDateTime: now,
    issued: now,
    performer: [{
      identifier: { system: USER_SYSTEM, value: reviewer.sub },
      display: reviewer.name,
    }],
  };
  if (verdict) {
    obs.valueCodeableConcept = {
      coding: [{
        system: VERDICT_SYSTEM,
        code: verdict,
        display: verdict === "agree"
          ? "Agrees with the AI finding"
          : "Disagrees with the AI finding",
      }],
      text: verdict === "agree" ? "Agree" : "Disagree",
    };
  } else {
    obs.dataAbsentReason = {
      coding: [{
        system: "http://terminology.hl7.org/CodeSystem/data-absent-reason",
        code: "not-performed",
        display: "Not Performed",
      }],
      text: "Comment only",
    };
  }
  if (text) obs.note = [{ text, time: now, authorString: reviewer.name }];
  return obs;
}

/** A review Observation as the UI shows it. */
export function reviewOf(obs: Resource): Review | undefined {
  const focus = (obs.focus ?? []).map((f: { reference?: string }) => f.reference)
    .find((r: string | undefined) => r?.startsWith("Observation/"));
  if (!focus) return undefined;
  const code = obs.valueCodeableConcept?.coding?.find((c: { system?: string }) =>
    c.system === VERDICT_SYSTEM
  )?.code;
  return {
    id: obs.id,
    findingId: focus.slice("Observation/".length),
    verdict: code === "agree" || code === "disagree" ? code : undefined,
    comment: obs.note?.[0]?.text,
    reviewer: obs.performer?.[0]?.display ?? obs.performer?.[0]?.identifier?.value ?? "unknown",
    reviewerId: obs.performer?.[0]?.identifier?.value,
    time: obs.issued ?? obs.meta?.lastUpdated,
    version: obs.meta?.versionId,
  };
}

/** Reviews grouped by finding id, newest first. */
export function reviewsByFinding(observations: Resource[]): Map<string, Review[]> {
  const out = new Map<string, Review[]>();
  for (const o of observations) {
    const r = reviewOf(o);
    if (!r) continue;
    out.set(r.findingId, [...(out.get(r.findingId) ?? []), r]);
  }
  for (const list of out.values()) list.sort((a, b) => (b.time ?? "").localeCompare(a.time ?? ""));
  return out;
}

/** The search for the reviews of these findings. */
export function reviewQuery(findingIds: string[]): string {
  const focus = findingIds.map((id) => `Observation/${id}`).join(",");
  return `Observation?code=${encodeURIComponent(`${REVIEW_SYSTEM}|finding-review`)}&focus=${
    encodeURIComponent(focus)
  }&_count=200`;
}

/** The conditional update URL that writes `reviewer`'s review of a finding. */
export function reviewUpdateUrl(findingId: string, reviewer: Reviewer): string {
  return `Observation?identifier=${
    encodeURIComponent(`${REVIEW_SYSTEM}|${reviewKey(findingId, reviewer)}`)
  }`;
}
