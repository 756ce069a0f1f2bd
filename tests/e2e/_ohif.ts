/**
 * @module The OHIF Viewer (npm `@ohif/app`, its built `dist/`) for the browser test that shows our
 * DICOMweb and AI results in a real viewer: where `scripts/ohif/install.sh` puts it (outside the
 * repository), whether it is there (the test is ignored with a reason when not), its
 * `app-config.js` for one DICOMweb server, a tiny static server for it (SPA fallback to
 * index.html, the config generated), and what the test reads off the page: the requests to our
 * service that failed, the coloured pixels of the viewport (the CT is grey, so colour is an
 * overlay), and OHIF's own services (`window.services`).
 */
import { existsSync } from "node:fs";
import { extname, join, normalize } from "node:path";
import type { Page } from "playwright-core";

export const OHIF_VERSION = "3.13.2";

/** Where the app is: OHIF_DIR, else the install script's default cache folder. */
export function ohifDir(): string {
  const env = Deno.env.get("OHIF_DIR");
  if (env) return env;
  const cache = Deno.env.get("XDG_CACHE_HOME") ?? `${Deno.env.get("HOME") ?? "/tmp"}/.cache`;
  return `${cache}/imaging-ai/ohif-${OHIF_VERSION}`;
}

/** Why the OHIF test cannot run here, or undefined when it can. */
export function ohifMissing(dir = ohifDir()): string | undefined {
  return existsSync(join(dir, "index.html"))
    ? undefined
    : `OHIF ${OHIF_VERSION} is not in ${dir} (scripts/ohif/install.sh)`;
}

export interface OhifConfigOptions {
  /** The DICOMweb root, e.g. `http://127.0.0.1:8080/dicomweb`. */
  dicomweb: string;
}

/**
 * OHIF's `window.config` for this service's DICOMweb (the shape of 3.13's dist/app-config.js):
 * one `dicomweb` data source, WADO-RS for images and thumbnails (no /thumbnail resource here),
 * QIDO with wildcards and includefield, no fuzzy matching. Bearer tokens come through OHIF's
 * `?token=` viewer parameter (the data source asks the user authentication service for them).
 */
export function ohifAppConfig(options: OhifConfigOptions): string {
  const root = options.dicomweb.replace(/\/+$/, "");
  const config = {
    name: "imaging-ai",
    routerBasename: null,
    extensions: [],
    modes: [],
    customizationService: {},
    showStudyList: true,
    maxNumberOfWebWorkers: 2,
    showWarningMessageForCrossOrigin: false,
    showCPUFallbackMessage: true,
    showLoadingIndicator: true,
    strictZSpacingForVolumeViewport: true,
    groupEnabledModesFirst: true,
    investigationalUseDialog: { option: "never" },
    maxNumRequests: { interaction: 100, thumbnail: 5, prefetch: 25 },
    showErrorDetails: "always",
    defaultDataSourceName: "imaging",
    dataSources: [{
      namespace: "@ohif/extension-default.dataSourcesModule.dicomweb",
      sourceName: "imaging",
      configuration: {
        friendlyName: "Imaging AI DICOMweb",
        name: "imaging",
        wadoUriRoot: root,
        qidoRoot: root,
        wadoRoot: root,
        qidoSupportsIncludeField: true,
        imageRendering: "wadors",
        thumbnailRendering: "wadors",
        enableStudyLazyLoad: true,
        supportsFuzzyMatching: false,
        supportsWildcard: true,
        staticWado: false,
        singlepart: "bulkdata,video",
        bulkDataURI: { enabled: true, relativeResolution: "studies" },
        omitQuotationForMultipartRequest: true,
      },
    }],
  };
  return `window.config = ${JSON.stringify(config, null, 2)};\n`;
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".wasm": "application/wasm",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".woff": "font/woff",
  ".ttf": "font/ttf",
  ".xml": "application/xml",
  ".map": "application/json",
};

/** The content type of a file of OHIF's dist/ by its extension. */
export function contentTypeOf(path: string): string {
  return TYPES[extname(path).toLowerCase()] ?? "application/octet-stream";
}

/**
 * A file of `dir` for a URL path: the file when it exists, index.html for a route of the app
 * (a path without an extension), undefined otherwise (a 404: a missing bundle must fail loudly).
 */
export async function resolveOhifFile(dir: string, path: string): Promise<string | undefined> {
  const rel = normalize(decodeURIComponent(path)).replace(/^(\.\.(\/|$))+/, "").replace(/^\/+/, "");
  const file = join(dir, rel);
  if (!file.startsWith(dir)) return undefined;
  try {
    if ((await Deno.stat(file)).isFile) return file;
  } catch { /* not a file: a route of the app, or missing */ }
  return extname(rel) ? undefined : join(dir, "index.html");
}

export interface OhifServer {
  origin: string;
  /** Paths the server answered 404 to (a bundle the app could not load). */
  missing: string[];
  close(): Promise<void>;
}

