/**
 * @module The clinician's path through the web UI in real headless Chromium (Debian's, driven by
 * playwright-core) against the real app with AUTH on: sign in, upload a synthetic CT (progress to
 * 100 %), start the analysis and watch its status turn to done without a reload, see the findings
 * drawn on the slice (outlined from the report's DICOM SEG, as the SEG holds them; boxed when the SEG
 * cannot be loaded) and in the table, jump to one, agree with it, open the report, export XLSX;
 * another reader sees the review; then the worklist, patient, upload and administration pages.
 * Screenshots of every page go to test-output/e2e/. Ignored, with the reason, without Chromium.
 */
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import type { Json } from "../../static/lib/fhir_types.ts";
import { parseSegmentation, SegContours, segmentationPath } from "../../static/lib/seg.ts";
import { sliceInfo, sortSlices } from "../../static/lib/series.ts";
import { IDENTITY, place } from "../../static/lib/view_transform.ts";
import { smallStudy } from "../sidecar/_study.ts";
import { browserMissing, launchBrowser, SHOTS } from "./_browser.ts";
import { ADMIN, CLINICIAN, startUiStack } from "./_stack.ts";

const missing = browserMissing();

/** Saves a screenshot of the whole page; the page must not scroll sideways. */
async function shot(page: Page, name: string) {
  const widths = await page.evaluate("[document.documentElement.scrollWidth, innerWidth]");
  const [scroll, inner] = widths as [number, number];
  if (scroll > inner) {
    const wide = await page.evaluate(
      `[...document.querySelectorAll("*")].filter((e) => e.getBoundingClientRect().right > innerWidth + 1).slice(0, 8).map((e) => e.tagName + "." + e.className)`,
    );
    throw new Error(`${name}: the page is ${scroll} px wide in a ${inner} px window: ${wide}`);
  }
  // Transitions finished (a progress bar mid-animation would show less than its value).
  await page.screenshot({ path: `${SHOTS}${name}.png`, fullPage: true, animations: "disabled" });
}

async function signIn(page: Page, origin: string, who: { username: string; password: string }) {
  await page.goto(`${origin}/`);
  await page.getByLabel("Username").fill(who.username);
  await page.getByLabel("Password").fill(who.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Worklist" }).waitFor();
}

/** Pixels of the viewer's canvas in the overlay colours (yellow → red), not grey. */
function overlayPixels(page: Page): Promise<number> {
  return page.locator("canvas[data-testid=viewport]").evaluate((el) => {
    // (runs in the page: a canvas, typed here without the DOM library)
    const c = el as unknown as {
      width: number;
      height: number;
      getContext(kind: "2d"): { getImageData(...box: number[]): { data: Uint8ClampedArray } };
    };
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) {
      if (d[i] === 255 && d[i + 1] >= 40 && d[i + 1] <= 230 && d[i + 2] <= 45) n++;
    }
    return n;
  });
}

/** Whether each canvas point (CSS px) has an overlay-coloured pixel within a pixel of it. */
function overlayAround(page: Page, points: [number, number][]): Promise<boolean[]> {
  return page.locator("canvas[data-testid=viewport]").evaluate((el, pts) => {
    const c = el as unknown as {
      width: number;
      clientWidth: number;
      getContext(kind: "2d"): { getImageData(...box: number[]): { data: Uint8ClampedArray } };
    };
    const dpr = c.width / c.clientWidth;
    return pts.map(([x, y]) => {
      const d =
        c.getContext("2d").getImageData(Math.round(x * dpr) - 1, Math.round(y * dpr) - 1, 3, 3)
          .data;
      for (let i = 0; i < d.length; i += 4) {
        if (d[i] === 255 && d[i + 1] >= 40 && d[i + 1] <= 230 && d[i + 2] <= 45) return true;
      }
      return false;
    });
  }, points);
}

/**
 * The viewer shows finding 2 outlined from the SEG the report names: as many loops as the SEG
 * holds on the slice, the finding's colour along every edge of them (placed as the viewer places
 * the image), none at the corners of its box; the outline inside the finding's box.
 */
