/**
 * @module The report as a clinician reads it: patient and study, the conclusion, the model and its
 * version with the demonstration-model notice, the findings with their reviews (agree, disagree,
 * comment, saved as FHIR), and the JSON and XLSX exports.
 */
import { useState } from "preact/hooks";
import { download } from "../lib/download.ts";
import { formatDate, formatNumber, formatPercent, humanName } from "../lib/format.ts";
import { useAsync } from "../lib/hooks.ts";
import { loadModels } from "../lib/models.ts";
import { navigate } from "../lib/router.ts";
import { instanceNumberOf, loadAnalysis, loadStudyHead } from "../lib/study_data.ts";
import { ErrorNote } from "../components/ErrorNote.tsx";
import { FindingsTable } from "../components/FindingsTable.tsx";
import { Link } from "../components/Link.tsx";
import { ReviewControls } from "../components/ReviewControls.tsx";

export function ReportPage({ id }: { id: string }) {
  const head = useAsync((signal) => loadStudyHead(id, signal), [id]);
  const analysis = useAsync((signal) => loadAnalysis(id, signal), [id]);
  const models = useAsync((signal) => loadModels(signal), []);
  const [error, setError] = useState<string>();
  const report = analysis.data?.report;
  const findings = analysis.data?.findings ?? [];
  const task =
    analysis.data?.tasks.find((t) =>
      (t.output ?? []).some((o: { valueReference?: { reference?: string } }) =>
        o.valueReference?.reference === `DiagnosticReport/${report?.id}`
      )
    ) ?? analysis.data?.tasks[0];
  const input = (name: string) =>
    task?.input?.find((i: { type?: { text?: string } }) => i.type?.text === name);
  const modelName = input("model")?.valueString;
  const model = models.data?.find((m) => m.name === modelName);
  const exportAs = async (kind: "json" | "xlsx") => {
    setError(undefined);
    try {
      await download(`/reports/${report!.id}/findings.${kind}`, `findings-${report!.id}.${kind}`);
    } catch (e) {
      setError((e as Error).message);
    }
  };
  const patient = head.data?.patient;
  return (
    <section class="page report">
      <div class="page-head">
        <h1>AI report</h1>
        <Link href={`/studies/${id}`} class="button">Back to the images</Link>
      </div>
      <ErrorNote error={head.error ?? analysis.error ?? error} />
      {!analysis.loading && !report && <p class="muted">This study has no report yet.</p>}
      {report && (
        <article class="card report-card" data-testid="report">
          <dl class="facts">
            <div>
              <dt>Patient</dt>
              <dd>
                {patient ? humanName(patient.name) : "—"}
                {patient?.identifier?.[0]?.value && (
                  <span class="muted mono">{patient.identifier[0].value}</span>
                )}
              </dd>
            </div>
            <div>
              <dt>Study</dt>
              <dd>
                {head.data?.study.description ?? "—"} · {formatDate(head.data?.study.started)}
              </dd>
            </div>
            <div>
              <dt>Report</dt>
              <dd>
                {report.code?.text ?? "AI analysis"} · {report.status} · issued{" "}
                {formatDate(report.issued)}
              </dd>
            </div>
            <div>
              <dt>Model</dt>
              <dd data-testid="model">
                {model?.displayName ?? analysis.data?.model ?? modelName ?? "—"}
                {(input("modelVersion")?.valueString ?? model?.version) &&
                  ` version ${input("modelVersion")?.valueString ?? model?.version}`}
                {input("profile")?.valueCode && ` · ${input("profile").valueCode} profile`}
                {analysis.data?.decision?.threshold !== undefined &&
                  ` · threshold ${formatNumber(analysis.data.decision.threshold, 2)}`}
              </dd>
            </div>
          </dl>
          <h2>Conclusion</h2>
          <p class="conclusion" data-testid="conclusion">{report.conclusion ?? "—"}</p>
          <p class="notice" role="note">
            <strong>Demonstration model.</strong> {model?.notice ??
              "This model was trained on synthetic data and is not for clinical use."}{" "}
            Findings must be confirmed by a clinician.
          </p>
          <h2>Findings</h2>
          <FindingsTable
            findings={findings}
            reviews={analysis.data!.reviews}
            onJump={(f) => navigate(`/studies/${id}?finding=${f.id}`)}
            sliceOf={(f) => head.data && instanceNumberOf(head.data.study, f.centreSopInstanceUid)}
          />
          {findings.map((f) => (
            <section class="finding-review" key={f.id} aria-label={`Finding ${f.number}`}>
              <p>
                <strong>Finding {f.number}</strong>: {f.label}, {formatNumber(f.diameterMm)} mm,
                {" "}
                {formatNumber(f.volumeMm3, 0)} mm³, probability {formatPercent(f.probability)}
                {f.location ? `, ${f.location}` : ""}.
              </p>
              <ReviewControls
                finding={f}
                observation={analysis.data!.observations.find((o) =>
                  o.id === f.id
                )}
                reviews={analysis.data!.reviews.get(f.id) ?? []}
                onSaved={() => analysis.reload()}
              />
            </section>
          ))}
          {(report.presentedForm ?? []).length > 0 && (
            <>
              <h2>Result files</h2>
              <ul class="result-files" data-testid="result-files">
                {(report.presentedForm ?? []).map((
                  a: { title?: string; contentType?: string; url?: string },
                ) => (
                  <li key={a.url}>
                    {a.title ?? a.contentType}
                    {a.contentType === "application/dicom" &&
                      " — open the study in a DICOM viewer or PACS to see it"}
                  </li>
                ))}
              </ul>
            </>
          )}
          <div class="actions">
            <button type="button" onClick={() => exportAs("json")}>Export JSON</button>
            <button type="button" class="primary" onClick={() => exportAs("xlsx")}>
              Export XLSX
            </button>
          </div>
        </article>
      )}
    </section>
  );
}
