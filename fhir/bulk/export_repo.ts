/**
 * @module The SQL of FHIR Bulk Data `$export` (migration 019): the `bulk_export` jobs (insert,
 * claim with FOR UPDATE SKIP LOCKED, lease renewal with checkpoints, completion, cancellation,
 * removal) and the statements that read the resources to export, a page at a time by the
 * `resource` table's keys `(type, last_updated, rid)` (its `resource_type_updated` index), never
 * by OFFSET.
 */
import type { Db, Sql } from "../../db/db.ts";
import { filterSql, Params } from "../search/sql.ts";
import type { Filter } from "../search/model.ts";
import type { ExportPlan, ExportProgress, OutputFile, ScanKey } from "./model.ts";

export type ExportState = "queued" | "running" | "completed" | "failed" | "cancelled";

export interface ExportRow {
  id: string;
  owner: string;
  state: ExportState;
  request: string;
  plan: ExportPlan;
  transactionTime: string;
  progress: ExportProgress;
  output: OutputFile[];
  errors: string[];
  message?: string;
  attempts: number;
  leaseToken?: string;
  createdAt: string;
  finishedAt?: string;
  expiresAt?: string;
}

const COLUMNS = `id, owner, state, request, plan, transaction_time, progress, output, errors,
  message, attempts, lease_token, created_at, finished_at, expires_at`;

function json<T>(value: unknown): T {
  return (typeof value === "string" ? JSON.parse(value) : value) as T;
}

function iso(value: unknown): string {
  return new Date(value as string | Date).toISOString();
}

function rowOf(r: Record<string, unknown>): ExportRow {
  return {
    id: String(r.id),
    owner: String(r.owner),
    state: r.state as ExportState,
    request: String(r.request),
    plan: json<ExportPlan>(r.plan),
    transactionTime: iso(r.transaction_time),
    progress: json<ExportProgress>(r.progress),
    output: json<OutputFile[]>(r.output),
    errors: json<string[]>(r.errors),
    message: r.message == null ? undefined : String(r.message),
    attempts: Number(r.attempts),
    leaseToken: r.lease_token == null ? undefined : String(r.lease_token),
    createdAt: iso(r.created_at),
    finishedAt: r.finished_at == null ? undefined : iso(r.finished_at),
    expiresAt: r.expires_at == null ? undefined : iso(r.expires_at),
  };
}

export async function insertExport(
  sql: Sql,
  job: {
    id: string;
    owner: string;
    request: string;
    plan: ExportPlan;
    transactionTime: string;
    errors: string[];
  },
): Promise<void> {
  await sql.query(
    `INSERT INTO bulk_export (id, owner, request, plan, transaction_time, errors)
     VALUES ($1, $2, $3, $4::jsonb, $5::timestamptz, $6::jsonb)`,
    [
      job.id,
      job.owner,
      job.request,
      JSON.stringify(job.plan),
      job.transactionTime,
      JSON.stringify(job.errors),
    ],
  );
}

export async function findExport(sql: Sql, id: string): Promise<ExportRow | undefined> {
  const [r] = await sql.query(`SELECT ${COLUMNS} FROM bulk_export WHERE id = $1`, [id]);
  return r ? rowOf(r) : undefined;
}

/**
 * Claims up to `limit` due jobs: a queued one, a running one whose lease ran out (its replica
 * stopped), or a finished one past its expiry (to be removed). Each gets a new lease token and is
 * leased for `leaseMs`.
 */
export async function claimExports(
  sql: Sql,
  limit: number,
  leaseMs: number,
): Promise<ExportRow[]> {
  if (limit <= 0) return [];
  const rows = await sql.query(
    `UPDATE bulk_export SET lease_token = md5(random()::text || clock_timestamp()::text),
       attempts = attempts + CASE WHEN state IN ('queued', 'running') THEN 1 ELSE 0 END,
       state = CASE WHEN state = 'queued' THEN 'running' ELSE state END,
       due_at = now() + make_interval(secs => $2::float8 / 1000)
     WHERE id IN (
       SELECT id FROM bulk_export WHERE due_at <= now()
       ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED)
     RETURNING ${COLUMNS}`,
    [limit, leaseMs],
  );
  return rows.map(rowOf);
}

/** Milliseconds until the next job falls due; undefined when there is none. */
export async function nextExportDueIn(sql: Sql): Promise<number | undefined> {
  const [r] = await sql.query<{ ms: number | null }>(
    `SELECT (extract(epoch FROM min(due_at) - now()) * 1000)::float8 AS ms FROM bulk_export`,
  );
  return r?.ms == null ? undefined : Number(r.ms);
}

/**
 * Renews the lease of a running job and checkpoints its progress (and its files, when given).
 * False when the job is no longer this worker's: cancelled, removed, or claimed by another.
 */