async function assertSegOutline(
  page: Page,
  origin: string,
  token: string,
  study: { studyUid: string; seriesUid: string },
  sliceIndex: number,
) {
  const get = async (path: string, accept: string) => {
    const res = await fetch(`${origin}${path}`, {
      headers: { Authorization: `Bearer ${token}`, Accept: accept },
    });
    assert.equal(res.status, 200, path);
    return res;
  };
  const bundle = await (await get(
    "/fhir/DiagnosticReport?_count=1&_include=DiagnosticReport:result",
    "application/fhir+json",
  )).json();
  const resources = bundle.entry.map((e: { resource: Record<string, Json> }) => e.resource);
  const report = resources.find((r: Json) => r.resourceType === "DiagnosticReport");
  const finding = resources.find((r: Json) =>
    r.identifier?.some((i: { value: string }) => i.value.endsWith("#2"))
  );
  const path = segmentationPath(report.presentedForm);
  assert.ok(path, "the report names its SEG");
  const seg = parseSegmentation(
    new Uint8Array(await (await get(path, "application/dicom")).arrayBuffer()),
  );
  const metadata = await (await get(
    `/dicomweb/studies/${study.studyUid}/series/${study.seriesUid}/metadata`,
    "application/dicom+json",
  )).json();
  const slices = sortSlices(metadata.map(sliceInfo));
  const contour = new SegContours(seg, slices).at(sliceIndex).find((c) => c.segment === 2);
  assert.ok(contour, "the SEG outlines finding 2 on its centre slice");
  const canvas = page.locator("canvas[data-testid=viewport]");
  assert.equal(await canvas.getAttribute("data-overlay"), "seg");
  assert.equal(Number(await canvas.getAttribute("data-contours")), contour.loops.length);
  // The outline lies in the finding's box (inclusive voxel indices; the outline on pixel edges).
  const box = /^\[(\d+),(\d+),\d+\]-\[(\d+),(\d+),\d+\]$/.exec(
    finding.component.find((c: Json) => c.code.coding[0].code === "bounding-box").valueString,
  )!.slice(1).map(Number);
  assert.ok(
    contour.min[0] >= box[0] && contour.min[1] >= box[1] && contour.max[0] <= box[2] + 1 &&
      contour.max[1] <= box[3] + 1,
    `outline ${contour.min}-${contour.max} in box ${box}`,
  );
  const [w, h] = await canvas.evaluate((el) => {
    const c = el as unknown as { clientWidth: number; clientHeight: number };
    return [c.clientWidth, c.clientHeight];
  });
  const info = slices[sliceIndex];
  const p = place(w, h, info.columns, info.rows, info.pixelSpacing, IDENTITY);
  const screen = (x: number, y: number): [number, number] => [p.x + x * p.sx, p.y + y * p.sy];
  const edges = contour.loops.flatMap((l) =>
    l.filter((_, i) => i % 2 === 0).map((x, i) => {
      const j = (i + 1) % (l.length / 2);
      return screen((x + l[2 * j]) / 2, (l[2 * i + 1] + l[2 * j + 1]) / 2);
    })
  );
  assert.deepEqual(
    await overlayAround(page, edges),
    edges.map(() => true),
    "colour on the outline",
  );
  // Where a box would have its bottom corners (2 px out), nothing is drawn.
  const corners: [number, number][] = [
    [screen(box[0], 0)[0] - 2, screen(0, box[3] + 1)[1] + 2],
    [screen(box[2] + 1, 0)[0] + 2, screen(0, box[3] + 1)[1] + 2],
  ];
  assert.deepEqual(await overlayAround(page, corners), [false, false], "no box");
}

