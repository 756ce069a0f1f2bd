/**
 * @module QIDO-RS (PS3.18 10.6): studies, series and instances searched in the index with the
 * standard matching (single value, list of UIDs, `*`/`?` wildcards, date and time ranges,
 * universal matching), `limit`/`offset`, `includefield`. Fuzzy matching is not offered: asking
 * for it, or for a key this server cannot match on, is answered with a Warning header.
 */
import type { Sql } from "../db/db.ts";
import { INSTANCE_TAGS, pick, SERIES_TAGS, tagOf } from "./attributes.ts";
import type { DicomJson } from "./codec/dicom_json.ts";
import { DicomwebError } from "./errors.ts";

import { patientStudyUids } from "./patient_studies.ts";

export type QidoLevel = "study" | "series" | "instance";

export interface QidoRequest {
  level: QidoLevel;
  studyUid?: string;
  seriesUid?: string;
  params: URLSearchParams;
  /** The DICOMweb base, for RetrieveURL. */
  base: string;
  /** Only the studies of this Patient (id) — a patient-bound caller's compartment. */
  patient?: string;
}

export interface QidoResult {
  results: DicomJson[];
  warnings: string[];
}

type Match = "text" | "pn" | "uid" | "date" | "time" | "int" | "modalities";
interface KeyDef {
  level: QidoLevel;
  column: string;
  match: Match;
}

const KEYS: Record<string, KeyDef> = {
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
const RANK: Record<QidoLevel, number> = { study: 0, series: 1, instance: 2 };
const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;

export async function qido(sql: Sql, req: QidoRequest): Promise<QidoResult> {
  const warnings: string[] = [];
  const where: string[] = [];
  const params: unknown[] = [];
  const bind = (v: unknown) => {
    params.push(v);
    return `$${params.length}`;
  };
  if (req.studyUid) where.push(`st.study_uid = ${bind(req.studyUid)}`);
  if (req.patient !== undefined) {
    where.push(`st.study_uid IN (${patientStudyUids(bind, req.patient)})`);
  }
  if (req.seriesUid) where.push(`se.series_uid = ${bind(req.seriesUid)}`);
  let limit = DEFAULT_LIMIT;
  let offset = 0;
  const include = new Set<string>();
  let includeAll = false;
  for (const [name, raw] of req.params) {
    checkCharacters(name, name);
    checkCharacters(raw, name);
    if (name === "limit" || name === "offset") {
      const n = Number(raw);
      if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n)) {
        throw new DicomwebError(400, `${name} must be a non-negative integer, got "${raw}"`);
      }
      if (name === "limit") limit = Math.min(n, MAX_LIMIT);
      else offset = n;
      continue;
    }
    if (name === "includefield") {
      for (const field of raw.split(",")) {
        if (field === "all") includeAll = true;
        else {
          const tag = tagOf(field.trim());
          if (tag) include.add(tag);
          else warnings.push(`includefield ${field} is not a known attribute`);
        }
      }
      continue;
    }
    if (name === "fuzzymatching") {
      if (raw === "true") warnings.push("fuzzymatching is not supported; matching is exact");
      continue;
    }
    const tag = tagOf(name);
    const def = tag ? KEYS[tag] : undefined;
    if (!tag) throw new DicomwebError(400, `Unknown query key "${name}"`);
    if (!def || RANK[def.level] > RANK[req.level]) {
      warnings.push(`${name} is not supported as a matching key at the ${req.level} level`);
      continue;
    }
    const condition = matchCondition(def, raw, bind, name);
    if (condition) where.push(condition);
  }
  if (limit === 0) return { results: [], warnings };

  const from = req.level === "study"
    ? "dicom_study st"
    : req.level === "series"
    ? "dicom_series se JOIN dicom_study st ON st.study_uid = se.study_uid"
    : "dicom_instance i JOIN dicom_series se ON se.series_uid = i.series_uid JOIN dicom_study st ON st.study_uid = se.study_uid";
  const needsSeries = where.some((w) => w.includes("se."));
  const studyFrom = needsSeries && req.level === "study"
    ? "dicom_study st WHERE EXISTS (SELECT 1 FROM dicom_series se WHERE se.study_uid = st.study_uid AND "
    : undefined;
  const order = req.level === "study"
    ? "st.study_date DESC NULLS LAST, st.study_time DESC NULLS LAST, st.study_uid"
    : req.level === "series"
    ? "se.series_number NULLS LAST, se.series_uid"
    : "i.instance_number NULLS LAST, i.sop_uid";
  const columns = req.level === "study"
    ? "st.study_uid, st.attrs, st.modalities, st.num_series, st.num_instances"
    : req.level === "series"
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
  const rows = await sql.query(text, params);
  const results = rows.map((r) => shape(req, r, include, includeAll));
  return { results, warnings };
}

