/**
 * @module The clinician's web UI at `/`: the single-page shell (`no-cache`), the Preact bundle and
 * stylesheet under `/assets/` with content-hashed names (`immutable`), and the shell again for the
 * UI's own client routes. The bundle is made in memory by `Deno.bundle` (esbuild) on the first
 * request and kept for the life of the process; nothing built is written to disk.
 */
import { type Context, Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import type { AppEnv } from "./env.ts";

const STATIC = new URL("../static/", import.meta.url);
const ENTRY = new URL("main.tsx", STATIC);
const STYLES = ["styles/base.css", "styles/layout.css", "styles/viewer.css"];

const ID = "[A-Za-z0-9\\-.]{1,64}";
const ASSET = "[A-Za-z0-9._-]{1,80}";

/** The UI's client-side pages as Hono routes (each answered with the shell). */
export const UI_PAGES = [
  "/",
  "/:page{login|oauth-callback|upload|worklist|console|patients}",
  `/patients/:id{${ID}}`,
  `/studies/:id{${ID}}`,
  `/studies/:id{${ID}}/report`,
];

const PAGE_PATH = new RegExp(
  `^/(?:login|oauth-callback|upload|worklist|console|patients|patients/${ID}|studies/${ID}(?:/report)?)?$`,
);
const ASSET_PATH = new RegExp(`^/assets/${ASSET}$`);

/** Whether a GET of `path` is the UI's: the shell, a client page or an asset (all public). */
export function isUiPath(path: string): boolean {
  return PAGE_PATH.test(path) || ASSET_PATH.test(path);
}

interface Asset {
  body: Uint8Array;
  type: string;
}

interface UiBundle {
  shell: string;
  assets: Map<string, Asset>;
}

/** A Content-Security-Policy for the shell: everything from this origin, nothing inline. */
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' blob: data:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
  "form-action 'self'",
].join("; ");

/** The UI's routes: mount last, after every API route, at `/`. */
export function uiRoutes(): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  let built: Promise<UiBundle> | undefined;
  const bundle = () =>
    built ??= buildUi().catch((e) => {
      built = undefined; // a later request tries again (the sources may have been fixed)
      throw e;
    });
  const ready = async (c: Context<AppEnv>) => {
    try {
      return await bundle();
    } catch (e) {
      console.error(JSON.stringify({ level: "error", msg: "UI build failed", error: String(e) }));
      throw new HTTPException(503, {
        res: c.text(`The web UI could not be built: ${(e as Error).message}`, 503, {
          "Cache-Control": "no-store",
        }),
      });
    }
  };
  // Explicit routes only: no catch-all, so no API path (and no route added later) is shadowed.
  for (const page of UI_PAGES) {
    app.get(page, async (c) =>
      c.html((await ready(c)).shell, 200, {
        "Cache-Control": "no-cache",
        "Content-Security-Policy": CSP,
      }));
  }
  app.get(`/assets/:name{${ASSET}}`, async (c) => {
    const asset = (await ready(c)).assets.get(c.req.param("name"));
    if (!asset) return c.notFound();
    return c.body(asset.body as Uint8Array<ArrayBuffer>, 200, {
      "Content-Type": asset.type,
      "Cache-Control": "public, max-age=31536000, immutable",
    });
  });
  return app;
}

/** Bundles `static/main.tsx` (minified ES module) and the stylesheets; names carry their hash. */
export async function buildUi(): Promise<UiBundle> {
  const bundler = (Deno as unknown as { bundle?: typeof Deno.bundle }).bundle;
  if (typeof bundler !== "function") {
    throw new Error(
      'Deno.bundle is unavailable: run with the project\'s deno.json ("unstable": ["bundle"])',
    );
  }
  const result = await bundler({
    entrypoints: [ENTRY.pathname],
    platform: "browser",
    format: "esm",
    minify: true,
    write: false,
  });
  const js = result.outputFiles?.find((f) => f.path.endsWith(".js") || f.path === "<stdout>");
  if (!result.success || !js?.contents) {
    const why = result.errors.map((e) => e.text).join("; ") || "no output";
    throw new Error(`deno bundle: ${why}`);
  }
  const css = (await Promise.all(STYLES.map((f) => Deno.readTextFile(new URL(f, STATIC)))))
    .join("\n");
  const assets = new Map<string, Asset>();
  const add = async (stem: string, ext: string, body: Uint8Array, type: string) => {
    const name = `${stem}.${await shortHash(body)}.${ext}`;
    assets.set(name, { body, type });
    return `/assets/${name}`;
  };
  const jsUrl = await add("app", "js", js.contents, "text/javascript; charset=utf-8");
  const cssUrl = await add(
    "app",
    "css",
    new TextEncoder().encode(css),
    "text/css; charset=utf-8",
  );
  const iconUrl = await add(
    "icon",
    "svg",
    await Deno.readFile(new URL("icon.svg", STATIC)),
    "image/svg+xml",
  );
  const shell = (await Deno.readTextFile(new URL("index.html", STATIC)))
    .replaceAll("%APP_JS%", jsUrl)
    .replaceAll("%APP_CSS%", cssUrl)
    .replaceAll("%ICON%", iconUrl);
  return { shell, assets };
}

async function shortHash(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>),
  );
  return Array.from(digest.slice(0, 6), (b) => b.toString(16).padStart(2, "0")).join("");
}
