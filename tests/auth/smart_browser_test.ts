/**
 * @module The real SMART JavaScript client (fhirclient 2.6.3, its browser build vendored in
 * `vendor/fhirclient/`) in Chromium against this server: a small test app served by the test on
 * another origin (so CORS is exercised too) goes through an EHR launch (a launch made with
 * `POST /auth/launch`: the patient and the ImagingStudy in `fhirContext`, the ID token's
 * `fhirUser`) and a standalone launch (sign-in kept from the first, consent, the patient picker),
 * then reads FHIR resources with the token it got; and the web UI's "Open in app" on a study
 * launches the same app for that study.
 */
import assert from "node:assert/strict";
import { browserMissing, launchBrowser, SHOTS } from "../e2e/_browser.ts";
import { type AuthStack, startAuthStack } from "./_auth_harness.ts";
import { registerApp } from "./_smart.ts";

const CLIENT = await Deno.readTextFile(
  new URL("../../vendor/fhirclient/fhir-client.pure.min.js", import.meta.url),
);

/** The test app's pages: launch (EHR), standalone, and the redirect page that reads the record. */
function appPage(name: string, clientId: string, fhirBase: string): string | undefined {
  const head = `<!doctype html><html><head><meta charset="utf-8"><title>${name}</title>` +
    `<script src="/fhir-client.js"></script></head><body><pre id="out"></pre><script>`;
  const tail = `</script></body></html>`;
  const authorize = (scope: string, iss?: string) =>
    `FHIR.oauth2.authorize(${
      JSON.stringify({ clientId, scope, redirectUri: "/app.html", ...(iss ? { iss } : {}) })
    }).catch((e) => { document.getElementById("out").textContent = "ERROR " + e; });`;
  switch (name) {
    case "launch.html":
      return head + authorize("launch openid fhirUser patient/*.rs offline_access") + tail;
    case "standalone.html":
      return head + authorize("launch/patient openid fhirUser patient/*.rs", fhirBase) + tail;
    case "app.html":
      return head + `
FHIR.oauth2.ready().then(async (client) => {
  const patient = await client.patient.read();
  const context = client.state.tokenResponse.fhirContext || [];
  const study = context.length ? await client.request(context[0].reference) : null;
  const result = {
    patient: patient.id,
    family: patient.name[0].family,
    study: study && study.id,
    studySubject: study && study.subject.reference,
    fhirUser: client.getFhirUser(),
    userType: client.getUserType(),
    idToken: client.getIdToken(),
    banner: client.state.tokenResponse.need_patient_banner,
    hasRefresh: Boolean(client.state.tokenResponse.refresh_token),
  };
  document.getElementById("out").textContent = "RESULT " + JSON.stringify(result);
}).catch((e) => { document.getElementById("out").textContent = "ERROR " + e; });` + tail;
  }
  return undefined;
}

