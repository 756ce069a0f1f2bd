/**
 * @module The worklist: studies newest first with patient, date, modality, description, AI status
 * and decision; filters by patient name or identifier, date range and AI status; paged; the AI
 * status follows live Task events without a reload.
 */
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { fhirGet } from "../lib/api.ts";
import type { Bundle } from "../lib/fhir_types.ts";
import { linkOf, relativeRef } from "../lib/fhir_types.ts";
import { useAsync, useLiveEvents } from "../lib/hooks.ts";
import { navigate, queryParams } from "../lib/router.ts";
import { studyRows } from "../lib/study_rows.ts";
import {
  fhirPathOf,
  filterFromSearch,
  filterToSearch,
  type WorklistFilter,
  worklistQuery,
} from "../lib/worklist_query.ts";
import { StudyCells, StudyHeaders } from "../components/StudyCells.tsx";
import { ErrorNote } from "../components/ErrorNote.tsx";
import { Link } from "../components/Link.tsx";

export function WorklistPage() {
  const filter = filterFromSearch(queryParams());
  const [draft, setDraft] = useState<WorklistFilter>(filter);
  const [pages, setPages] = useState<string[]>([]); // the FHIR paths of the pages before this one
  const [path, setPath] = useState<string | null>(null); // null: the first page
  const key = filterToSearch(filter);
  const first = useMemo(() => worklistQuery(filter), [key]);
  const result = useAsync((signal) => fhirGet<Bundle>(path ?? first, signal), [path, first]);
  const rows = useMemo(() => (result.data ? studyRows(result.data) : []), [result.data]);
  useEffect(() => {
    // When the first rows are on screen (read by the 10k-study measurement in tests/e2e).
    if (rows.length && !performance.getEntriesByName("worklist-rows").length) {
      performance.mark("worklist-rows");
    }
  }, [rows]);
  const ids = useMemo(() => new Set(rows.map((r) => `ImagingStudy/${r.id}`)), [rows]);
  const reloadTimer = useRef<number | undefined>(undefined);
  const live = useLiveEvents("types=Task", (e) => {
    if (!e.focus || !ids.has(relativeRef(e.focus) ?? "")) return;
    clearTimeout(reloadTimer.current);
    reloadTimer.current = setTimeout(() => result.reload(), 250);
  });
  const apply = (e: Event) => {
    e.preventDefault();
    setPages([]);
    setPath(null);
    navigate(`/${filterToSearch(draft)}`, true);
  };
  const clear = () => {
    setDraft({});
    setPages([]);
    setPath(null);
    navigate("/", true);
  };
  const next = result.data && linkOf(result.data, "next");
  const set = (k: keyof WorklistFilter) => (e: Event) =>
    setDraft({ ...draft, [k]: (e.currentTarget as HTMLInputElement).value });
  return (
    <section class="page">
      <div class="page-head">
        <h1>Worklist</h1>
        <span class={`live ${live}`} title="Live status updates">
          {live === "open" ? "● Live" : live === "error" ? "○ Reconnecting" : "○ Connecting"}
        </span>
        <Link href="/upload" class="button primary">Upload studies</Link>
      </div>
      <form class="filters" onSubmit={apply} aria-label="Filter studies">
        <label>
          Patient name
          <input value={draft.name ?? ""} onInput={set("name")} placeholder="e.g. Doe" />
        </label>
        <label>
          Patient ID
          <input value={draft.patientId ?? ""} onInput={set("patientId")} />
        </label>
        <label>
          From
          <input type="date" value={draft.from ?? ""} onInput={set("from")} />
        </label>
        <label>
          To
          <input type="date" value={draft.to ?? ""} onInput={set("to")} />
        </label>
        <label>
          AI status
          <select value={draft.status ?? ""} onChange={set("status")}>
            <option value="">Any</option>
            <option value="queued">Queued</option>
            <option value="running">Running</option>
            <option value="done">Done</option>
            <option value="failed">Failed</option>
          </select>
        </label>
        <div class="filter-actions">
          <button type="submit" class="primary">Apply</button>
          <button type="button" class="ghost" onClick={clear}>Clear</button>
        </div>
      </form>
      <ErrorNote error={result.error} />
      <table class="grid worklist" aria-busy={result.loading}>
        <caption class="sr-only">Studies, newest first</caption>
        <thead>
          <tr>
            <th scope="col">Patient</th>
            <th scope="col">Patient ID</th>
            <StudyHeaders />
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={r.id} data-study={r.id}>
              <td>
                {r.patientId
                  ? <Link href={`/patients/${r.patientId}`}>{r.patientName}</Link>
                  : r.patientName}
              </td>
              <td class="mono">{r.patientMrn ?? "—"}</td>
              <StudyCells row={r} />
            </tr>
          ))}
          {!result.loading && !rows.length && !result.error && (
            <tr>
              <td colSpan={7} class="empty">No studies match.</td>
            </tr>
          )}
        </tbody>
      </table>
      <nav class="pager" aria-label="Pages">
        <button
          type="button"
          disabled={!pages.length}
          onClick={() => {
            const prev = pages.slice(0, -1);
            setPath(pages[pages.length - 1] === "" ? null : pages[pages.length - 1]);
            setPages(prev);
          }}
        >
          ← Newer
        </button>
        <span>
          Page {pages.length + 1}
          {result.data?.total !== undefined &&
            ` · ${result.data.total} ${result.data.total === 1 ? "study" : "studies"}`}
        </span>
        <button
          type="button"
          disabled={!next}
          onClick={() => {
            setPages([...pages, path ?? ""]);
            setPath(fhirPathOf(next!));
          }}
        >
          Older →
        </button>
      </nav>
    </section>
  );
}
