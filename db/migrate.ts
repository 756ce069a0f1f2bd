/**
 * @module Applies `db/migrations/NNN_name.sql` in order, once each, recording them in
 * `schema_migration`. An advisory lock makes concurrent starters wait for the one that migrates.
 */
import type { Db } from "./db.ts";

const MIGRATIONS_DIR = new URL("./migrations/", import.meta.url);
const LOCK_KEY = 7_312_004_211;

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** Reads the migration files, sorted by number; rejects gaps and duplicates. */
export async function readMigrations(dir: URL = MIGRATIONS_DIR): Promise<Migration[]> {
  const found: Migration[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const m = /^(\d{3})_([a-z0-9_]+)\.sql$/.exec(entry.name);
    if (!entry.isFile || !m) continue;
    found.push({
      version: Number(m[1]),
      name: m[2],
      sql: await Deno.readTextFile(new URL(entry.name, dir)),
    });
  }
  found.sort((a, b) => a.version - b.version);
  found.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migration ${m.version}_${m.name}: expected ${i + 1}`);
  });
  return found;
}

/** Applies every migration not yet recorded; returns the names it applied. */
export async function migrate(db: Db, migrations?: Migration[]): Promise<string[]> {
  const all = migrations ?? await readMigrations();
  return await db.transaction(async (tx) => {
    await tx.query(`SELECT pg_advisory_xact_lock(${LOCK_KEY})`);
    await tx.query(
      `CREATE TABLE IF NOT EXISTS schema_migration (
         version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const done = new Set(
      (await tx.query<{ version: number }>(`SELECT version FROM schema_migration`))
        .map((r) => Number(r.version)),
    );
    const applied: string[] = [];
    for (const m of all) {
      if (done.has(m.version)) continue;
      try {
        for (const statement of splitStatements(m.sql)) await tx.query(statement);
      } catch (e) {
        throw new Error(`migration ${m.version}_${m.name} failed: ${(e as Error).message}`);
      }
      await tx.query(`INSERT INTO schema_migration (version, name) VALUES ($1, $2)`, [
        m.version,
        m.name,
      ]);
      applied.push(`${m.version}_${m.name}`);
    }
    return applied;
  });
}

/**
 * Splits a migration file into statements on `;` at line ends, except inside dollar-quoted bodies
 * (`$$ … $$`, `$tag$ … $tag$`: a function's PL/pgSQL).
 */
export function splitStatements(sql: string): string[] {
  const statements: string[] = [];
  let current = "";
  let quote: string | null = null;
  for (const line of sql.split("\n")) {
    const code: string = quote ? line : line.replace(/^\s*--.*$/, "");
    current += code + "\n";
    for (const [tag] of code.matchAll(/\$[A-Za-z_]*\$/g)) {
      if (quote === null) quote = tag;
      else if (tag === quote) quote = null;
    }
    if (quote === null && /;\s*$/.test(code)) {
      statements.push(current.trim().replace(/;$/, ""));
      current = "";
    }
  }
  if (current.trim()) statements.push(current.trim());
  return statements.filter(Boolean);
}
