/** @module Patients: search by name or identifier, newest first; each links to its page. */
import { useState } from "preact/hooks";
import { fhirGet } from "../lib/api.ts";
import { type Bundle, resourcesOf } from "../lib/fhir_types.ts";
import { formatDate, humanName } from "../lib/format.ts";
import { useAsync } from "../lib/hooks.ts";
import { ErrorNote } from "../components/ErrorNote.tsx";
import { Link } from "../components/Link.tsx";

export function PatientsPage() {
  const [draft, setDraft] = useState("");
  const [query, setQuery] = useState("");
  const result = useAsync((signal) => {
    const q = new URLSearchParams({ _count: "50", _sort: "-_lastUpdated" });
    const term = query.trim();
    if (term) q.set(/\d/.test(term) ? "identifier" : "name", term);
    return fhirGet<Bundle>(`Patient?${q}`, signal);
  }, [query]);
  const patients = result.data ? resourcesOf(result.data, "Patient") : [];
  return (
    <section class="page">
      <h1>Patients</h1>
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault();
          setQuery(draft);
        }}
      >
        <label>
          Name or identifier
          <input value={draft} onInput={(e) => setDraft(e.currentTarget.value)} />
        </label>
        <div class="filter-actions">
          <button type="submit" class="primary">Search</button>
        </div>
      </form>
      <ErrorNote error={result.error} />
      <table class="grid">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Identifier</th>
            <th scope="col">Sex</th>
            <th scope="col">Born</th>
          </tr>
        </thead>
        <tbody>
          {patients.map((p) => (
            <tr key={p.id}>
              <td>
                <Link href={`/patients/${p.id}`}>{humanName(p.name)}</Link>
              </td>
              <td class="mono">{p.identifier?.[0]?.value ?? "—"}</td>
              <td>{p.gender ?? "—"}</td>
              <td>{formatDate(p.birthDate)}</td>
            </tr>
          ))}
          {!result.loading && !patients.length && (
            <tr>
              <td colSpan={4} class="empty">No patients match.</td>
            </tr>
          )}
        </tbody>
      </table>
    </section>
  );
}
