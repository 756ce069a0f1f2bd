/**
 * @module Row labels of the SVG bar charts: the label column is as wide as the longest label
 * needs (in the chart's 11-unit monospace), up to a limit; a label past it keeps its start and its
 * end (`GET /fhir/…/{id}/$analyze`), the full text staying in the row's tooltip.
 */

/** The advance of one character of an 11-unit monospace font, with a little room (≈ 0.6 em). */
export const LABEL_CHAR_WIDTH = 6.8;
/** Room between the label and its bar. */
const LABEL_GAP = 10;

/** The width of the label column for `labels`, at most `maxChars` characters wide. */
export function labelColumnWidth(labels: readonly string[], maxChars: number): number {
  const longest = Math.max(4, ...labels.map((l) => l.length));
  return Math.ceil(Math.min(longest, maxChars) * LABEL_CHAR_WIDTH) + LABEL_GAP;
}

/** `label` in at most `maxChars` characters: its start and end around one ellipsis. */
export function fitLabel(label: string, maxChars: number): string {
  if (label.length <= maxChars) return label;
  const keep = maxChars - 1;
  const head = Math.ceil(keep * 0.4);
  return `${label.slice(0, head)}…${label.slice(label.length - (keep - head))}`;
}
