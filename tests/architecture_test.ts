/**
 * @module The layering of `docs/ARCHITECTURE.md`, checked on the real module graph: every import
 * between parts is one the rule table allows, nothing but the composition root imports routes/,
 * no cycles between parts, and none between the files of the FHIR core. A broken rule is named
 * with its file and line. The checker itself is tried on a small graph that breaks each rule.
 */
import assert from "node:assert/strict";
import {
  cycles,
  type Graph,
  importsOf,
  partOf,
  PARTS,
  readGraph,
  sqlLine,
  strayedSql,
  summary,
  violations,
} from "../scripts/module_graph.ts";

const ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");

function fileCycles(g: Graph, prefix: string): string[][] {
  const edges = g.imports.filter((i) => i.from.startsWith(prefix) && i.to.startsWith(prefix))
    .map((i) => [i.from, i.to] as [string, string]);
  return cycles(edges);
}

Deno.test("every import between parts is one the rule table allows", async () => {
  const g = await readGraph(ROOT);
  assert.deepEqual(violations(g), []);
});

Deno.test("no cycles between parts, and no import runs back up the table", async () => {
  const s = summary(await readGraph(ROOT));
  assert.deepEqual(s.cycles, []);
  assert.deepEqual(s.up, []);
});

Deno.test("no cycles between the files of the FHIR core", async () => {
  assert.deepEqual(fileCycles(await readGraph(ROOT), "fhir/"), []);
});

Deno.test("the sidecar's module graph stays out of the API's storage, routes, auth and FHIR", async () => {
  const g = await readGraph(ROOT);
  const reach = new Set<string>(["sidecar/main.ts"]);
  for (let grew = true; grew;) {
    grew = false;
    for (const i of g.imports) {
      if (reach.has(i.from) && !reach.has(i.to)) (reach.add(i.to), grew = true);
    }
  }
  const parts = new Set([...reach].map((f) => partOf(f)));
  for (const p of ["db", "routes", "auth", "fhir", "dicom", "analysis"]) {
    assert.deepEqual(parts.has(p), false, `the sidecar reaches ${p}/`);
  }
});

Deno.test("SQL is written only in db/ and in each concern's repo.ts, *_repo.ts, sql.ts or *_sql.ts", async () => {
  const g = await readGraph(ROOT);
  assert.deepEqual(await strayedSql(ROOT, g.files), []);
  // The check itself: statements found across lines, comments left out.
  assert.equal(sqlLine("const q = `\n  SELECT *\n  FROM resource`;"), 2);
  assert.equal(sqlLine("// SELECT * FROM resource\n/* DELETE FROM x */ const a = 1;"), undefined);
  assert.equal(sqlLine("await sql.query(`INSERT INTO audit_event (id) VALUES ($1)`);"), 1);
});

Deno.test("the checker names the file and line of each broken rule", () => {
  const files: Record<string, string> = {
    "db/repo.ts": 'import { x } from "../fhir/service.ts";\n',
    "fhir/service.ts": '// import "../routes/fhir.ts";\nimport type { y } from "../db/repo.ts";\n',
    "queue/jobs.ts": 'import "../routes/fhir.ts";\n',
    "sidecar/main.ts": '\n\nexport { z } from "../db/repo.ts";\n',
    "routes/fhir.ts": 'const m = await import("../app.ts");\n',
    "stray/x.ts": 'import "../db/repo.ts";\n',
  };
  const g: Graph = {
    files: Object.keys(files),
    imports: Object.entries(files).flatMap(([f, t]) => importsOf(f, t)),
    lines: new Map(),
  };
  assert.deepEqual(violations(g), [
    "db/repo.ts:1: db may not import fhir (fhir/service.ts)",
    "queue/jobs.ts:1: imports routes/fhir.ts; only the composition root may import routes/",
    "sidecar/main.ts:3: sidecar may not import db (db/repo.ts)",
    "routes/fhir.ts:1: routes may not import app (app.ts)",
    "stray/x.ts:1: the file belongs to no part of the rule table",
  ]);
  // db -> fhir -> db: one cycle between parts.
  assert.deepEqual(summary(g).cycles, [["db", "fhir"]]);
});

Deno.test("every part of the table holds files, and every part it may import exists", async () => {
  const g = await readGraph(ROOT);
  const names = new Set(PARTS.map((p) => p.name));
  for (const p of PARTS) {
    for (const m of p.may) {
      assert.deepEqual(names.has(m), true, `${p.name} may import unknown ${m}`);
    }
    assert.deepEqual(g.files.some((f) => partOf(f) === p.name), true, `no file in ${p.name}`);
  }
});
