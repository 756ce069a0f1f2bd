/**
 * @module The slice viewer: draws the slice (decoded here and windowed through a lookup table, or
 * a server-rendered PNG) with the AI findings over it, coloured by probability (outlined from the
 * report's Segmentation where it holds them, else boxed: `finding_overlays.ts`); wheel, arrow keys,
 * Page Up/Down, Home/End scroll; drag changes window/level (or pans, or zooms, by tool, Shift or
 * Ctrl); + and − zoom; 0 resets; 1–3 pick a window preset.
 */
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import type { SegContours } from "../lib/seg.ts";
import type { SliceInfo } from "../lib/series.ts";
import type { SliceImage, SliceLoader } from "../lib/slice_loader.ts";
import { IDENTITY, place, type View, zoomAbout } from "../lib/view_transform.ts";
import { applyTable, dragWindow, PRESETS, type Window, windowTable } from "../lib/window_level.ts";
import { drawOverlays, type Overlay, overlayAt } from "./finding_overlays.ts";

export type { Overlay };

export type Tool = "window" | "pan" | "zoom";

export interface ViewportProps {
  loader: SliceLoader;
  slices: SliceInfo[];
  index: number;
  onIndex(i: number): void;
  window: Window;
  onWindow(w: Window): void;
  tool: Tool;
  overlays: Overlay[];
  /** The report's Segmentation on these slices (findings with a `segment` are outlined from it). */
  contours?: SegContours;
  showOverlays: boolean;
  selected?: string;
  onSelect(id: string): void;
  view: View;
  onView(v: View): void;
}

