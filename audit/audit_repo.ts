/**
 * @module SQL for the audit trail's table, `audit_event` (migration 008): the batched multi-row
 * INSERT of narrow rows, the read of one row by id, and the search's SELECT built from the parsed
 * conditions (in the order given), keyset-paged on (recorded, id).
 */
import { escapeLike, Params } from "../db/params.ts";
import type { Row, Sql } from "../db/db.ts";

/** The columns of a row, in the order `insertAuditRows` takes each row's values. */
const COLUMNS = [
  "id",
  "recorded",
  "type_code",
  "subtype",
  "action",
  "status",
  "agent",
  "agent_name",
  "address",
  "entity",
  "patient",
  "request_id",
  "query",
  "description",
];

/** One multi-row INSERT of narrow rows; the AuditEvent JSON is made when it is read. */
export async function insertAuditRows(sql: Sql, rows: unknown[][]): Promise<void> {
  const n = COLUMNS.length;
  const values = rows.map((_, r) =>
    `(${Array.from({ length: n }, (_, c) => `$${r * n + c + 1}`).join(", ")})`
  );
  await sql.query(
    `INSERT INTO audit_event (${COLUMNS.join(", ")}) VALUES ${values.join(", ")}
     ON CONFLICT (id) DO NOTHING`,
    rows.flat(),
  );
}

/** The stored row of one event, or undefined. */
export async function readAuditRow(sql: Sql, id: string): Promise<Row | undefined> {
  const rows = await sql.query(`SELECT * FROM audit_event WHERE id = $1`, [id]);
  return rows[0];
}

/** The column (or expression) each search parameter but `date` matches on. */
export const AUDIT_SEARCH_COLUMN: Record<string, string> = {
  agent: "agent",
  "agent-name": "agent_name",
  entity: "entity",
  patient: "patient",
  type: "type_code",
  subtype: "subtype",
  action: "action",
  // 0, 4, 8: made from the stored HTTP status.
  outcome: "(CASE WHEN status < 400 THEN '0' WHEN status < 500 THEN '4' ELSE '8' END)",
  address: "address",
};

/** A `date` search's comparison with the range [lo, hi) of the date given. */
export type AuditDateOp = "eq" | "gt" | "ge" | "lt" | "le";

/** One parsed search condition: a date range, or a parameter of `AUDIT_SEARCH_COLUMN`. */
export type AuditCondition =
  | { date: AuditDateOp; lo: string; hi: string }
  | { param: string; values: string[] };

export interface AuditRowQuery {
  conditions: AuditCondition[];
  /** Keyset position: rows after this one in the order asked for. */
  cursor?: { recorded: string; id: string };
  descending: boolean;
  /** Rows to return at most. */
  limit: number;
}

/** The rows matching every condition, newest (or oldest) first. */
export async function searchAuditRows(
  sql: Sql,
  q: AuditRowQuery,
): Promise<(Row & { recorded: string; id: string })[]> {
  const where: string[] = [];
  const params = new Params();
  const add = (v: unknown) => params.add(v);
  for (const c of q.conditions) {
    if ("date" in c) {
      const { lo, hi } = c;
      switch (c.date) {
        case "eq":
          where.push(`recorded >= ${add(lo)} AND recorded < ${add(hi)}`);
          break;
        case "gt":
          where.push(`recorded >= ${add(hi)}`);
          break;
        case "ge":
          where.push(`recorded >= ${add(lo)}`);
          break;
        case "lt":
          where.push(`recorded < ${add(lo)}`);
          break;
        case "le":
          where.push(`recorded < ${add(hi)}`);
          break;
      }
    } else {
      const { param: name, values } = c;
      where.push(
        name === "agent-name"
          ? `(${values.map((v) => `lower(agent_name) LIKE ${add(likePrefix(v))}`).join(" OR ")})`
          : `${AUDIT_SEARCH_COLUMN[name]} = ANY(${add(values)}::text[])`,
      );
    }
  }
  if (q.cursor) {
    const op = q.descending ? "<" : ">";
    where.push(
      `(recorded, id) ${op} (${add(q.cursor.recorded)}::timestamptz, ${add(q.cursor.id)})`,
    );
  }
  const order = q.descending ? "recorded DESC, id DESC" : "recorded ASC, id ASC";
  return await sql.query<Row & { recorded: string; id: string }>(
    `SELECT * FROM audit_event
      ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
      ORDER BY ${order} LIMIT ${q.limit}`,
    params.values,
  );
}

function likePrefix(v: string): string {
  return `${escapeLike(v.toLowerCase())}%`;
}
