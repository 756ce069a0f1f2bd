/** @module A labelled progress bar (role progressbar, value in percent). */
export function ProgressBar(
  { value, max, label, state }: {
    value: number;
    max: number;
    label: string;
    state?: "ok" | "warn" | "error";
  },
) {
  const pct = max > 0 ? Math.min(100, Math.round((value / max) * 100)) : 0;
  return (
    <div
      class={`progress ${state ?? ""}`}
      role="progressbar"
      aria-label={label}
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={pct}
      aria-valuetext={`${pct} %`}
    >
      <div class="bar" style={{ width: `${pct}%` }} />
      <span class="pct">{pct} %</span>
    </div>
  );
}
