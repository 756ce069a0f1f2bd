/**
 * @module SQL for QIDO-RS (PS3.18 10.6) over the DICOM index (`dicom_study` st, `dicom_series` se,
 * `dicom_instance` i): the column each matching key compares, each key's condition (single value,
 * list of UIDs, `*`/`?` wildcards, date and time ranges; a value no column can hold is a 400), the
 * conditions of the path and of a patient-bound caller's compartment, and the paged statement of
 * each level.
 */
import { patientStudyUids } from "../db/dicom_repo.ts";
import { escapeLike } from "../db/params.ts";
import { DicomwebError } from "./errors.ts";

export type QidoLevel = "study" | "series" | "instance";

/** Adds a parameter to the statement being built and answers its `$n` (`Params.add`). */
export type Bind = (v: unknown) => string;

/** How a key's value is matched. */
type Match = "text" | "pn" | "uid" | "date" | "time" | "int" | "modalities";
export interface KeyDef {
  level: QidoLevel;
  column: string;
  match: Match;
}

/** The matching keys by tag: the level that has them, the column, how the value matches. */
export const KEYS: Record<string, KeyDef> = {
  "00100020": { level: "study", column: "st.patient_id", match: "text" },
  "00100010": { level: "study", column: "st.patient_name", match: "pn" },
  "00080020": { level: "study", column: "st.study_date", match: "date" },
  "00080030": { level: "study", column: "st.study_time", match: "time" },
  "00080050": { level: "study", column: "st.accession", match: "text" },
  "00200010": { level: "study", column: "st.study_id", match: "text" },
  "00081030": { level: "study", column: "st.description", match: "text" },
  "00080090": { level: "study", column: "st.referring", match: "pn" },
  "0020000D": { level: "study", column: "st.study_uid", match: "uid" },
  "00080061": { level: "study", column: "st.modalities", match: "modalities" },
  "00080060": { level: "series", column: "se.modality", match: "text" },
  "0020000E": { level: "series", column: "se.series_uid", match: "uid" },
  "00200011": { level: "series", column: "se.series_number", match: "int" },
  "0008103E": { level: "series", column: "se.description", match: "text" },
  "00180015": { level: "series", column: "se.body_part", match: "text" },
  "00080018": { level: "instance", column: "i.sop_uid", match: "uid" },
  "00080016": { level: "instance", column: "i.sop_class", match: "uid" },
  "00200013": { level: "instance", column: "i.instance_number", match: "int" },
};

/**
 * The conditions of the path's study and series, and of a patient-bound caller's compartment
 * (`patient`: the studies of that Patient id).
 */
export function targetConditions(
  req: { studyUid?: string; seriesUid?: string; patient?: string },
  bind: Bind,
): string[] {
  const where: string[] = [];
  if (req.studyUid) where.push(`st.study_uid = ${bind(req.studyUid)}`);
  if (req.patient !== undefined) {
    where.push(`st.study_uid IN (${patientStudyUids(bind, req.patient)})`);
  }
  if (req.seriesUid) where.push(`se.series_uid = ${bind(req.seriesUid)}`);
  return where;
}

/** The condition of one matching key's value `raw`; undefined for universal matching. */
export function matchCondition(
  def: KeyDef,
  raw: string,
  bind: Bind,
  name: string,
): string | undefined {
  const value = raw.trim();
  if (value === "" || value === "*") return undefined; // universal matching
  const col = def.column;
  switch (def.match) {
    case "uid": {
      const list = value.split(/[,\\]/).map((s) => s.trim()).filter(Boolean);
      return list.length === 1
        ? `${col} = ${bind(list[0])}`
        : `${col} = ANY(${bind(list)}::text[])`;
    }
    case "modalities":
      return `${col} && ${bind(value.split(/[,\\]/).map((s) => s.trim()))}::text[]`;
    case "int": {
      const list = value.split(/[,\\]/).map((s) => s.trim());
      // IS values are 32-bit signed integers (PS3.5 6.2), as the integer columns hold them.
      const int32 = (s: string) =>
        /^-?\d+$/.test(s) && Number(s) >= -(2 ** 31) && Number(s) < 2 ** 31;
      if (!list.every(int32)) {
        throw new DicomwebError(
          400,
          `${name} must be an integer from -2147483648 to 2147483647, got "${raw}"`,
        );
      }
      return `${col} = ANY(${bind(list.map(Number))}::int[])`;
    }
    case "date":
    case "time":
      return rangeCondition(def.match, col, value, bind, name);
    case "pn":
    case "text": {
      const ci = def.match === "pn";
      const target = ci ? `upper(${col})` : col;
      if (!/[*?]/.test(value)) return `${target} = ${bind(ci ? value.toUpperCase() : value)}`;
      const pattern = escapeLike(value).replace(/\*/g, "%").replace(
        /\?/g,
        "_",
      );
      return `${target} LIKE ${bind(ci ? pattern.toUpperCase() : pattern)}`;
    }
  }
}