function matchCondition(
  def: KeyDef,
  raw: string,
  bind: (v: unknown) => string,
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
      const pattern = value.replace(/[\\%_]/g, (c) => `\\${c}`).replace(/\*/g, "%").replace(
        /\?/g,
        "_",
      );
      return `${target} LIKE ${bind(ci ? pattern.toUpperCase() : pattern)}`;
    }
  }
}

/**
 * Control characters other than ESC (which ISO 2022 code extensions use in PN, LO and SH values;
 * U+0000 among them, which Postgres text cannot hold) and unpaired surrogates occur in no value
 * or keyword this server can match on (PS3.5 6.1.2.3, 6.2): a key or value with one is a 400.
 */
// deno-lint-ignore no-control-regex
const FORBIDDEN_CHAR = /[\u0000-\u001A\u001C-\u001F]/;

function checkCharacters(text: string, name: string): void {
  const bad = FORBIDDEN_CHAR.exec(text);
  if (!bad && text.isWellFormed()) return;
  const shown = name.replace(/[^\x20-\x7e]/g, "?").slice(0, 64);
  const what = bad
    ? `the control character U+${bad[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}`
    : "an unpaired UTF-16 surrogate";
  throw new DicomwebError(400, `Query parameter "${shown}" contains ${what}`);
}

function rangeCondition(
  kind: "date" | "time",
  col: string,
  value: string,
  bind: (v: unknown) => string,
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

function shape(
  req: QidoRequest,
  r: Record<string, unknown>,
  include: Set<string>,
  includeAll: boolean,
): DicomJson {
  const study = JSON.parse(r.attrs as string) as DicomJson;
  const out: DicomJson = { ...study };
  const studyUid = (r.study_uid as string) ?? (study["0020000D"]?.Value?.[0] as string);
  if (req.level === "study") {
    const modalities = r.modalities as string[];
    out["00080061"] = { vr: "CS", ...(modalities.length ? { Value: modalities } : {}) };
    out["00201206"] = { vr: "IS", Value: [r.num_series as number] };
    out["00201208"] = { vr: "IS", Value: [r.num_instances as number] };
    out["00081190"] = { vr: "UR", Value: [`${req.base}/studies/${studyUid}`] };
  } else {
    Object.assign(out, JSON.parse(r.series_attrs as string));
    const seriesUrl = `${req.base}/studies/${studyUid}/series/${r.series_uid}`;
    if (req.level === "series") {
      out["00201209"] = { vr: "IS", Value: [r.num_instances as number] };
      out["00081190"] = { vr: "UR", Value: [seriesUrl] };
    } else {
      const metadata = JSON.parse(r.metadata as string) as DicomJson;
      const wanted = includeAll ? withoutBulk(metadata) : {
        ...pick(metadata, INSTANCE_TAGS),
        ...pick(metadata, [...include]),
      };
      Object.assign(out, wanted);
      out["00081190"] = { vr: "UR", Value: [`${seriesUrl}/instances/${r.sop_uid}`] };
    }
  }
  out["00080056"] = { vr: "CS", Value: ["ONLINE"] };
  if (req.level !== "instance" && include.size) {
    // Study and series rows hold only their own level's attributes; others are not available.
    for (const tag of include) if (!out[tag] && SERIES_TAGS.includes(tag)) continue;
  }
  return sortTags(out);
}

function withoutBulk(json: DicomJson): DicomJson {
  const out: DicomJson = {};
  for (const [tag, a] of Object.entries(json)) if (!a.BulkDataURI) out[tag] = a;
  return out;
}

function sortTags(json: DicomJson): DicomJson {
  const out: DicomJson = {};
  for (const tag of Object.keys(json).sort()) out[tag] = json[tag];
  return out;
}