export async function renewExport(
  sql: Sql,
  id: string,
  token: string,
  leaseMs: number,
  progress: ExportProgress,
  output?: OutputFile[],
): Promise<boolean> {
  const p = new Params([id, token, leaseMs, JSON.stringify(progress)]);
  const files = output ? `, output = ${p.add(JSON.stringify(output), "::jsonb")}` : "";
  const rows = await sql.query(
    `UPDATE bulk_export SET due_at = now() + make_interval(secs => $3::float8 / 1000),
       progress = $4::jsonb${files}
     WHERE id = $1 AND lease_token = $2 AND state = 'running' RETURNING 1 AS ok`,
    p.values,
  );
  return rows.length > 0;
}

/** Marks a running job completed (false when it is no longer this worker's). */
export async function completeExport(
  sql: Sql,
  id: string,
  token: string,
  done: { progress: ExportProgress; output: OutputFile[]; errors: string[]; retentionMs: number },
): Promise<boolean> {
  const rows = await sql.query(
    `UPDATE bulk_export SET state = 'completed', progress = $3::jsonb, output = $4::jsonb,
       errors = $5::jsonb, finished_at = now(),
       expires_at = now() + make_interval(secs => $6::float8 / 1000), due_at = now() + make_interval(secs => $6::float8 / 1000),
       lease_token = NULL
     WHERE id = $1 AND lease_token = $2 AND state = 'running' RETURNING 1 AS ok`,
    [
      id,
      token,
      JSON.stringify(done.progress),
      JSON.stringify(done.output),
      JSON.stringify(done.errors),
      done.retentionMs,
    ],
  );
  return rows.length > 0;
}

/** Marks a running job failed, kept (with its message) until `retentionMs` from now. */
export async function failExport(
  sql: Sql,
  id: string,
  token: string,
  message: string,
  retentionMs: number,
): Promise<void> {
  await sql.query(
    `UPDATE bulk_export SET state = 'failed', message = $3, finished_at = now(),
       expires_at = now() + make_interval(secs => $4::float8 / 1000), due_at = now() + make_interval(secs => $4::float8 / 1000),
       lease_token = NULL
     WHERE id = $1 AND lease_token = $2 AND state = 'running'`,
    [id, token, message, retentionMs],
  );
}

/** Gives a running job back to be claimed again in `delayMs` (a dependency was down). */
export async function releaseExport(
  sql: Sql,
  id: string,
  token: string,
  delayMs: number,
): Promise<void> {
  await sql.query(
    `UPDATE bulk_export SET lease_token = NULL,
       due_at = now() + make_interval(secs => $3::float8 / 1000)
     WHERE id = $1 AND lease_token = $2 AND state = 'running'`,
    [id, token, delayMs],
  );
}

/**
 * Cancels a job (any state but cancelled): it is removed, with its files, after `graceMs` (long
 * enough for a worker still writing to notice). False when there is no such job to cancel.
 */
export async function cancelExport(sql: Sql, id: string, graceMs: number): Promise<boolean> {
  const rows = await sql.query(
    `UPDATE bulk_export SET state = 'cancelled', lease_token = NULL, finished_at = now(),
       expires_at = now() + make_interval(secs => $2::float8 / 1000), due_at = now() + make_interval(secs => $2::float8 / 1000)
     WHERE id = $1 AND state <> 'cancelled' RETURNING 1 AS ok`,
    [id, graceMs],
  );
  return rows.length > 0;
}

/** Removes a finished job's row (its files are removed first), if it is still this claim's. */
export async function deleteExport(sql: Sql, id: string, token: string): Promise<void> {
  await sql.query(`DELETE FROM bulk_export WHERE id = $1 AND lease_token = $2`, [id, token]);
}

/** What one type's scan reads: its snapshot, `_since`, the compartments and the filters. */
export interface ResourceScan {
  type: string;
  /** `last_updated <= transactionTime`: nothing written after the kick-off. */
  transactionTime: string;
  /** `last_updated > since`. */
  since?: string;
  /**
   * Only resources in a patient's compartment: of these patients, or of any patient when
   * `patients` is absent. `codes`: the type's compartment parameters (none for Patient itself).
   */
  compartment?: { codes: string[]; patients?: string[] };
  /** Search filters, AND-ed (the caller's compartment and scope queries, `_typeFilter`). */
  filters: Filter[];
}