function rangeCondition(
  kind: "date" | "time",
  col: string,
  value: string,
  bind: Bind,
  name: string,
): string {
  const valid = kind === "date" ? /^\d{8}$/ : /^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$/;
  const [lo, hi, ...rest] = value.split("-");
  const bad = () => new DicomwebError(400, `${name}: "${value}" is not a ${kind} or ${kind} range`);
  if (rest.length || (hi === undefined && !valid.test(lo))) throw bad();
  if ((lo && !valid.test(lo)) || (hi && !valid.test(hi))) throw bad();
  // Times compare on HHMMSS; a partial upper bound includes its whole minute or hour.
  const norm = (v: string, upper: boolean) =>
    kind === "date" ? v : (v.split(".")[0] + (upper ? "999999" : "000000")).slice(0, 6);
  // A stored TM may be partial (`0727` is 07:27:00): pad it to HHMMSS like the bounds.
  const expr = kind === "date" ? col : `rpad(substr(${col}, 1, 6), 6, '0')`;
  if (hi === undefined) {
    return kind === "date"
      ? `${expr} = ${bind(lo)}`
      : `${expr} BETWEEN ${bind(norm(lo, false))} AND ${bind(norm(lo, true))}`;
  }
  const parts: string[] = [];
  if (lo) parts.push(`${expr} >= ${bind(norm(lo, false))}`);
  if (hi) parts.push(`${expr} <= ${bind(norm(hi, true))}`);
  return parts.length ? `(${parts.join(" AND ")})` : "TRUE";
}

/**
 * The statement of a `level` query: its columns, the conditions `where` (series conditions of a
 * study query in an EXISTS), the level's order, then `limit` and `offset` as parameters.
 */
export function qidoSql(
  level: QidoLevel,
  where: string[],
  bind: Bind,
  limit: number,
  offset: number,
): string {
  const from = level === "study"
    ? "dicom_study st"
    : level === "series"
    ? "dicom_series se JOIN dicom_study st ON st.study_uid = se.study_uid"
    : "dicom_instance i JOIN dicom_series se ON se.series_uid = i.series_uid " +
      "JOIN dicom_study st ON st.study_uid = se.study_uid";
  const needsSeries = where.some((w) => w.includes("se."));
  const studyFrom = needsSeries && level === "study"
    ? "dicom_study st WHERE EXISTS " +
      "(SELECT 1 FROM dicom_series se WHERE se.study_uid = st.study_uid AND "
    : undefined;
  const order = level === "study"
    ? "st.study_date DESC NULLS LAST, st.study_time DESC NULLS LAST, st.study_uid"
    : level === "series"
    ? "se.series_number NULLS LAST, se.series_uid"
    : "i.instance_number NULLS LAST, i.sop_uid";
  const columns = level === "study"
    ? "st.study_uid, st.attrs, st.modalities, st.num_series, st.num_instances"
    : level === "series"
    ? "st.attrs, se.series_uid, se.study_uid, se.attrs AS series_attrs, se.num_instances"
    : "st.attrs, se.attrs AS series_attrs, i.study_uid, i.series_uid, i.sop_uid, i.metadata";
  let text: string;
  if (studyFrom) {
    const seriesConds = where.filter((w) => w.includes("se."));
    const studyConds = where.filter((w) => !w.includes("se."));
    text = `SELECT ${columns} FROM ${studyFrom}${seriesConds.join(" AND ")})` +
      (studyConds.length ? ` AND ${studyConds.join(" AND ")}` : "");
  } else {
    text = `SELECT ${columns} FROM ${from}` + (where.length ? ` WHERE ${where.join(" AND ")}` : "");
  }
  text += ` ORDER BY ${order} LIMIT ${bind(limit)} OFFSET ${bind(offset)}`;
  return text;
}
