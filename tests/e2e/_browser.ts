/**
 * @module Debian's Chromium driven by playwright-core: where it is, whether it is installed (the
 * browser tests are ignored with a reason when it is not), and a launch with the flags that keep
 * a headless run quiet and offline.
 */
import { existsSync } from "node:fs";
import { type Browser, chromium } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";

/** Why the browser tests cannot run here, or undefined when they can. */
export function browserMissing(): string | undefined {
  return existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is missing (apt-get install -y chromium)`;
}

export interface LaunchOptions {
  /**
   * WebGL in software (SwiftShader through ANGLE), for viewers that render with it (OHIF's
   * cornerstone3D); without it the GPU is off.
   */
  webgl?: boolean;
}

/** The WebGL flags: ANGLE on SwiftShader, allowed though unsafe (a test page, no GPU here). */
const WEBGL = ["--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"];

export async function launchBrowser(options: LaunchOptions = {}): Promise<Browser> {
  return await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      ...(options.webgl ? WEBGL : ["--disable-gpu"]),
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
}

/** Where screenshots go (ignored by git, fmt and lint). */
export const SHOTS = new URL("../../test-output/e2e/", import.meta.url).pathname;
