/**
 * @module The module graph of the service's own code, read from its import statements, and the
 * layering rules of `docs/ARCHITECTURE.md` checked against it (`tests/architecture_test.ts`).
 *
 *   deno run --allow-read scripts/module_graph.ts [--by-folder]   prints the counts and every
 *   broken rule (`--by-folder`: the counts with every top-level folder and root file a part)
 *
 * A file belongs to the part whose folder is the longest prefix of its path (`PARTS`); the root's
 * composition files are the part `app`. An arrow is a pair of parts with at least one import
 * (`import … from`, `export … from`, `import "…"`, `import("…")` with a literal; type-only imports
 * count too: they tie the code just as much). Bare specifiers (npm packages) are not ours.
 */

/** The parts, top to bottom: a part may import only those listed in its `may` (and itself). */
export interface Part {
  /** Folder with a trailing slash, or a root file. */
  paths: string[];
  name: string;
  /** What it holds, for the rule table. */
  holds: string;
  may: string[];
}

export const PARTS: Part[] = [
  {
    name: "app",
    paths: ["main.ts", "app.ts", "services.ts"],
    holds: "the composition root: builds the services, mounts the routes, starts the process " +
      "(and the in-process analysis worker of the embedded default)",
    may: [
      "routes",
      "sidecar",
      "analysis",
      "dicom",
      "observability",
      "fhir",
      "auth",
      "audit",
      "ratelimit",
      "queue",
      "codec",
      "db",
      "platform",
    ],
  },
  {
    name: "routes",
    paths: ["routes/"],
    holds: "HTTP handlers: read the request, call a service, write the response",
    may: [
      "analysis",
      "dicom",
      "observability",
      "fhir",
      "auth",
      "audit",
      "ratelimit",
      "queue",
      "codec",
      "db",
      "platform",
    ],
  },
  {
    name: "training",
    paths: ["sidecar/train/"],
    holds: "model training and evaluation scripts (not shipped in the sidecar's image)",
    may: ["sidecar", "synth", "queue", "codec", "platform"],
  },
  {
    name: "sidecar",
    paths: ["sidecar/"],
    holds: "the inference worker: models, pre- and post-processing, ONNX Runtime, its API client",
    may: ["observability", "queue", "codec", "platform"],
  },
  {
    name: "analysis",
    paths: ["analysis/"],
    holds: "the AI pipeline's API side: $analyze, rules, Tasks, findings exports",
    may: ["dicom", "observability", "fhir", "auth", "queue", "codec", "db", "platform"],
  },
  {
    name: "dicom",
    paths: ["dicom/"],
    holds: "DICOMweb: STOW, QIDO, WADO, the instance index, stability, ImagingStudy sync",
    may: ["fhir", "auth", "codec", "db", "platform"],
  },
  {
    name: "observability",
    paths: ["observability/"],
    holds: "request statistics, route classes, metrics, traces",
    may: ["fhir", "platform"],
  },
  {
    name: "fhir",
    paths: ["fhir/"],
    holds: "the FHIR R4 core: dispatch, access, validation, search, history, subscriptions",
    may: ["auth", "audit", "db", "platform"],
  },
  {
    name: "auth",
    paths: ["auth/"],
    holds: "OAuth 2 / SMART: tokens, clients, users, scopes, access decisions",
    may: ["audit", "ratelimit", "queue", "db", "platform"],
  },
  {
    name: "audit",
    paths: ["audit/"],
    holds: "the audit trail (AuditEvent) and its search",
    may: ["db", "platform"],
  },
  {
    name: "ratelimit",
    paths: ["ratelimit/"],
    holds: "per-client request limits (in memory or in Redis)",
    may: ["platform"],
  },
  {
    name: "queue",
    paths: ["queue/"],
    holds: "the contract between the API and the sidecar (the job, models as Devices, the " +
      "worker's scope) and the queues that carry jobs (Redis, memory)",
    may: ["platform"],
  },
  {
    name: "synth",
    paths: ["dicom/synth/"],
    holds:
      "synthetic CT studies with ground truth (`deno task synth`, tests, benches, training); " +
      "the CLIs' sign-in",
    may: ["codec", "platform"],
  },
  {
    name: "codec",
    paths: ["dicom/codec/"],
    holds: "DICOM and its containers as bytes: parse, dataset, pixels, multipart, DICOM JSON, " +
      "NIfTI, ZIP, the SEG and SR writers; no storage",
    may: ["platform"],
  },
  {
    name: "db",
    paths: ["db/"],
    holds: "Postgres and PGlite, migrations, repositories, object stores",
    may: ["platform"],
  },
  {
    name: "platform",
    paths: ["platform/"],
    holds: "configuration, the logger, the Redis link, errors and OperationOutcome, outbound HTTP",
    may: [],
  },
  {
    name: "ui",
    paths: ["static/"],
    holds: "the Preact web UI (a workspace member of its own, built into a bundle)",
    may: [],
  },
];

