/**
 * @module The README's picture of the worklist, taken again: after `deno task demo`, it signs in
 * through the web UI's own sign-in page (the code flow, as a person would) in Debian's headless
 * Chromium driven by playwright-core, waits for the worklist's AI statuses, and saves a PNG 1280
 * wide, down to the pager (at most 720 high; default `docs/img/worklist.png`). Credentials as the
 * demo's (`dicom/synth/sign_in.ts`).
 *
 *   deno run -A scripts/screenshot.ts [--url http://localhost:8080] [--out docs/img/worklist.png]
 *     [--username U --password P] [--password-file F]
 */
import { findCredentials, passwordFilePath } from "../dicom/synth/sign_in.ts";
import { browserMissing, launchBrowser } from "../tests/e2e/_browser.ts";

const flags: Record<string, string> = {};
for (let i = 0; i < Deno.args.length; i++) {
  const m = /^--([a-z-]+)(?:=(.*))?$/.exec(Deno.args[i]);
  if (!m) throw new Error(`unexpected argument ${Deno.args[i]}`);
  flags[m[1]] = m[2] ?? Deno.args[++i];
}
const base = (flags.url ?? "http://localhost:8080").replace(/\/+$/, "");
const out = flags.out ?? "docs/img/worklist.png";
const env = Deno.env.toObject();
const who = await findCredentials({
  username: flags.username,
  password: flags.password,
  passwordFile: flags["password-file"] ?? passwordFilePath(env),
  env,
});
const missing = browserMissing();
if (!who || missing) {
  console.error(`screenshot: ${missing ?? "no credentials (see deno task demo --help)"}`);
  Deno.exit(1);
}

const browser = await launchBrowser();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  await page.goto(`${base}/`);
  await page.getByLabel("Username").fill(who.username);
  await page.getByLabel("Password").fill(who.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Worklist" }).waitFor();
  await page.getByText(/Done · \d+ finding/).first().waitFor({ timeout: 30_000 });
  await page.waitForTimeout(800); // the thumbnails and the last badges
  // Down to the last thing on the page (the pager), not the empty rest of the window.
  const bottom = await page.evaluate(`Math.max(...[...document.querySelectorAll("body *")]
    .filter((e) => e.children.length === 0 && e.getBoundingClientRect().height > 0)
    .map((e) => e.getBoundingClientRect().bottom))`) as number;
  const height = Math.min(720, Math.ceil(bottom) + 24);
  await page.screenshot({
    path: out,
    animations: "disabled",
    clip: { x: 0, y: 0, width: 1280, height },
  });
  console.log(`saved ${out}`);
} finally {
  await browser.close();
}
