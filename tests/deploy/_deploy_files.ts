/**
 * @module Readers for the deploy files' test: YAML under deploy/, the variables platform/config.ts reads,
 * compose's `${VAR}` interpolation, Dockerfile instructions, .dockerignore patterns, HAProxy's
 * configuration, deno.json tasks and an entry point's local module graph.
 */
import { parseAllDocuments } from "yaml";

export const ROOT = new URL("../../", import.meta.url);
export const DEPLOY = new URL("deploy/", ROOT);

// deno-lint-ignore no-explicit-any
export type Doc = any;

export function readText(path: string): string {
  return Deno.readTextFileSync(new URL(path, ROOT));
}

export function exists(path: string): boolean {
  try {
    Deno.statSync(new URL(path, ROOT));
    return true;
  } catch {
    return false;
  }
}

/** Paths (relative to the repository root) of the files under `dir` whose name ends so. */
export function filesUnder(dir: string, suffix: RegExp): string[] {
  const found: string[] = [];
  const walk = (rel: string) => {
    for (const entry of Deno.readDirSync(new URL(rel, ROOT))) {
      const path = `${rel}${entry.name}`;
      if (entry.isDirectory) walk(`${path}/`);
      else if (suffix.test(entry.name)) found.push(path);
    }
  };
  walk(dir.endsWith("/") ? dir : `${dir}/`);
  return found.sort();
}

/**
 * Every document of a YAML file, as YAML 1.2 (what compose reads) and as YAML 1.1 (what
 * Kubernetes reads: there `on`, `yes` and unquoted numbers are not strings). Throws on any error.
 */
export function loadYaml(path: string): { docs: Doc[]; docs11: Doc[] } {
  const source = readText(path);
  const read = (version: "1.1" | "1.2") =>
    parseAllDocuments(source, { version, merge: true, uniqueKeys: true }).map((doc, i) => {
      const problems = [...doc.errors, ...doc.warnings];
      if (problems.length) {
        throw new Error(
          `${path} (document ${i + 1}): ${problems.map((e) => e.message).join("; ")}`,
        );
      }
      return doc.toJS({ maxAliasCount: 100 });
    }).filter((doc) => doc !== null && doc !== undefined);
  return { docs: read("1.2"), docs11: read("1.1") };
}