/** Not the service's own code. */
const SKIP = [
  "node_modules/",
  "vendor/",
  "tests/",
  "bench/",
  "scripts/",
  ".git/",
  "data/",
  "docs/",
];

export interface Import {
  from: string;
  to: string;
  line: number;
}

/** The part a repository path belongs to (longest prefix), or undefined when it has none. */
export function partOf(path: string, parts: Part[] = PARTS): string | undefined {
  let best: { name: string; len: number } | undefined;
  for (const p of parts) {
    for (const prefix of p.paths) {
      const hit = prefix.endsWith("/") ? path.startsWith(prefix) : path === prefix;
      if (hit && (!best || prefix.length > best.len)) best = { name: p.name, len: prefix.length };
    }
  }
  return best?.name;
}

const IMPORT = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)["']([^"']+)["']/gm;

/** The relative imports of one source text, resolved to repository paths. */
/** `text` with its comments blanked (line breaks kept, so line numbers stay). */
function stripComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, (m) => m.replace(/[^\n]/g, " "))
    .replace(/(^|[^:"'`])\/\/.*$/gm, (m, p) => p + " ".repeat(m.length - p.length));
}

export function importsOf(path: string, text: string): Import[] {
  // Comments would otherwise count (`// import "x"` examples in docs).
  const code = stripComments(text);
  const out: Import[] = [];
  for (const m of code.matchAll(IMPORT)) {
    const spec = m[1];
    if (!spec.startsWith(".")) continue;
    const to = new URL(spec, `file:///${path}`).pathname.slice(1);
    const line = code.slice(0, m.index).split("\n").length;
    out.push({ from: path, to, line });
  }
  return out;
}

/** Every .ts/.tsx file of the service's own code, as repository paths. */
export async function sourceFiles(root: string): Promise<string[]> {
  const files: string[] = [];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(`${root}/${dir}`)) {
      const path = dir ? `${dir}/${e.name}` : e.name;
      if (e.isDirectory) {
        if (!SKIP.includes(`${path}/`) && !e.name.startsWith(".")) await walk(path);
      } else if (/\.tsx?$/.test(e.name)) files.push(path);
    }
  };
  await walk("");
  return files.sort();
}

export interface Graph {
  files: string[];
  imports: Import[];
  lines: Map<string, number>;
}

export async function readGraph(root: string): Promise<Graph> {
  const files = await sourceFiles(root);
  const imports: Import[] = [];
  const lines = new Map<string, number>();
  for (const f of files) {
    const text = await Deno.readTextFile(`${root}/${f}`);
    lines.set(f, text.split("\n").length - (text.endsWith("\n") ? 1 : 0));
    imports.push(...importsOf(f, text));
  }
  return { files, imports, lines };
}

/** Distinct part → part arrows, with one import that makes each. */
export function arrows(g: Graph, parts: Part[] = PARTS): Map<string, Import> {
  const out = new Map<string, Import>();
  for (const i of g.imports) {
    const a = partOf(i.from, parts), b = partOf(i.to, parts);
    if (!a || !b || a === b) continue;
    const key = `${a} -> ${b}`;
    if (!out.has(key)) out.set(key, i);
  }
  return out;
}

/** Strongly connected components with more than one node (Tarjan). */
export function cycles(edges: [string, string][]): string[][] {
  const adj = new Map<string, string[]>();
  for (const [a, b] of edges) {
    adj.set(a, [...(adj.get(a) ?? []), b]);
    if (!adj.has(b)) adj.set(b, []);
  }
  let index = 0;
  const idx = new Map<string, number>(), low = new Map<string, number>();
  const stack: string[] = [], on = new Set<string>(), out: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of adj.get(v)!) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1) out.push(comp.sort());
    }
  };
  for (const v of adj.keys()) if (!idx.has(v)) visit(v);
  return out;
}

