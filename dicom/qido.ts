/**
 * @module QIDO-RS (PS3.18 10.6): studies, series and instances searched in the index with the
 * standard matching (single value, list of UIDs, `*`/`?` wildcards, date and time ranges,
 * universal matching), `limit`/`offset`, `includefield`. Fuzzy matching is not offered: asking
 * for it, or for a key this server cannot match on, is answered with a Warning header. The SQL is
 * made by `qido_sql.ts`.
 */
import type { Sql } from "../db/db.ts";
import { Params } from "../db/params.ts";
import { INSTANCE_TAGS, pick, SERIES_TAGS, tagOf } from "./attributes.ts";
import type { DicomJson } from "./codec/dicom_json.ts";
import { DicomwebError } from "./errors.ts";
import { KEYS, matchCondition, type QidoLevel, qidoSql, targetConditions } from "./qido_sql.ts";

export type { QidoLevel };

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

const RANK: Record<QidoLevel, number> = { study: 0, series: 1, instance: 2 };
const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;

export async function qido(sql: Sql, req: QidoRequest): Promise<QidoResult> {
  const warnings: string[] = [];
  const params = new Params();
  const bind = (v: unknown) => params.add(v);
  const where = targetConditions(req, bind);
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

  const text = qidoSql(req.level, where, bind, limit, offset);
  const rows = await sql.query(text, params.values);
  const results = rows.map((r) => shape(req, r, include, includeAll));
  return { results, warnings };
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
