/** @module The columns a study's row shows in the worklist and on a patient's page. */
import type { StudyRow } from "../lib/study_rows.ts";
import { formatDate } from "../lib/format.ts";
import { Link } from "./Link.tsx";
import { DecisionBadge, StatusBadge } from "./StatusBadge.tsx";

/** Date, modality, description (a link to the viewer), AI status and decision. */
export function StudyCells({ row }: { row: StudyRow }) {
  return (
    <>
      <td class="nowrap">{formatDate(row.date)}</td>
      <td>{row.modality}</td>
      <td>
        <Link href={`/studies/${row.id}`}>{row.description || "(no description)"}</Link>
      </td>
      <td>
        <StatusBadge ai={row.ai} />
      </td>
      <td>
        <DecisionBadge decision={row.decision} />
      </td>
    </>
  );
}

/** The headers of {@link StudyCells}' columns. */
export function StudyHeaders() {
  return (
    <>
      {["Date", "Modality", "Description", "AI status", "Decision"].map((h) => (
        <th key={h} scope="col">{h}</th>
      ))}
    </>
  );
}
