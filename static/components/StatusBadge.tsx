/** @module The AI status of a study as a small labelled badge. */
import type { AiStatus } from "../lib/study_rows.ts";

const TEXT = {
  none: "Not analysed",
  queued: "Queued",
  running: "Running",
  done: "Done",
  failed: "Failed",
};

export function StatusBadge({ ai }: { ai: AiStatus }) {
  const text = ai.state === "done" && ai.findings !== undefined
    ? `Done · ${ai.findings} finding${ai.findings === 1 ? "" : "s"}`
    : TEXT[ai.state];
  return (
    <span class={`badge ${ai.state}`} data-state={ai.state} title={ai.reason}>
      {ai.state === "running" && <span class="spinner" aria-hidden="true" />}
      {text}
    </span>
  );
}

export function DecisionBadge({ decision }: { decision?: "positive" | "negative" }) {
  if (!decision) return <span class="muted">—</span>;
  return (
    <span class={`badge ${decision}`}>{decision === "positive" ? "Positive" : "Negative"}</span>
  );
}
