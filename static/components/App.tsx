/** @module The app's frame: the header with navigation and the signed-in person, and the page. */
import { useEffect } from "preact/hooks";
import { currentUrl, matchRoute, navigate } from "../lib/router.ts";
import { isAdmin, loadMe, logout, me, tokens } from "../lib/session.ts";
import { Link } from "./Link.tsx";
import { LoginPage } from "../pages/LoginPage.tsx";
import { WorklistPage } from "../pages/WorklistPage.tsx";
import { UploadPage } from "../pages/UploadPage.tsx";
import { PatientPage } from "../pages/PatientPage.tsx";
import { PatientsPage } from "../pages/PatientsPage.tsx";
import { StudyPage } from "../pages/StudyPage.tsx";
import { ReportPage } from "../pages/ReportPage.tsx";
import { ConsolePage } from "../pages/ConsolePage.tsx";

export function App() {
  const page = matchRoute(currentUrl.value.split("?")[0]);
  const signedIn = !!tokens.value;
  useEffect(() => {
    if (signedIn && !me.value) loadMe();
  }, [signedIn]);
  useEffect(() => {
    const titles: Record<string, string> = {
      worklist: "Worklist",
      login: "Sign in",
      upload: "Upload",
      patients: "Patients",
      patient: "Patient",
      study: "Study",
      report: "Report",
      console: "Administration",
    };
    document.title = `${titles[page.name] ?? "Not found"} · Imaging AI`;
  }, [page.name]);
  if (!signedIn) return <LoginPage />;
  if (page.name === "login") {
    navigate("/", true);
    return null;
  }
  return (
    <>
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <Link href="/" class="brand">
          <span aria-hidden="true" class="logo" />Imaging AI
        </Link>
        <nav aria-label="Main">
          <Link href="/" current={page.name === "worklist"}>Worklist</Link>
          <Link href="/patients" current={page.name === "patients" || page.name === "patient"}>
            Patients
          </Link>
          <Link href="/upload" current={page.name === "upload"}>Upload</Link>
          {isAdmin.value && (
            <Link href="/console" current={page.name === "console"}>Administration</Link>
          )}
        </nav>
        <div class="who">
          <span data-testid="user">
            {me.value
              ? `${me.value.displayName || me.value.name || me.value.sub} · ${me.value.role ?? ""}`
              : "…"}
          </span>
          <button type="button" class="ghost" onClick={() => logout()}>Sign out</button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        {page.name === "worklist" && <WorklistPage />}
        {page.name === "patients" && <PatientsPage />}
        {page.name === "upload" && <UploadPage />}
        {page.name === "patient" && <PatientPage id={page.id} />}
        {page.name === "study" && <StudyPage id={page.id} />}
        {page.name === "report" && <ReportPage id={page.id} />}
        {page.name === "console" && <ConsolePage />}
        {page.name === "not-found" && (
          <section class="page">
            <h1>Not found</h1>
            <p>
              There is no page at this address. <Link href="/">Back to the worklist</Link>
            </p>
          </section>
        )}
      </main>
    </>
  );
}
