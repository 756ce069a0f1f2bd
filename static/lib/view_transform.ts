/**
 * @module Where an image lies on the viewer's canvas: fitted to it, then zoomed about the centre
 * and panned; image ↔ screen coordinates for drawing overlays and for the pointer.
 */

export interface View {
  zoom: number;
  panX: number;
  panY: number;
}

export const IDENTITY: View = { zoom: 1, panX: 0, panY: 0 };

export interface Placement {
  /** Screen position of image pixel (0, 0)'s corner. */
  x: number;
  y: number;
  /** Screen pixels per image column and per image row. */
  sx: number;
  sy: number;
}

/**
 * The placement of a `cols` × `rows` image with pixel spacing `[row, column]` mm on a `w` × `h`
 * canvas: fitted whole, centred, then zoomed and panned.
 */
export function place(
  w: number,
  h: number,
  cols: number,
  rows: number,
  spacing: [number, number] | undefined,
  view: View,
): Placement {
  const aspect = spacing && spacing[0] > 0 && spacing[1] > 0 ? spacing[0] / spacing[1] : 1;
  const fit = Math.min(w / cols, h / (rows * aspect));
  const sx = fit * view.zoom, sy = fit * aspect * view.zoom;
  return {
    x: (w - cols * sx) / 2 + view.panX,
    y: (h - rows * sy) / 2 + view.panY,
    sx,
    sy,
  };
}

/** The image pixel (fractional column, row) under a screen point. */
export function toImage(p: Placement, sx: number, sy: number): [number, number] {
  return [(sx - p.x) / p.sx, (sy - p.y) / p.sy];
}

/** Zooms by `factor` keeping the screen point (cx, cy) still (canvas centre is w/2, h/2). */
export function zoomAbout(
  view: View,
  factor: number,
  cx: number,
  cy: number,
  w: number,
  h: number,
): View {
  const zoom = Math.min(20, Math.max(0.25, view.zoom * factor));
  const f = zoom / view.zoom;
  // The image point under (cx, cy) stays there: pan' = (c - centre)(1 - f) + pan·f
  return {
    zoom,
    panX: (cx - w / 2) * (1 - f) + view.panX * f,
    panY: (cy - h / 2) * (1 - f) + view.panY * f,
  };
}
