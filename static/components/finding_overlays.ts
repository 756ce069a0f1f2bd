/**
 * @module The findings as the viewer draws them on a slice: a finding the report's Segmentation
 * holds as its outline on that slice (its pixels' edges), else its bounding box (older reports, a
 * SEG that could not be loaded); each in its probability colour, the selected one thicker, with
 * its number and probability beside it.
 */
import type { Finding } from "../lib/findings.ts";
import { formatPercent, probabilityColor } from "../lib/format.ts";
import { insideLoops, type SegContours } from "../lib/seg.ts";
import type { Placement } from "../lib/view_transform.ts";

/** A finding as drawn: its box on the slices of this series (already mapped to slice order). */
export interface Overlay {
  finding: Finding;
  kMin: number;
  kMax: number;
  centreK: number;
  /** Its segment in the report's Segmentation, when that holds it on this series. */
  segment?: number;
}

/** What was drawn on a slice: the finding numbers, and how many contour loops and boxes. */
export interface Drawn {
  findings: number[];
  contours: number;
  boxes: number;
}

function label(
  ctx: CanvasRenderingContext2D,
  o: Overlay,
  colour: string,
  x: number,
  y: number,
  h: number,
) {
  const text = `${o.finding.number} · ${formatPercent(o.finding.probability)}`;
  ctx.font = "600 13px system-ui, sans-serif";
  const tw = ctx.measureText(text).width + 8;
  const ly = y - 22 < 0 ? y + h + 4 : y - 22;
  ctx.fillStyle = "rgba(0,0,0,0.75)";
  ctx.fillRect(x - 2, ly, tw, 18);
  ctx.fillStyle = colour;
  ctx.fillText(text, x + 2, ly + 13);
}

/** Draws the findings on slice `k` placed at `p`. */
export function drawOverlays(
  ctx: CanvasRenderingContext2D,
  p: Placement,
  k: number,
  overlays: Overlay[],
  contours: SegContours | undefined,
  selected: string | undefined,
): Drawn {
  const drawn: Drawn = { findings: [], contours: 0, boxes: 0 };
  const onSlice = contours && overlays.some((o) => o.segment !== undefined) ? contours.at(k) : [];
  for (const o of overlays) {
    const colour = probabilityColor(o.finding.probability);
    const isSel = o.finding.id === selected;
    ctx.lineWidth = isSel ? 3 : 2;
    ctx.strokeStyle = colour;
    if (o.segment !== undefined && contours) {
      const c = onSlice.find((s) => s.segment === o.segment);
      if (!c) continue;
      drawn.findings.push(o.finding.number);
      drawn.contours += c.loops.length;
      ctx.beginPath();
      for (const l of c.loops) {
        ctx.moveTo(p.x + l[0] * p.sx, p.y + l[1] * p.sy);
        for (let i = 2; i < l.length; i += 2) ctx.lineTo(p.x + l[i] * p.sx, p.y + l[i + 1] * p.sy);
        ctx.closePath();
      }
      ctx.stroke();
      const x = p.x + c.min[0] * p.sx, y = p.y + c.min[1] * p.sy;
      label(ctx, o, colour, x, y, (c.max[1] - c.min[1]) * p.sy);
      continue;
    }
    const box = o.finding.box;
    if (!box || k < o.kMin || k > o.kMax) continue;
    drawn.findings.push(o.finding.number);
    drawn.boxes++;
    const x = p.x + box.min[0] * p.sx, y = p.y + box.min[1] * p.sy;
    const w = (box.max[0] - box.min[0] + 1) * p.sx, h = (box.max[1] - box.min[1] + 1) * p.sy;
    ctx.setLineDash(k === o.centreK ? [] : [6, 4]);
    ctx.strokeRect(x - 2, y - 2, w + 4, h + 4);
    ctx.setLineDash([]);
    label(ctx, o, colour, x, y, h);
  }
  return drawn;
}

/**
 * The finding under image point (x, y) on slice `k`: one whose outline holds it, else one whose
 * outline's bounds or box (a pixel's margin around) does, so a small finding is easy to hit.
 */
export function overlayAt(
  overlays: Overlay[],
  contours: SegContours | undefined,
  k: number,
  x: number,
  y: number,
): Overlay | undefined {
  const outlined = (o: Overlay) =>
    o.segment !== undefined && contours
      ? contours.at(k).find((s) => s.segment === o.segment) ?? null
      : undefined;
  const near = (min: number[], max: number[]) =>
    x >= min[0] - 1 && x <= max[0] + 1 && y >= min[1] - 1 && y <= max[1] + 1;
  return overlays.find((o) => {
    const c = outlined(o);
    return !!c && insideLoops(c.loops, x, y);
  }) ?? overlays.find((o) => {
    const c = outlined(o);
    if (c !== undefined) return !!c && near(c.min, c.max);
    const box = o.finding.box;
    return !!box && k >= o.kMin && k <= o.kMax &&
      near(box.min, [box.max[0] + 1, box.max[1] + 1]);
  });
}
