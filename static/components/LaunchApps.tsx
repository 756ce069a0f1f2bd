/**
 * @module "Open in app": the SMART apps registered with a launch URL (`GET /auth/apps`), each
 * opened in a new tab with an EHR launch for this study (`POST /auth/launch` with the patient and
 * the ImagingStudy; the app gets `?iss=…&launch=…` and finds them in its token response). Shown to
 * clinicians and admins, and only when there is an app to open.
 */
import { useState } from "preact/hooks";
import { api, getJson, ok } from "../lib/api.ts";
import { useAsync } from "../lib/hooks.ts";
import { canWrite } from "../lib/session.ts";
import { ErrorNote } from "./ErrorNote.tsx";

interface App {
  clientId: string;
  name: string;
  launchUrl: string;
}

export function LaunchApps({ studyId, patientId }: { studyId: string; patientId?: string }) {
  const allowed = canWrite.value;
  const apps = useAsync(
    (signal) => allowed ? getJson<App[]>("/auth/apps", signal) : Promise.resolve([]),
    [allowed],
  );
  const [error, setError] = useState<string>();
  if (!allowed || !apps.data?.length) return null;
  const open = async (app: App) => {
    setError(undefined);
    // Opened first (a popup must follow the click), pointed at the app once the launch exists.
    const tab = globalThis.open("about:blank", "_blank");
    try {
      const res = await ok(
        await api("/auth/launch", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({
            client_id: app.clientId,
            imagingStudy: studyId,
            ...(patientId ? { patient: patientId } : {}),
          }),
        }),
      );
      const { launch } = await res.json();
      const url = new URL(app.launchUrl);
      url.searchParams.set("iss", `${location.origin}/fhir`);
      url.searchParams.set("launch", launch);
      if (tab) {
        tab.opener = null;
        tab.location.href = url.toString();
      } else {
        location.assign(url.toString());
      }
    } catch (e) {
      tab?.close();
      setError((e as Error).message);
    }
  };
  return (
    <section class="panel" aria-labelledby="apps-title">
      <h2 id="apps-title">Open in app</h2>
      <div class="apps">
        {apps.data.map((app) => (
          <button key={app.clientId} type="button" onClick={() => open(app)}>
            {app.name}
          </button>
        ))}
      </div>
      <ErrorNote error={error} />
    </section>
  );
}