/** The environment variables platform/config.ts reads (`env.NAME`, `env["NAME"]`, `int("NAME", …)`, …). */
export function configVariables(): Set<string> {
  const source = readText("platform/config.ts");
  const names = new Set<string>();
  const patterns = [
    /\benv\.([A-Z][A-Z0-9_]*)\b/g,
    /\benv\[\s*["']([A-Z][A-Z0-9_]*)["']\s*\]/g,
    /\b(?:int|bool|num|str|list)\(\s*["']([A-Z][A-Z0-9_]*)["']/g,
  ];
  for (const pattern of patterns) {
    for (const m of source.matchAll(pattern)) names.add(m[1]);
  }
  return names;
}

/** One `${…}` or `$NAME` in a compose value. */
export interface Ref {
  name: string;
  /** "" (plain), ":-" / "-" (default), ":?" / "?" (required), ":+" / "+" (alternative). */
  op: string;
  arg: string;
}

/**
 * Compose's interpolation: `$$` is a `$`; `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
 * `${VAR:?message}`, `${VAR?message}`, `${VAR:+alt}` and `$VAR`, resolved against `vars`.
 */
export function interpolate(
  value: string,
  vars: Record<string, string> = {},
): { text: string; refs: Ref[]; literal: string } {
  const refs: Ref[] = [];
  let text = "";
  let literal = "";
  for (let i = 0; i < value.length;) {
    if (value[i] !== "$") {
      text += value[i];
      literal += value[i++];
      continue;
    }
    if (value[i + 1] === "$") {
      text += "$";
      literal += "$";
      i += 2;
      continue;
    }
    let ref: Ref | undefined;
    if (value[i + 1] === "{") {
      const end = value.indexOf("}", i + 2);
      if (end < 0) throw new Error(`unclosed \${ in ${value}`);
      const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([\s\S]*))?$/.exec(value.slice(i + 2, end));
      if (!m) throw new Error(`bad interpolation in ${value}`);
      ref = { name: m[1], op: m[2] ?? "", arg: m[3] ?? "" };
      i = end + 1;
    } else {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(value.slice(i + 1));
      if (!m) {
        text += "$";
        literal += "$";
        i++;
        continue;
      }
      ref = { name: m[0], op: "", arg: "" };
      i += 1 + m[0].length;
    }
    refs.push(ref);
    const set = ref.name in vars && (!ref.op.startsWith(":") || vars[ref.name] !== "");
    if (ref.op.endsWith("-")) text += set ? vars[ref.name] : ref.arg;
    else if (ref.op.endsWith("+")) text += set ? ref.arg : "";
    else if (ref.op.endsWith("?") && !set) {
      throw new Error(`${ref.name} is required (${ref.arg})`);
    } else text += vars[ref.name] ?? "";
  }
  return { text, refs, literal };
}

/** The references and the literal text of a compose value, whatever the variables hold. */
export function refsOf(value: string): { refs: Ref[]; literal: string } {
  const any = new Proxy({}, { has: () => true, get: () => "x" }) as Record<string, string>;
  const { refs, literal } = interpolate(value, any);
  return { refs, literal };
}

/** A compose service's `environment` (map or list form) as name → raw value. */
export function environmentOf(service: Doc): Record<string, string> {
  const env = service?.environment ?? {};
  if (Array.isArray(env)) {
    return Object.fromEntries(env.map((line: string) => {
      const eq = line.indexOf("=");
      return eq < 0 ? [line, ""] : [line.slice(0, eq), line.slice(eq + 1)];
    }));
  }
  return Object.fromEntries(
    Object.entries(env).map(([k, v]) => [k, v === null || v === undefined ? "" : String(v)]),
  );
}

/** A Dockerfile's instructions, continuation lines joined and comments dropped. */
export function dockerInstructions(text: string): { op: string; args: string }[] {
  const out: { op: string; args: string }[] = [];
  let pending = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line.startsWith("#") || (!pending && line === "")) continue;
    if (line.endsWith("\\")) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const full = (pending + line).trim();
    pending = "";
    const m = /^([A-Za-z]+)\s+([\s\S]*)$/.exec(full);
    if (m) out.push({ op: m[1].toUpperCase(), args: m[2].trim() });
  }
  return out;
}

/** The words of a shell-form or exec-form (JSON array) instruction. */
export function words(args: string): string[] {
  if (args.startsWith("[")) return JSON.parse(args);
  return args.split(/\s+/).filter(Boolean);
}

/** `deno task NAME` invocations in a command (words). */
export function denoTasks(command: string[]): string[] {
  const names: string[] = [];
  command.forEach((w, i) => {
    if (w === "deno" && command[i + 1] === "task" && command[i + 2]) names.push(command[i + 2]);
  });
  for (const w of command) {
    for (const m of w.matchAll(/\bdeno\s+task\s+([\w:-]+)/g)) names.push(m[1]);
  }
  return names;
}

/** Whether .dockerignore (root-anchored patterns, `*`, `?`, `**`) leaves `path` out. */
export function dockerIgnored(patterns: string[], path: string): boolean {
  let ignored = false;
  for (const raw of patterns) {
    const negate = raw.startsWith("!");
    const pattern = (negate ? raw.slice(1) : raw).replace(/^\/+|\/+$/g, "");
    const source = pattern.split(/(\*\*\/|\*\*|\*|\?)/).map((part) => {
      if (part === "**/") return "(?:.*/)?";
      if (part === "**") return ".*";
      if (part === "*") return "[^/]*";
      if (part === "?") return "[^/]";
      return part.replace(/[.+^${}()|[\]\\]/g, "\\$&");
    }).join("");
    if (new RegExp(`^${source}(?:/.*)?$`).test(path)) ignored = !negate;
  }
  return ignored;
}

export function dockerignorePatterns(): string[] {
  return readText(".dockerignore").split("\n").map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
}

/** HAProxy's configuration: sections with their directives (comments dropped). */
export function haproxySections(text: string): { kind: string; name: string; lines: string[] }[] {
  const sections: { kind: string; name: string; lines: string[] }[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.replace(/(^|\s)#.*$/, "").trimEnd();
    if (!line.trim()) continue;
    if (!/^\s/.test(line)) {
      const [kind, name = ""] = line.trim().split(/\s+/);
      sections.push({ kind, name, lines: [] });
    } else sections.at(-1)?.lines.push(line.trim());
  }
  return sections;
}

export function denoTasksOfProject(): Record<string, string> {
  return JSON.parse(readText("deno.json")).tasks;
}

/** The TypeScript entry point a `deno task` runs (its last `.ts`/`.tsx` word). */
export function taskEntry(task: string): string {
  const command = denoTasksOfProject()[task];
  const entry = command?.split(/\s+/).filter((w) => /\.tsx?$/.test(w)).at(-1);
  if (!entry) throw new Error(`deno task ${task} runs no .ts file: ${command}`);
  return entry;
}

/** The local files (relative to the repository root) in `entry`'s module graph. */
export async function localModuleGraph(entry: string): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  const info = JSON.parse(new TextDecoder().decode(out.stdout));
  const root = ROOT.href;
  return (info.modules as { specifier: string }[])
    .map((m) => m.specifier)
    .filter((s) => s.startsWith(root))
    .map((s) => decodeURIComponent(s.slice(root.length)))
    .sort();
}