export function Viewport(props: ViewportProps) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const off = useRef<HTMLCanvasElement | undefined>(undefined);
  const shown = useRef<{ index: number; image: SliceImage } | null>(null);
  const [size, setSize] = useState({ w: 512, h: 512 });
  const [error, setError] = useState<string>();
  const [, repaintTick] = useState(0);
  const latest = useRef(props);
  latest.current = props;

  useLayoutEffect(() => {
    const el = canvas.current!.parentElement!;
    const ro = new ResizeObserver(() => setSize({ w: el.clientWidth, h: el.clientHeight }));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  // Load the slice; keep showing the previous one until it arrives.
  useEffect(() => {
    let live = true;
    props.loader.setWindow(props.window);
    props.loader.get(props.index).then((image) => {
      if (!live) return;
      shown.current = { index: props.index, image };
      setError(undefined);
      repaintTick((t) => t + 1);
      props.loader.prefetch(props.index);
    }, (e) => live && setError((e as Error).message));
    return () => {
      live = false;
    };
  }, [
    props.loader,
    props.index,
    props.loader.decodesLocally ? 0 : `${props.window.center},${props.window.width}`,
  ]);

  // Paint: image, then overlays, then the corner text.
  useEffect(() => {
    const c = canvas.current!;
    const dpr = globalThis.devicePixelRatio || 1;
    c.width = Math.round(size.w * dpr);
    c.height = Math.round(size.h * dpr);
    const ctx = c.getContext("2d")!;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, size.w, size.h);
    const cur = shown.current;
    if (!cur) return;
    const info = props.slices[cur.index];
    const p = place(size.w, size.h, info.columns, info.rows, info.pixelSpacing, props.view);
    if (cur.image.kind === "raw") {
      const o = off.current ??= document.createElement("canvas");
      o.width = info.columns;
      o.height = info.rows;
      const octx = o.getContext("2d")!;
      const data = octx.createImageData(info.columns, info.rows);
      const table = windowTable(
        cur.image.min,
        cur.image.max,
        info.slope,
        info.intercept,
        props.window,
        info.photometric === "MONOCHROME1",
      );
      applyTable(cur.image.stored, table, cur.image.min, data.data);
      octx.putImageData(data, 0, 0);
      ctx.imageSmoothingEnabled = p.sx < 3;
      ctx.drawImage(o, p.x, p.y, info.columns * p.sx, info.rows * p.sy);
    } else {
      ctx.drawImage(cur.image.bitmap, p.x, p.y, info.columns * p.sx, info.rows * p.sy);
    }
    const drawn = props.showOverlays
      ? drawOverlays(ctx, p, cur.index, props.overlays, props.contours, props.selected)
      : { findings: [], contours: 0, boxes: 0 };
    // What this slice shows (for tests and tools): the findings, and as outlines or boxes.
    c.dataset.drawn = drawn.findings.join(",");
    c.dataset.overlay = [drawn.contours ? "seg" : "", drawn.boxes ? "box" : ""].join(" ").trim();
    c.dataset.contours = String(drawn.contours);
    c.dataset.shown = String(cur.index);
    ctx.font = "13px ui-monospace, monospace";
    ctx.fillStyle = "#e8eef5";
    ctx.fillText(`Slice ${cur.index + 1} / ${props.slices.length}`, 10, 20);
    ctx.fillText(
      `W ${Math.round(props.window.width)}  L ${Math.round(props.window.center)}`,
      10,
      size.h - 12,
    );
    ctx.textAlign = "right";
    ctx.fillText(`${Math.round(props.view.zoom * 100)} %`, size.w - 10, size.h - 12);
    ctx.textAlign = "left";
  });

  const step = (d: number) => {
    const n = props.slices.length;
    props.onIndex(Math.min(n - 1, Math.max(0, props.index + d)));
  };

  const onKey = (e: KeyboardEvent) => {
    const w = size.w, h = size.h;
    const keys: Record<string, () => void> = {
      ArrowUp: () => step(-1),
      ArrowLeft: () => step(-1),
      ArrowDown: () => step(1),
      ArrowRight: () => step(1),
      PageUp: () => step(-10),
      PageDown: () => step(10),
      Home: () => props.onIndex(0),
      End: () => props.onIndex(props.slices.length - 1),
      "+": () => props.onView(zoomAbout(props.view, 1.25, w / 2, h / 2, w, h)),
      "=": () => props.onView(zoomAbout(props.view, 1.25, w / 2, h / 2, w, h)),
      "-": () => props.onView(zoomAbout(props.view, 0.8, w / 2, h / 2, w, h)),
      "0": () => props.onView(IDENTITY),
    };
    for (const preset of Object.values(PRESETS)) {
      keys[preset.key] = () => props.onWindow({ center: preset.center, width: preset.width });
    }
    const action = keys[e.key];
    if (!action || e.ctrlKey || e.metaKey || e.altKey) return;
    e.preventDefault();
    action();
  };

  const onWheel = (e: WheelEvent) => {
    e.preventDefault();
    if (e.ctrlKey) {
      const r = canvas.current!.getBoundingClientRect();
      props.onView(
        zoomAbout(
          props.view,
          e.deltaY < 0 ? 1.15 : 1 / 1.15,
          e.clientX - r.left,
          e.clientY - r.top,
          size.w,
          size.h,
        ),
      );
    } else step(e.deltaY > 0 ? 1 : e.deltaY < 0 ? -1 : 0);
  };

  const onPointerDown = (e: PointerEvent) => {
    if (e.button !== 0 && e.button !== 1 && e.button !== 2) return;
    canvas.current!.focus();
    const tool: Tool = e.button === 2 || e.shiftKey
      ? "pan"
      : e.button === 1 || e.ctrlKey
      ? "zoom"
      : props.tool;
    const start = { x: e.clientX, y: e.clientY, window: props.window, view: props.view };
    const r = canvas.current!.getBoundingClientRect();
    const target = e.currentTarget as HTMLElement;
    target.setPointerCapture(e.pointerId);
    const move = (m: PointerEvent) => {
      const dx = m.clientX - start.x, dy = m.clientY - start.y;
      const cur = latest.current;
      if (tool === "window") cur.onWindow(dragWindow(start.window, dx, dy));
      else if (tool === "pan") {
        cur.onView({ ...start.view, panX: start.view.panX + dx, panY: start.view.panY + dy });
      } else {
        cur.onView(
          zoomAbout(
            start.view,
            Math.exp(-dy / 200),
            start.x - r.left,
            start.y - r.top,
            size.w,
            size.h,
          ),
        );
      }
    };
    const up = () => {
      target.removeEventListener("pointermove", move);
      target.removeEventListener("pointerup", up);
      target.removeEventListener("pointercancel", up);
    };
    target.addEventListener("pointermove", move);
    target.addEventListener("pointerup", up);
    target.addEventListener("pointercancel", up);
  };

  const onClick = (e: MouseEvent) => {
    // A click on a finding (its outline, or its box) selects it.
    const cur = shown.current;
    if (!cur || !props.showOverlays) return;
    const info = props.slices[cur.index];
    const r = canvas.current!.getBoundingClientRect();
    const p = place(size.w, size.h, info.columns, info.rows, info.pixelSpacing, props.view);
    const ix = (e.clientX - r.left - p.x) / p.sx, iy = (e.clientY - r.top - p.y) / p.sy;
    const hit = overlayAt(props.overlays, props.contours, cur.index, ix, iy);
    if (hit) props.onSelect(hit.finding.id);
  };

  return (
    <div class="viewport">
      <canvas
        ref={canvas}
        tabIndex={0}
        role="application"
        aria-roledescription="image viewer"
        aria-label={`Slice ${
          props.index + 1
        } of ${props.slices.length}. Arrow keys or the wheel scroll slices; drag changes window and level; plus and minus zoom; 1, 2 and 3 choose the lung, mediastinum and bone windows.`}
        data-testid="viewport"
        data-slice={props.index}
        style={{ width: `${size.w}px`, height: `${size.h}px` }}
        onKeyDown={onKey}
        onWheel={onWheel}
        onPointerDown={onPointerDown}
        onClick={onClick}
        onDblClick={() => props.onView(IDENTITY)}
        onContextMenu={(e) => e.preventDefault()}
      />
      {error && <p class="viewport-error" role="alert">Could not load this slice: {error}</p>}
    </div>
  );
}
