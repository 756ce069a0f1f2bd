/** @module One patient: demographics, their studies (with AI status) and their AI reports. */
import { fhirGet } from "../lib/api.ts";
import { type Bundle, refId, type Resource, resourcesOf } from "../lib/fhir_types.ts";
import { formatDate, humanName } from "../lib/format.ts";
import { useAsync } from "../lib/hooks.ts";
import { studyRows } from "../lib/study_rows.ts";
import { ErrorNote } from "../components/ErrorNote.tsx";
import { Link } from "../components/Link.tsx";
import { StudyCells, StudyHeaders } from "../components/StudyCells.tsx";

export function PatientPage({ id }: { id: string }) {
  const patient = useAsync((signal) => fhirGet<Resource>(`Patient/${id}`, signal), [id]);
  const studies = useAsync(
    (signal) =>
      fhirGet<Bundle>(
        `ImagingStudy?subject=Patient/${id}&_sort=-started&_count=100&_include=ImagingStudy:subject&_revinclude=Task:focus&_revinclude=DiagnosticReport:imaging-study`,
        signal,
      ),
    [id],
  );
  const reports = useAsync(
    (signal) =>
      fhirGet<Bundle>(
        `DiagnosticReport?subject=Patient/${id}&_sort=-_lastUpdated&_count=100`,
        signal,
      ),
    [id],
  );
  const p = patient.data;
  const rows = studies.data ? studyRows(studies.data) : [];
  const reportList = reports.data ? resourcesOf(reports.data, "DiagnosticReport") : [];
  return (
    <section class="page">
      <h1>{p ? humanName(p.name) : "Patient"}</h1>
      <ErrorNote error={patient.error ?? studies.error ?? reports.error} />
      {p && (
        <dl class="facts card">
          <div>
            <dt>Identifier</dt>
            <dd class="mono">
              {(p.identifier ?? []).map((i: { value?: string }) => i.value).join(", ") || "—"}
            </dd>
          </div>
          <div>
            <dt>Sex</dt>
            <dd>{p.gender ?? "—"}</dd>
          </div>
          <div>
            <dt>Born</dt>
            <dd>{formatDate(p.birthDate)}</dd>
          </div>
        </dl>
      )}
      <h2>Studies</h2>
      <table class="grid">
        <thead>
          <tr>
            <StudyHeaders />
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={r.id}>
              <StudyCells row={r} />
            </tr>
          ))}
          {!studies.loading && !rows.length && (
            <tr>
              <td colSpan={5} class="empty">No studies.</td>
            </tr>
          )}
        </tbody>
      </table>
      <h2>Reports</h2>
      <ul class="reports">
        {reportList.map((r) => {
          const study = refId(r.imagingStudy?.[0]?.reference);
          return (
            <li key={r.id}>
              {study
                ? <Link href={`/studies/${study}/report`}>{r.code?.text ?? "Report"}</Link>
                : r.code?.text} <span class="muted small">{formatDate(r.issued)}</span>
              <p class="small">{r.conclusion}</p>
            </li>
          );
        })}
        {!reports.loading && !reportList.length && <li class="muted">No reports.</li>}
      </ul>
    </section>
  );
}
