/** @module Formatting for people: dates, numbers, sizes, durations, and the probability colours. */

/** `2020-04-16` → `16 Apr 2020`; a dateTime keeps its time (`16 Apr 2020, 09:30`). */
export function formatDate(value: string | undefined): string {
  if (!value) return "—";
  const m = /^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?(?:T(\d{2}):(\d{2}))?/.exec(value);
  if (!m) return value;
  const months = [
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
  ];
  const parts = [m[3] ? String(Number(m[3])) : "", m[2] ? months[Number(m[2]) - 1] : "", m[1]];
  const date = parts.filter(Boolean).join(" ");
  return m[4] ? `${date}, ${m[4]}:${m[5]}` : date;
}

/** A number with at most `digits` decimals, or `—`. */
export function formatNumber(value: number | undefined, digits = 1): string {
  if (value === undefined || !Number.isFinite(value)) return "—";
  return value.toLocaleString("en-GB", { maximumFractionDigits: digits });
}

/** 1536 → `1.5 KB`. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return "—";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let v = bytes, u = 0;
  while (v >= 1024 && u < units.length - 1) v /= 1024, u++;
  return `${u === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

/** 0.87 → `87 %`. */
export function formatPercent(p: number | undefined): string {
  return p === undefined || !Number.isFinite(p) ? "—" : `${Math.round(p * 100)} %`;
}

/** Milliseconds as `12 ms`, `3.4 s`. */
export function formatMs(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return "—";
  return ms < 1000 ? `${formatNumber(ms, ms < 10 ? 1 : 0)} ms` : `${formatNumber(ms / 1000, 1)} s`;
}

/**
 * The colour of a finding by its probability: yellow (0.5 and below) through orange to red (1),
 * as CSS `rgb()`; always bright enough to see on a dark image.
 */
export function probabilityColor(p: number | undefined): string {
  const t = Math.min(1, Math.max(0, ((p ?? 0.5) - 0.5) / 0.5));
  const g = Math.round(220 - 170 * t);
  return `rgb(255, ${g}, ${Math.round(40 * (1 - t))})`;
}

/** A person's name from a FHIR HumanName list: `FAMILY, Given`. */
export function humanName(
  names: { family?: string; given?: string[]; text?: string }[] | undefined,
): string {
  const n = names?.[0];
  if (!n) return "(no name)";
  if (n.text && !n.family) return n.text;
  const given = (n.given ?? []).join(" ");
  return [n.family, given].filter(Boolean).join(", ") || n.text || "(no name)";
}