Deno.test({
  name: browserMissing()
    ? `fhirclient in Chromium: EHR and standalone launch [skipped: ${browserMissing()}]`
    : "fhirclient in Chromium: an EHR launch gets the patient and the ImagingStudy, a standalone launch picks a patient, the web UI opens the app for a study",
  ignore: browserMissing() !== undefined,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    // The test app, on its own origin.
    let fhirBase = "";
    const app = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
      const name = new URL(req.url).pathname.slice(1);
      if (name === "fhir-client.js") {
        return new Response(CLIENT, { headers: { "Content-Type": "text/javascript" } });
      }
      const html = appPage(name, "imaging-viewer", fhirBase);
      return html
        ? new Response(html, { headers: { "Content-Type": "text/html; charset=utf-8" } })
        : new Response("not found", { status: 404 });
    });
    const appOrigin = `http://127.0.0.1:${app.addr.port}`;
    let st: AuthStack | undefined;
    const browser = await launchBrowser();
    try {
      st = await startAuthStack({ CORS_ORIGINS: appOrigin });
      fhirBase = `${st.origin}/fhir`;
      const admin = {
        token: st.tokens.admin,
        headers: { "Content-Type": "application/fhir+json" },
      };
      for (
        const r of [
          { resourceType: "Patient", id: "pa", name: [{ family: "Curie", given: ["Marie"] }] },
          {
            resourceType: "Patient",
            id: "pb",
            name: [{ family: "Franklin", given: ["Rosalind"] }],
          },
          {
            resourceType: "ImagingStudy",
            id: "study-a",
            status: "available",
            subject: { reference: "Patient/pa" },
          },
        ]
      ) {
        const res = await st.call(`/fhir/${r.resourceType}/${r.id}`, {
          ...admin,
          method: "PUT",
          body: JSON.stringify(r),
        });
        assert.equal(res.status, 201, await res.text());
      }
      const users = await (await st.call("/auth/users", { token: st.tokens.admin })).json();
      const clinician = users.find((u: { username: string }) => u.username === "clinician");
      const patched = await st.call(`/auth/users/${clinician.id}`, {
        method: "PATCH",
        token: st.tokens.admin,
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ fhirUser: "Practitioner/dr-who" }),
      });
      assert.equal(patched.status, 200);
      await registerApp(st, "imaging-viewer", {
        name: "Test imaging viewer",
        redirectUris: [`${appOrigin}/app.html`],
        scope: "launch launch/patient openid fhirUser profile patient/*.rs offline_access",
        launchUrl: `${appOrigin}/launch.html`,
      });
      const launched = await st.call("/auth/launch", {
        method: "POST",
        token: st.tokens.clinician,
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
          patient: "pa",
          imagingStudy: "study-a",
          client_id: "imaging-viewer",
        }),
      });
      const { launch } = await launched.json();
      assert.equal(launched.status, 201);

      const context = await browser.newContext();
      const page = await context.newPage();
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(String(e)));
      const result = async () => {
        const out = page.locator("#out");
        await out.filter({ hasText: /RESULT|ERROR/ }).waitFor({ timeout: 30_000 });
        const text = (await out.textContent())!;
        assert.ok(text.startsWith("RESULT "), text);
        return JSON.parse(text.slice(7));
      };

      // EHR launch: the EHR opens the app with iss and launch.
      await page.goto(
        `${appOrigin}/launch.html?iss=${encodeURIComponent(fhirBase)}&launch=${launch}`,
      );
      await page.getByLabel("Username").fill("clinician");
      await page.getByLabel("Password").fill("a long enough password");
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByText("Test imaging viewer").waitFor();
      await Deno.mkdir(SHOTS, { recursive: true });
      await page.screenshot({ path: `${SHOTS}smart-consent-ehr.png`, fullPage: true });
      await page.getByRole("button", { name: "Approve" }).click();
      const ehr = await result();
      assert.equal(ehr.patient, "pa");
      assert.equal(ehr.family, "Curie");
      assert.equal(ehr.study, "study-a");
      assert.equal(ehr.studySubject, "Patient/pa");
      assert.equal(ehr.fhirUser, "Practitioner/dr-who");
      assert.equal(ehr.userType, "Practitioner");
      assert.equal(ehr.idToken.aud, "imaging-viewer");
      assert.equal(ehr.idToken.iss, st.services.auth.issuer);
      assert.equal(ehr.idToken.fhirUser, `${fhirBase}/Practitioner/dr-who`);
      assert.equal(ehr.hasRefresh, true);

      // Standalone launch in the same browser: signed in already; consent with a patient picker.
      await page.goto(`${appOrigin}/standalone.html`);
      await page.getByRole("button", { name: "Approve" }).waitFor();
      assert.equal(await page.getByLabel("Username").count(), 0, "no second password");
      await page.getByLabel("Patient name").fill("franklin");
      await page.getByRole("button", { name: "Search" }).click();
      await page.getByText("Rosalind Franklin").click();
      await page.screenshot({ path: `${SHOTS}smart-consent-standalone.png`, fullPage: true });
      await page.getByRole("button", { name: "Approve" }).click();
      const standalone = await result();
      assert.equal(standalone.patient, "pb");
      assert.equal(standalone.family, "Franklin");
      assert.equal(standalone.study, null);
      assert.equal(standalone.banner, true);
      assert.equal(standalone.hasRefresh, false);
      assert.deepEqual(errors, []);

      // From the web UI: the study's "Open in app" makes the launch and opens the app in a tab.
      // (The UI signs in with the same browser session: no password.)
      await page.goto(`${st.origin}/studies/study-a`);
      const button = page.getByRole("button", { name: "Test imaging viewer" });
      await button.waitFor({ timeout: 30_000 });
      await page.screenshot({ path: `${SHOTS}smart-open-in-app.png`, fullPage: true });
      const [tab] = await Promise.all([context.waitForEvent("page"), button.click()]);
      await tab.getByRole("button", { name: "Approve" }).click();
      const out = tab.locator("#out");
      await out.filter({ hasText: /RESULT|ERROR/ }).waitFor({ timeout: 30_000 });
      const text = (await out.textContent())!;
      assert.ok(text.startsWith("RESULT "), text);
      const fromUi = JSON.parse(text.slice(7));
      assert.equal(fromUi.patient, "pa");
      assert.equal(fromUi.study, "study-a");
      await context.close();
    } finally {
      await browser.close();
      await st?.close();
      await app.shutdown();
    }
  },
});