/** Imports that break the table: a part importing one not in its `may`, or one outside any part. */
export function violations(g: Graph, parts: Part[] = PARTS): string[] {
  const byName = new Map(parts.map((p) => [p.name, p]));
  const out: string[] = [];
  for (const i of g.imports) {
    const a = partOf(i.from, parts), b = partOf(i.to, parts);
    if (!a) {
      out.push(`${i.from}:${i.line}: the file belongs to no part of the rule table`);
      continue;
    }
    if (!b) {
      out.push(`${i.from}:${i.line}: imports ${i.to}, which belongs to no part`);
      continue;
    }
    if (a === b) continue;
    if (b === "routes" && a !== "app") {
      out.push(
        `${i.from}:${i.line}: imports ${i.to}; only the composition root may import routes/`,
      );
    } else if (!byName.get(a)!.may.includes(b)) {
      out.push(`${i.from}:${i.line}: ${a} may not import ${b} (${i.to})`);
    }
  }
  return out;
}

/** Where SQL may be written: the database layer, and a concern's own repository or SQL builder. */
export function maySql(path: string): boolean {
  return path.startsWith("db/") || /(^|\/|_)(repo|sql)\.ts$/.test(path);
}

const SQL =
  /\b(?:SELECT\s+[\w*(]|(?:INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|ON\s+CONFLICT|CREATE\s+(?:TABLE|INDEX|FUNCTION)|ALTER\s+TABLE|DROP\s+(?:TABLE|SCHEMA))\b)/;

/** The first line of SQL in a source text (comments left out), or undefined when there is none. */
export function sqlLine(text: string): number | undefined {
  const code = stripComments(text);
  const m = SQL.exec(code);
  return m ? code.slice(0, m.index).split("\n").length : undefined;
}

/** Files that write SQL but may not (`maySql`), as `file:line`. */
export async function strayedSql(root: string, files: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const f of files) {
    if (maySql(f) || f.startsWith("static/")) continue;
    const line = sqlLine(await Deno.readTextFile(`${root}/${f}`));
    if (line !== undefined) {
      out.push(`${f}:${line}: SQL outside db/, repo.ts, *_repo.ts, sql.ts and *_sql.ts`);
    }
  }
  return out;
}

/** Counts for the issue's before/after table. */
export function summary(g: Graph, parts: Part[] = PARTS) {
  const rank = new Map(parts.map((p, n) => [p.name, n]));
  const a = arrows(g, parts);
  const edges = [...a.keys()].map((k) => k.split(" -> ") as [string, string]);
  const up = edges.filter(([x, y]) => rank.get(y)! < rank.get(x)!);
  return {
    arrows: edges.length,
    up: up.map(([x, y]) => `${x} -> ${y}`),
    cycles: cycles(edges),
    long: [...g.lines].filter(([, n]) => n > 500).map(([f, n]) => `${f} (${n})`),
  };
}

if (import.meta.main) {
  const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  const g = await readGraph(root);
  // --by-folder: every top-level folder and root file a part of its own, in alphabetical order
  // (for comparing layouts; "running back up" then has no meaning).
  const byFolder = Deno.args.includes("--by-folder");
  const parts: Part[] = byFolder
    ? [...new Set(g.files.map((f) => f.includes("/") ? f.split("/")[0] + "/" : f))].map((p) => ({
      name: p,
      paths: [p],
      holds: "",
      may: [],
    }))
    : PARTS;
  const s = summary(g, parts);
  console.log(`${g.files.length} files, ${g.imports.length} relative imports`);
  console.log(`arrows between parts: ${s.arrows}`);
  console.log(`running back up: ${s.up.length}${s.up.length ? `: ${s.up.join(", ")}` : ""}`);
  console.log(`cycles: ${s.cycles.length}${s.cycles.map((c) => `\n  ${c.join(" ")}`).join("")}`);
  console.log(
    `files over 500 lines: ${s.long.length}${s.long.length ? `: ${s.long.join(", ")}` : ""}`,
  );
  const sql = await strayedSql(root, g.files);
  console.log(
    `files writing SQL outside db/, repo.ts, *_repo.ts, sql.ts and *_sql.ts: ${sql.length}`,
  );
  for (const x of sql) console.log(`  ${x}`);
  if (byFolder) Deno.exit(0);
  const v = violations(g);
  console.log(`broken rules: ${v.length}`);
  for (const x of v) console.log(`  ${x}`);
}
