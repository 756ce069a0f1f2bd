/**
 * @module A horizontal bar chart in plain SVG: one row per label, one or more series of bars
 * (e.g. p50, p95, p99), with the values written beside them and a text table for screen readers.
 */

import { fitLabel, labelColumnWidth } from "../lib/chart_labels.ts";

/** Longer labels are shortened in the middle (route classes are up to ~45 characters). */
const MAX_LABEL_CHARS = 48;

export interface BarSeries {
  name: string;
  colour: string;
}

export function BarChart(
  { title, rows, series, unit, format }: {
    title: string;
    rows: { label: string; values: number[] }[];
    series: BarSeries[];
    unit?: string;
    format?(v: number): string;
  },
) {
  const fmt = format ?? ((v: number) => String(Math.round(v)));
  const max = Math.max(1, ...rows.flatMap((r) => r.values));
  // The label column fits the longest label (up to MAX_LABEL_CHARS; longer ones keep both ends).
  const labelW = labelColumnWidth(rows.map((r) => r.label), MAX_LABEL_CHARS);
  const barW = 360, barH = 12, gap = 3, pad = 8;
  const rowH = series.length * (barH + gap) + pad;
  const height = rows.length * rowH + 24;
  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      <div class="legend" aria-hidden="true">
        {series.map((s) => (
          <span key={s.name}>
            <span class="swatch" style={{ background: s.colour }} />
            {s.name}
          </span>
        ))}
      </div>
      <svg
        viewBox={`0 0 ${labelW + barW + 90} ${height}`}
        role="img"
        aria-label={title}
        width="100%"
      >
        {rows.map((r, i) => {
          const y0 = i * rowH + 4;
          return (
            <g key={r.label}>
              <text x={labelW - 8} y={y0 + rowH / 2} text-anchor="end" class="chart-label">
                <title>{r.label}</title>
                {fitLabel(r.label, MAX_LABEL_CHARS)}
              </text>
              {r.values.map((v, s) => {
                const y = y0 + s * (barH + gap);
                const w = Math.max(1, (v / max) * barW);
                return (
                  <g key={s}>
                    <rect x={labelW} y={y} width={w} height={barH} fill={series[s].colour} rx={2} />
                    <text x={labelW + w + 6} y={y + barH - 2} class="chart-value">
                      {fmt(v)}
                      {unit ? ` ${unit}` : ""}
                    </text>
                  </g>
                );
              })}
            </g>
          );
        })}
      </svg>
      <div class="sr-only">
        <table>
          <caption>{title}</caption>
          <thead>
            <tr>
              <th>Route</th>
              {series.map((s) => <th key={s.name}>{s.name}</th>)}
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.label}>
                <th>{r.label}</th>
                {r.values.map((v, i) => <td key={i}>{fmt(v)}</td>)}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </figure>
  );
}