Deno.test({
  name: missing
    ? `web UI end to end in Chromium [skipped: ${missing}]`
    : "web UI end to end in Chromium: sign in, upload, analyse, review, report, export",
  ignore: !!missing,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await Deno.mkdir(SHOTS, { recursive: true });
    const study = smallStudy(6101);
    const dir = await Deno.makeTempDir({ prefix: "e2e-study-" });
    const files: string[] = [];
    for (const [i, bytes] of study.instances.entries()) {
      const path = `${dir}/slice-${String(i + 1).padStart(3, "0")}.dcm`;
      await Deno.writeFile(path, bytes);
      files.push(path);
    }
    const stack = await startUiStack();
    const browser = await launchBrowser();
    try {
      const context = await browser.newContext({
        viewport: { width: 1440, height: 960 },
        acceptDownloads: true,
      });
      const page = await context.newPage();
      const pageErrors: string[] = [];
      page.on("pageerror", (e) => pageErrors.push(String(e)));

      // Sign in.
      await page.goto(`${stack.origin}/`);
      await page.getByRole("heading", { name: "Imaging AI" }).waitFor();
      await shot(page, "01-login");
      await signIn(page, stack.origin, CLINICIAN);
      assert.match(await page.getByTestId("user").textContent() ?? "", /Dr Reader · clinician/);

      // Upload the study: 12 files, each with its bar; the overall bar reaches 100 %.
      await page.getByRole("link", { name: "Upload", exact: true }).click();
      await page.getByTestId("file-input").setInputFiles(files);
      const overall = page.getByRole("progressbar", { name: "Overall upload progress" });
      await page.getByRole("link", { name: /^Open study / }).waitFor();
      assert.equal(await overall.getAttribute("aria-valuenow"), "100");
      assert.match(
        await page.getByTestId("upload-summary").textContent() ?? "",
        /12 stored · 0 stored with warnings · 0 refused/,
      );
      await shot(page, "03-upload");

      // The viewer: slices, then an analysis that waits in the queue until the worker starts.
      await page.getByRole("link", { name: /^Open study / }).click();
      const canvas = page.locator("canvas[data-testid=viewport]");
      await canvas.and(page.locator("[data-shown]")).waitFor();
      await page.getByRole("button", { name: "Run analysis" }).click();
      const status = page.getByTestId("task-status").locator(".badge");
      await page.locator("[data-testid=task-status] .badge[data-state=queued]").waitFor();
      await shot(page, "04-viewer-queued");
      const navigations: string[] = [];
      page.on("framenavigated", (f) => navigations.push(f.url()));
      await stack.startWorker();
      await page.locator("[data-testid=task-status] .badge[data-state=done]").waitFor({
        timeout: 30_000,
      });
      assert.deepEqual(navigations, [], "the status changed without a reload");
      await page.getByTestId("task-status").getByText("Done · 2 findings").waitFor();
      assert.match(await status.textContent() ?? "", /Done · 2 findings/);

      // The findings table and the overlay on the slice.
      const rows = page.getByTestId("findings").locator("tbody tr");
      await rows.nth(1).waitFor();
      assert.equal(await rows.count(), 2);
      const jump = rows.nth(1).getByRole("button");
      const label = await jump.getAttribute("aria-label") ?? "";
      const slice = Number(/slice (\d+)/.exec(label)?.[1]);
      assert.ok(slice >= 1 && slice <= 12, label);
      await jump.click();
      await page.locator(`canvas[data-testid=viewport][data-shown="${slice - 1}"]`).waitFor();
      assert.match(await canvas.getAttribute("data-drawn") ?? "", /\b2\b/);
      assert.ok(await overlayPixels(page) > 20, "the finding is drawn in its colour");
      assert.match(await rows.nth(1).getAttribute("class") ?? "", /selected/);
      // Outlined from the report's SEG (loaded once the report is there), not boxed.
      await page.locator(".viewport-box[data-seg=ready]").waitFor();
      await page.locator("canvas[data-testid=viewport][data-overlay=seg]").waitFor();
      const uids = {
        studyUid: study.plan.study.studyInstanceUid,
        seriesUid: study.plan.study.seriesInstanceUid,
      };
      await assertSegOutline(page, stack.origin, await stack.token(ADMIN), uids, slice - 1);
      await canvas.screenshot({ path: "/tmp/seg-contours.png" });
      await shot(page, "05-viewer-finding");

      // Without the SEG (it cannot be loaded): the boxes, and a note that says so.
      await page.route(/\/instances\/[^/]+$/, (route) => route.fulfill({ status: 404 }));
      await page.reload();
      await page.locator(".viewport-box[data-seg=error]").waitFor();
      await page.getByText("could not be loaded").waitFor();
      await jump.click();
      await page.locator(
        `canvas[data-testid=viewport][data-shown="${slice - 1}"][data-overlay=box]`,
      ).waitFor();
      assert.match(await canvas.getAttribute("data-drawn") ?? "", /\b2\b/);
      assert.equal(await canvas.getAttribute("data-contours"), "0");
      assert.ok(await overlayPixels(page) > 20, "the finding's box is drawn in its colour");
      await page.unroute(/\/instances\/[^/]+$/);

      // Keyboard: arrow down moves one slice; the lung preset key sets its window.
      await canvas.focus();
      await page.keyboard.press("ArrowDown");
      await page.keyboard.press("2");
      await page.locator(`canvas[data-testid=viewport][data-shown="${Math.min(11, slice)}"]`)
        .waitFor();
      await page.keyboard.press("ArrowUp");

      // Agree with finding 2: stored as an Observation about the finding.
      const review = page.getByTestId("review");
      await review.getByRole("button", { name: "✓ Agree" }).click();
      await rows.nth(1).getByText("Agreed").waitFor();
      const findingId = await rows.nth(1).getAttribute("data-finding");
      const token = await stack.token(ADMIN);
      const found = await (await fetch(
        `${stack.origin}/fhir/Observation?focus=Observation/${findingId}&code=${
          encodeURIComponent("urn:imaging-ai:review|finding-review")
        }`,
        { headers: { Authorization: `Bearer ${token}` } },
      )).json();
      assert.equal(found.total, 1);
      assert.equal(found.entry[0].resource.valueCodeableConcept.coding[0].code, "agree");
      assert.equal(found.entry[0].resource.performer[0].display, "Dr Reader");

      // The report: conclusion, model, notice; export XLSX.
      await page.getByRole("link", { name: "Open report" }).click();
      await page.getByTestId("conclusion").waitFor();
      assert.match(await page.getByTestId("conclusion").textContent() ?? "", /2 .* found/);
      // The analysis's DICOM results were stored into the study and are named on the report.
      const resultFiles = await page.getByTestId("result-files").textContent() ?? "";
      assert.match(resultFiles, /DICOM Segmentation \(SEG\)/);
      assert.match(resultFiles, /DICOM SR \(TID 1500\)/);
      assert.match(await page.getByTestId("model").textContent() ?? "", /Threshold demo.*1\.0\.0/);
      await page.getByRole("note").getByText("Demonstration model.").waitFor();
      await shot(page, "06-report");
      const [download] = await Promise.all([
        page.waitForEvent("download"),
        page.getByRole("button", { name: "Export XLSX" }).click(),
      ]);
      assert.match(download.suggestedFilename(), /^findings-.*\.xlsx$/);
      const xlsx = await Deno.readFile(await download.path());
      assert.ok(xlsx.length > 1000);
      assert.deepEqual([...xlsx.slice(0, 2)], [0x50, 0x4b], "an XLSX is a ZIP");

      // The worklist shows the study as done, positive.
      await page.getByRole("link", { name: "Worklist" }).click();
      const row = page.locator("table.worklist tbody tr").first();
      await row.getByText("Done · 2 findings").waitFor();
      await row.getByText("Positive").waitFor();
      await shot(page, "02-worklist");
      await row.locator("td").first().getByRole("link").click();
      await page.getByRole("heading", { name: "Studies" }).waitFor();
      await shot(page, "07-patient");
      await page.getByRole("button", { name: "Sign out" }).click();
      await page.getByRole("button", { name: "Sign in" }).waitFor();

      // The next reader (an admin) sees the review, and the administration page.
      const other = await context.newPage();
      other.on("pageerror", (e) => pageErrors.push(String(e)));
      await signIn(other, stack.origin, ADMIN);
      await other.getByRole("link", { name: "Administration" }).click();
      await other.getByTestId("queue").waitFor();
      // The queue itself (/admin/queue): the one job is done, nothing waits, nothing is dead.
      const depth = other.getByTestId("queue-depth");
      await depth.waitFor();
      assert.match(await depth.textContent() ?? "", /dead letters\s*0/);
      await other.locator("figure.chart svg rect").first().waitFor();
      await shot(other, "08-console");
      await other.getByRole("link", { name: "Worklist" }).click();
      await other.locator("table.worklist tbody tr").first().getByRole("link").nth(1).click();
      await other.getByRole("link", { name: "Open report" }).click();
      await other.getByTestId("findings").getByText("Agreed").waitFor();
      assert.match(await other.locator(".other-reviews").first().textContent() ?? "", /Dr Reader/);
      assert.deepEqual(pageErrors, []);
      await context.close();
    } finally {
      await browser.close();
      await stack.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
