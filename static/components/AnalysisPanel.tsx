/**
 * @module Run an analysis (`POST ImagingStudy/{id}/$analyze` with model, profile and threshold)
 * and follow its Task: the status shown is the latest Task's, updated live from `/events`.
 */
import { useEffect, useState } from "preact/hooks";
import { api, ok } from "../lib/api.ts";
import type { Resource } from "../lib/fhir_types.ts";
import { formatDate } from "../lib/format.ts";
import { useAsync } from "../lib/hooks.ts";
import { loadModels } from "../lib/models.ts";
import { canWrite } from "../lib/session.ts";
import { taskState } from "../lib/study_rows.ts";
import { ErrorNote } from "./ErrorNote.tsx";
import { StatusBadge } from "./StatusBadge.tsx";

export function AnalysisPanel(
  { studyId, task, findings, onStarted }: {
    studyId: string;
    task?: Resource;
    findings?: number;
    onStarted(task: Resource): void;
  },
) {
  const models = useAsync((signal) => loadModels(signal), []);
  const [model, setModel] = useState("");
  const [profile, setProfile] = useState("standard");
  const [threshold, setThreshold] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const chosen = models.data?.find((m) => m.name === model) ?? models.data?.[0];
  useEffect(() => {
    if (chosen && !model) setModel(chosen.name);
    if (chosen && !threshold) setThreshold(String(chosen.defaultThreshold ?? 0.5));
  }, [chosen?.name]);

  const run = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const parameter = [
        { name: "model", valueString: model },
        { name: "profile", valueCode: profile },
        { name: "threshold", valueDecimal: Number(threshold) },
      ];
      const res = await ok(
        await api(`/fhir/ImagingStudy/${studyId}/$analyze`, {
          method: "POST",
          headers: { "Content-Type": "application/fhir+json", Accept: "application/fhir+json" },
          body: JSON.stringify({ resourceType: "Parameters", parameter }),
        }),
      );
      onStarted(await res.json());
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };
  const state = taskState(task?.status);
  const running = state === "queued" || state === "running";
  return (
    <section class="panel analysis" aria-labelledby="analysis-title">
      <h2 id="analysis-title">AI analysis</h2>
      <p class="status-line" aria-live="polite" data-testid="task-status">
        <StatusBadge
          ai={{ state: task ? state : "none", findings, reason: task?.statusReason?.text }}
        />
        {task?.lastModified && <span class="muted small">{formatDate(task.lastModified)}</span>}
      </p>
      {state === "failed" && task?.statusReason?.text && (
        <p class="error">{task.statusReason.text}</p>
      )}
      {canWrite.value && (
        <form onSubmit={run} class="analysis-form">
          <label>
            Model
            <select value={model} onChange={(e) => setModel(e.currentTarget.value)}>
              {(models.data ?? []).map((m) => (
                <option key={m.name} value={m.name}>{m.displayName} {m.version}</option>
              ))}
            </select>
          </label>
          <label>
            Profile
            <select value={profile} onChange={(e) => setProfile(e.currentTarget.value)}>
              <option value="fast">Fast</option>
              <option value="standard">Standard</option>
              <option value="research">Research</option>
            </select>
          </label>
          <label>
            Threshold
            <input
              type="number"
              min="0.01"
              max="0.99"
              step="0.01"
              value={threshold}
              onInput={(e) => setThreshold(e.currentTarget.value)}
            />
          </label>
          <button type="submit" class="primary" disabled={busy || running || !model}>
            {running ? "Analysing…" : busy ? "Starting…" : "Run analysis"}
          </button>
        </form>
      )}
      {chosen?.notice && <p class="notice small">{chosen.notice}</p>}
      <ErrorNote error={error ?? models.error} />
    </section>
  );
}