function scanWhere(scan: ResourceScan, p: Params): string {
  const conds = [
    `r.type = ${p.add(scan.type)}`,
    `NOT r.deleted`,
    `r.last_updated <= ${p.add(scan.transactionTime, "::timestamptz")}`,
  ];
  if (scan.since) conds.push(`r.last_updated > ${p.add(scan.since, "::timestamptz")}`);
  const c = scan.compartment;
  if (c) {
    if (scan.type === "Patient") {
      if (c.patients) conds.push(`r.id = ANY(${p.add(c.patients, "::text[]")})`);
    } else if (!c.codes.length) {
      conds.push("FALSE");
    } else {
      const codes = p.add(c.codes, "::text[]");
      conds.push(
        c.patients
          ? `r.rid IN (SELECT m.rid FROM sp_reference m WHERE m.type = ${
            p.add(scan.type)
          } AND m.code = ANY(${codes}) AND m.target_type = 'Patient' AND m.target_id = ANY(${
            p.add(c.patients, "::text[]")
          }))`
          : `EXISTS (SELECT 1 FROM sp_reference m WHERE m.rid = r.rid AND m.code = ANY(${codes})
               AND m.target_type = 'Patient')`,
      );
    }
  }
  for (const f of scan.filters) conds.push(filterSql(f, "r", p));
  return conds.join(" AND ");
}

/** How many resources of each type lie in the snapshot (before compartments and filters). */
export async function snapshotCounts(
  sql: Sql,
  types: string[],
  transactionTime: string,
  since?: string,
): Promise<Map<string, number>> {
  const p = new Params([types, transactionTime]);
  const sinceCond = since ? ` AND last_updated > ${p.add(since, "::timestamptz")}` : "";
  const rows = await sql.query<{ type: string; n: number }>(
    `SELECT type, count(*)::int AS n FROM resource
     WHERE type = ANY($1::text[]) AND NOT deleted AND last_updated <= $2::timestamptz${sinceCond}
     GROUP BY type`,
    p.values,
  );
  return new Map(rows.map((r) => [r.type, Number(r.n)]));
}

/** How many resources one type's scan matches. */
export async function countScan(sql: Sql, scan: ResourceScan): Promise<number> {
  const p = new Params();
  const where = scanWhere(scan, p);
  const [r] = await sql.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM resource r WHERE ${where}`,
    p.values,
  );
  return Number(r.n);
}

/**
 * The next `limit` resources of a scan after `after`, in `(last_updated, rid)` order: their JSON
 * text as stored (one line each) and their keys.
 */
export async function scanPage(
  db: Db,
  scan: ResourceScan,
  after: ScanKey | undefined,
  limit: number,
): Promise<{ lines: string[]; keys: ScanKey[] }> {
  const p = new Params();
  const where = scanWhere(scan, p);
  const keyset = after
    ? ` AND (r.last_updated, r.rid) > (${p.add(after.updated, "::timestamptz")}, ${
      p.add(after.rid, "::bigint")
    })`
    : "";
  // Read in index order, whatever the statistics say: with stale ones (PGlite never analyzes; a
  // table just loaded) the planner takes a bitmap scan of every row left and sorts them for each
  // page, which makes a type's export quadratic. In index order each page reads on from the last.
  const rows = await db.transaction(async (tx) => {
    await tx.query("SET LOCAL enable_bitmapscan = off");
    await tx.query("SET LOCAL enable_sort = off");
    return await tx.query<{ rid: string; updated: string; body: string }>(
      `SELECT r.rid::text AS rid, r.last_updated::text AS updated, r.content::text AS body
       FROM resource r WHERE ${where}${keyset}
       ORDER BY r.last_updated, r.rid LIMIT ${p.add(limit, "::int")}`,
      p.values,
    );
  });
  return {
    lines: rows.map((r) => r.body),
    keys: rows.map((r) => ({ updated: String(r.updated), rid: String(r.rid) })),
  };
}

/**
 * The next `limit` resources of `types` deleted after `since` and by `transactionTime`, in
 * `(last_updated, rid)` order after `after`: what a `_since` export lists as `deleted`.
 */
export async function deletedPage(
  sql: Sql,
  q: { types: string[]; since: string; transactionTime: string },
  after: ScanKey | undefined,
  limit: number,
): Promise<{ refs: string[]; keys: ScanKey[] }> {
  const p = new Params([q.types, q.since, q.transactionTime]);
  const keyset = after
    ? ` AND (last_updated, rid) > (${p.add(after.updated, "::timestamptz")}, ${
      p.add(after.rid, "::bigint")
    })`
    : "";
  const rows = await sql.query<{ rid: string; updated: string; type: string; id: string }>(
    `SELECT rid::text AS rid, last_updated::text AS updated, type, id FROM resource
     WHERE type = ANY($1::text[]) AND deleted AND last_updated > $2::timestamptz
       AND last_updated <= $3::timestamptz${keyset}
     ORDER BY last_updated, rid LIMIT ${p.add(limit, "::int")}`,
    p.values,
  );
  return {
    refs: rows.map((r) => `${r.type}/${r.id}`),
    keys: rows.map((r) => ({ updated: String(r.updated), rid: String(r.rid) })),
  };
}
