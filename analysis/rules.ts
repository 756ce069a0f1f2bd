/**
 * @module Rules that start an analysis by themselves when a study becomes stable (config
 * ANALYSIS_RULES, e.g. `[{"modality":"CT","bodyPart":"CHEST","model":"lung-nodule-demo"}]`): a
 * rule matches when the study has a series of that modality and body part. Each matching rule asks
 * for its analysis once per study content (`requestAnalysis` finds a Task already running).
 */
import type { ImagingStudy } from "@medplum/fhirtypes";
import type { AnalysisRule } from "../platform/config.ts";
import { isTransientFailure } from "../db/unavailable.ts";
import type { FhirContext } from "../fhir/context.ts";
import { interact } from "../fhir/interaction.ts";
import { type AnalyzeDeps, requestAnalysis } from "./analyze.ts";

export function ruleMatches(rule: AnalysisRule, study: ImagingStudy): boolean {
  const up = (s: string | undefined) => s?.trim().toUpperCase();
  return (study.series ?? []).some((s) =>
    (!rule.modality || up(s.modality?.code) === up(rule.modality)) &&
    (!rule.bodyPart || up(s.bodySite?.display) === up(rule.bodyPart) ||
      up(s.bodySite?.code) === up(rule.bodyPart))
  );
}

/** Applies the rules to the study with this Study Instance UID; returns the Task ids started. */
export async function applyRules(
  ctx: FhirContext,
  deps: AnalyzeDeps,
  rules: AnalysisRule[],
  studyUid: string,
): Promise<string[]> {
  if (!rules.length) return [];
  const found = await interact(ctx, {
    method: "GET",
    path: ["ImagingStudy"],
    query: [["identifier", `urn:dicom:uid|urn:oid:${studyUid}`]],
  });
  const study = (found.body as { entry?: { resource: ImagingStudy }[] }).entry?.[0]?.resource;
  if (!study) return [];
  const started: string[] = [];
  let transient: unknown;
  for (const rule of rules.filter((r) => ruleMatches(r, study))) {
    try {
      const { task } = await requestAnalysis(ctx, deps, study.id!, {
        model: rule.model,
        profile: rule.profile,
        threshold: rule.threshold,
        priority: rule.priority,
      });
      started.push(task.id!);
      deps.log("info", "analysis started by rule", {
        studyUid,
        model: rule.model,
        taskId: task.id,
      });
    } catch (e) {
      const down = isTransientFailure(e);
      deps.log(down ? "warn" : "error", "analysis rule failed", {
        studyUid,
        model: rule.model,
        error: String(e),
        ...(down ? { retry: "after the stability lease" } : {}),
      });
      if (down) transient ??= e;
    }
  }
  // A dependency was down (the queue, the database): the caller tries the study again later (rules
  // that did start find their Task then, not a second one).
  if (transient) throw transient;
  return started;
}
