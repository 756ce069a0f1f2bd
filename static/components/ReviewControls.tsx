/**
 * @module A clinician's review of one finding: agree or disagree, a comment, saved as a FHIR
 * Observation about the finding (conditional update: one per finding and reviewer); earlier
 * reviews of the finding, by anyone, listed below.
 */
import { useEffect, useState } from "preact/hooks";
import { fhirSend } from "../lib/api.ts";
import type { Finding } from "../lib/findings.ts";
import type { Resource } from "../lib/fhir_types.ts";
import { formatDate } from "../lib/format.ts";
import { type Review, reviewObservation, reviewUpdateUrl, type Verdict } from "../lib/review.ts";
import { canWrite, me } from "../lib/session.ts";
import { ErrorNote } from "./ErrorNote.tsx";

export function ReviewControls(
  { finding, observation, reviews, onSaved }: {
    finding: Finding;
    observation?: Resource;
    reviews: Review[];
    onSaved(): void;
  },
) {
  const who = me.value;
  const mine = reviews.find((r) => r.reviewerId === who?.sub);
  const [verdict, setVerdict] = useState<Verdict | undefined>(mine?.verdict);
  const [comment, setComment] = useState(mine?.comment ?? "");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const [saved, setSaved] = useState(false);
  useEffect(() => {
    setVerdict(mine?.verdict);
    setComment(mine?.comment ?? "");
    setSaved(false);
  }, [finding.id, mine?.version]);

  const save = async (v: Verdict | undefined) => {
    if (!who || !observation) return;
    setBusy(true);
    setError(undefined);
    try {
      const reviewer = { sub: who.sub, name: who.displayName || who.name || who.sub };
      const body = reviewObservation(observation, v, comment, reviewer, new Date().toISOString());
      await fhirSend("PUT", reviewUpdateUrl(finding.id, reviewer), body);
      setSaved(true);
      onSaved();
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };

  const others = reviews.filter((r) => r !== mine);
  return (
    <div class="review" data-testid="review">
      <h3>Your review of finding {finding.number}</h3>
      {canWrite.value
        ? (
          <>
            <div class="verdict" role="group" aria-label="Verdict">
              {(["agree", "disagree"] as const).map((v) => (
                <button
                  key={v}
                  type="button"
                  class={`toggle ${v} ${verdict === v ? "on" : ""}`}
                  aria-pressed={verdict === v}
                  disabled={busy}
                  onClick={() => {
                    setVerdict(v);
                    save(v);
                  }}
                >
                  {v === "agree" ? "✓ Agree" : "✗ Disagree"}
                </button>
              ))}
            </div>
            <label>
              Comment
              <textarea
                rows={2}
                value={comment}
                onInput={(e) => setComment(e.currentTarget.value)}
                placeholder="Optional"
              />
            </label>
            <button type="button" disabled={busy} onClick={() => save(verdict)}>
              Save comment
            </button>
            {saved && <span class="ok-note" role="status">Saved</span>}
            <ErrorNote error={error} />
          </>
        )
        : <p class="muted">Viewers read reviews; clinicians write them.</p>}
      {mine && (
        <p class="muted small">
          Saved {formatDate(mine.time)} (version {mine.version}).
        </p>
      )}
      {others.length > 0 && (
        <ul class="other-reviews" aria-label="Other reviews">
          {others.map((r) => (
            <li key={r.id}>
              <strong>{r.reviewer}</strong>: {r.verdict ?? "comment"}
              {r.comment ? ` — “${r.comment}”` : ""}{" "}
              <span class="muted small">{formatDate(r.time)}</span>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