/** Serves OHIF's dist/ on a free port of 127.0.0.1, with `config()` as /app-config.js. */
export function serveOhif(dir: string, config: () => string): OhifServer {
  const missing: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/app-config.js") {
      return new Response(config(), { headers: { "Content-Type": TYPES[".js"] } });
    }
    const file = await resolveOhifFile(dir, path);
    if (!file) {
      missing.push(path);
      return new Response("not found", { status: 404 });
    }
    return new Response((await Deno.open(file)).readable, {
      headers: { "Content-Type": contentTypeOf(file), "Cache-Control": "no-cache" },
    });
  });
  return {
    origin: `http://127.0.0.1:${server.addr.port}`,
    missing,
    close: () => server.shutdown(),
  };
}

/** What the page asked of the service: every path served, and every request that failed. */
export interface Traffic {
  /** `METHOD path?query` of every response from the service. */
  served: string[];
  /** `status METHOD path` (4xx/5xx) or `METHOD path: net error` of requests to the service. */
  failed: string[];
  /** console.error messages and uncaught page errors. */
  errors: string[];
}

export function watchTraffic(page: Page, origin: string): Traffic {
  const traffic: Traffic = { served: [], failed: [], errors: [] };
  const path = (url: string) => url.slice(origin.length);
  page.on("response", (r) => {
    if (!r.url().startsWith(origin)) return;
    const line = `${r.request().method()} ${path(r.url())}`;
    traffic.served.push(line);
    if (r.status() >= 400) traffic.failed.push(`${r.status()} ${line}`);
  });
  page.on("requestfailed", (r) => {
    if (!r.url().startsWith(origin)) return;
    traffic.failed.push(`${r.method()} ${path(r.url())}: ${r.failure()?.errorText}`);
  });
  page.on("console", (m) => {
    if (m.type() === "error") traffic.errors.push(m.text());
  });
  page.on("pageerror", (e) => traffic.errors.push(String(e)));
  return traffic;
}

/**
 * Pixels of the active viewport's canvas with colour (channels more than 60 apart). The CT is
 * drawn in grey, so these are an overlay's: a segmentation, never the image.
 */
export function colouredPixels(page: Page): Promise<number> {
  return page.evaluate(`(() => {
    const c = document.querySelector("[data-cy=viewport-pane][data-is-active=true] canvas.cornerstone-canvas");
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) {
      if (Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]) > 60) n++;
    }
    return n;
  })()`) as Promise<number>;
}

/** Waits until every cornerstone viewport has rendered (OHIF's own test helper does the same). */
export async function viewportsRendered(page: Page, timeout = 30_000): Promise<void> {
  await page.waitForFunction(
    `(() => {
      const viewports = (window.cornerstone?.getRenderingEngines?.() ?? [])
        .flatMap((e) => e.getViewports());
      return viewports.length > 0 && viewports.every((v) => v.viewportStatus === "rendered");
    })()`,
    undefined,
    { timeout },
  );
}

/** The index of the image shown in the active cornerstone viewport. */
export function shownImageIndex(page: Page): Promise<number> {
  return page.evaluate(
    `window.cornerstone.getRenderingEngines()[0].getViewports()[0].getCurrentImageIdIndex()`,
  ) as Promise<number>;
}

/** The display sets OHIF made of the study: modality, SOP class, description, and for an SR. */
export interface ShownDisplaySet {
  modality: string;
  sopClassUid: string;
  description: string;
  isImagingMeasurementReport?: boolean;
}

export async function displaySets(page: Page): Promise<ShownDisplaySet[]> {
  return JSON.parse(
    await page.evaluate(`JSON.stringify(window.services.displaySetService.getActiveDisplaySets()
      .map((d) => ({ modality: d.Modality, sopClassUid: d.SOPClassUID,
        description: d.SeriesDescription, isImagingMeasurementReport: d.isImagingMeasurementReport })))`) as string,
  );
}

/** The segmentations OHIF loaded: label and segment labels in segment number order. */
export async function segmentations(page: Page): Promise<{ label: string; segments: string[] }[]> {
  return JSON.parse(
    await page.evaluate(`JSON.stringify(window.services.segmentationService.getSegmentations()
      .map((s) => ({ label: s.label, segments: Object.values(s.segments)
        .sort((a, b) => a.segmentIndex - b.segmentIndex).map((g) => g.label) })))`) as string,
  );
}

/** Whether a DICOM JSON SR content tree holds spatial coordinates (SCOORD or SCOORD3D). */
export function hasSpatialCoordinates(node: unknown): boolean {
  if (Array.isArray(node)) return node.some(hasSpatialCoordinates);
  if (!node || typeof node !== "object") return false;
  const item = node as Record<string, { Value?: unknown[] }>;
  const type = item["0040A040"]?.Value?.[0];
  if (type === "SCOORD" || type === "SCOORD3D") return true;
  return hasSpatialCoordinates(item["0040A730"]?.Value);
}
