/**
 * @module The findings of a report as a table: number, size, volume, probability, location and
 * slice, with the reviews' verdicts; a row's button jumps to the finding's centre slice.
 */
import type { Finding } from "../lib/findings.ts";
import { formatNumber, formatPercent, probabilityColor } from "../lib/format.ts";
import type { Review } from "../lib/review.ts";

export function FindingsTable(
  { findings, reviews, selected, onJump, sliceOf }: {
    findings: Finding[];
    reviews: Map<string, Review[]>;
    selected?: string;
    onJump?(f: Finding): void;
    /** The 1-based slice a finding's centre is shown on. */
    sliceOf?(f: Finding): number | undefined;
  },
) {
  if (!findings.length) return <p class="muted">No findings.</p>;
  return (
    <div class="table-scroll">
      <table class="grid findings" data-testid="findings">
        <caption class="sr-only">AI findings</caption>
        <thead>
          <tr>
            <th scope="col">#</th>
            <th scope="col">Size</th>
            <th scope="col">Probability</th>
            <th scope="col">Location</th>
            <th scope="col">Slice</th>
            <th scope="col">Review</th>
          </tr>
        </thead>
        <tbody>
          {findings.map((f) => {
            const latest = reviews.get(f.id)?.[0];
            const slice = sliceOf?.(f);
            return (
              <tr
                key={f.id}
                data-finding={f.id}
                class={f.id === selected ? "selected" : undefined}
                aria-selected={f.id === selected}
              >
                <td>
                  {onJump
                    ? (
                      <button
                        type="button"
                        class="jump"
                        onClick={() => onJump(f)}
                        aria-label={`Show finding ${f.number} on slice ${slice ?? ""}`}
                      >
                        <span
                          class="swatch"
                          style={{ background: probabilityColor(f.probability) }}
                        />
                        {f.number}
                      </button>
                    )
                    : (
                      <>
                        <span
                          class="swatch"
                          style={{ background: probabilityColor(f.probability) }}
                        />
                        {f.number}
                      </>
                    )}
                </td>
                <td class="num">
                  {formatNumber(f.diameterMm)} mm
                  <div class="muted small">{formatNumber(f.volumeMm3, 0)} mm³</div>
                </td>
                <td class="num">{formatPercent(f.probability)}</td>
                <td>{f.location ?? f.bodySite ?? "—"}</td>
                <td class="num">{slice ?? "—"}</td>
                <td>
                  {latest?.verdict
                    ? (
                      <span class={`badge ${latest.verdict}`} title={`${latest.reviewer}`}>
                        {latest.verdict === "agree" ? "Agreed" : "Disagreed"}
                      </span>
                    )
                    : <span class="muted">Not reviewed</span>}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
