/**
 * @module Checks of de-identified files against their originals, as pydicom (not the writer,
 * dcmjs) reads them (`_deid_dump.py`), shared by the codec and the archive tests: nothing the
 * profile removes or empties survives with a value, no private tag, every instance UID replaced,
 * the same original UID replaced the same way across the files of one export, dates moved by one
 * offset per patient, the File Meta Information rewritten, the Pixel Data bytes unchanged, and no
 * dciodvfy error the original did not have.
 */
import assert from "node:assert/strict";
import { profileRow } from "../../../dicom/codec/deid_profile.ts";
import { IMPLEMENTATION } from "../../../dicom/codec/part10.ts";
import { available, dciodvfy, run } from "./_dicom_tools.ts";

export type Dumped = [
  path: string,
  tag: string,
  vr: string,
  value: string | null,
  items: number | null,
];
export interface Dump {
  error?: string;
  elements: Dumped[];
  meta: Record<string, string>;
  pixel: string | null;
  preamble: string;
}

const PY = "/usr/bin/python3";
const SCRIPT = new URL("./_deid_dump.py", import.meta.url).pathname;

/** pydicom's reading of `files` (bytes), or undefined where pydicom is missing outside CI. */
export async function dumpAll(files: Uint8Array[]): Promise<Dump[] | undefined> {
  if (!await available(PY)) return undefined;
  const dir = await Deno.makeTempDir({ prefix: "deid-" });
  try {
    const paths = files.map((_, i) => `${dir}/${i}.dcm`);
    await Promise.all(files.map((b, i) => Deno.writeFile(paths[i], b)));
    const { code, out } = await run(PY, [SCRIPT, ...paths]);
    if (code !== 0 && /No module named 'pydicom'/.test(out)) {
      assert.notEqual(Deno.env.get("CI"), "true", "pydicom is missing in CI");
      return undefined;
    }
    assert.equal(code, 0, out);
    const parsed = JSON.parse(out.slice(out.indexOf("{"))) as Record<string, Dump>;
    return paths.map((p) => parsed[p]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Name parts too common to tell a leak from a word (pydicom's files name "Last^First", "Test"). */
const GENERIC = new Set(["NAME", "FIRST", "LAST", "TEST", "ANONYMOUS", "ANONYMIZED", "PATIENT"]);

/** `text` as a whole word, case-insensitive. */
function word(text: string): RegExp {
  return new RegExp(
    `(^|[^\\p{L}\\p{N}])${text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}($|[^\\p{L}\\p{N}])`,
    "iu",
  );
}

const REGISTRY = new Set(["0008010C", "0008010D", "00080117", "00080118"]);
const DATE_VRS = new Set(["DA", "DT"]);
const DAY = 86_400_000;

function byPath(d: Dump): Map<string, Dumped> {
  return new Map(d.elements.map((e) => [e[0], e]));
}

function tagsOf(path: string): string[] {
  return path.split(".").map((p) => p.replace(/\[\d+\]$/, ""));
}

function days(da: string): number | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})/.exec(da);
  return m ? Date.UTC(+m[1], +m[2] - 1, +m[3]) / DAY : undefined;
}

/** Every UI value of the dumps (the originals). */
export function uidsOf(dumps: Dump[]): Set<string> {
  const out = new Set<string>();
  for (const d of dumps) {
    for (const [, , vr, v] of d.elements) {
      if (vr === "UI" && v) { for (const u of v.split("\\")) if (u) out.add(u); }
    }
  }
  return out;
}

export interface PairCheck {
  name: string;
  input: Dump;
  output: Dump;
  options: { modifiedDates: boolean; cleanDescriptors: boolean };
}

/**
 * Checks one de-identified file against its original; returns the date shift (days) it saw, or
 * undefined when it has no date to compare.
 */
export function checkPair(c: PairCheck, originalUids: Set<string>): number | undefined {
  const { name, input, output, options } = c;
  assert.equal(output.error, undefined, `${name}: pydicom cannot read the output: ${output.error}`);
  const before = byPath(input);
  const after = byPath(output);
  const value = (d: Map<string, Dumped>, tag: string) => d.get(tag)?.[3] ?? undefined;
  // File Meta Information and preamble: rewritten.
  assert.equal(output.meta["00020003"], value(after, "00080018"), `${name}: meta SOP UID`);
  assert.equal(output.meta["00020012"], IMPLEMENTATION.classUid, `${name}: implementation`);
  assert.match(output.preamble, /^0*$/, `${name}: preamble`);
  assert.equal(output.pixel, input.pixel, `${name}: Pixel Data bytes changed`);
  assert.equal(value(after, "00120062"), "YES", `${name}: Patient Identity Removed`);
  const codes = output.elements.filter(([p]) => /^00120064\[\d+\]\.00080100$/.test(p)).map((e) =>
    e[3]
  );
  assert.deepEqual(codes, [
    "113100",
    ...(options.modifiedDates ? ["113107"] : []),
    ...(options.cleanDescriptors ? ["113105"] : []),
  ], `${name}: De-identification Method Code Sequence`);
  const fullName = (value(before, "00100010") ?? "").replace(/\^+/g, " ").trim();
  const names = [fullName, ...fullName.split(/[=\s]+/)]
    .filter((n) => n.length >= 4 && !GENERIC.has(n.toUpperCase())).map(word);
  const patientId = value(before, "00100020") ?? "";
  const id = patientId.length >= 4 ? word(patientId) : undefined;
  let shift: number | undefined;
  for (const [path, tag, vr, v, items] of output.elements) {
    const where = `${name} ${path} (${vr}) = ${v}`;
    for (const t of tagsOf(path)) {
      assert.equal(parseInt(t.slice(0, 4), 16) % 2, 0, `${where}: a private tag survived`);
    }
    if (vr === "UI" && v) {
      for (const u of v.split("\\").filter(Boolean)) {
        if (u.startsWith("1.2.840.10008.") || REGISTRY.has(tag)) continue;
        assert.match(u, /^2\.25\.\d+$/, `${where}: a UID not replaced`);
        assert.ok(!originalUids.has(u), `${where}: an original UID survived`);
      }
    }
    const orig = before.get(path);
    if (v && vr !== "UI" && !/^bytes:/.test(v)) {
      for (const n of names) {
        // An attribute the table does not list, kept as it was, may share a word with the name
        // (the synthetic studies' "SYNTH" patients and "dicom/synth phantom" model).
        if (!profileRow(tag) && orig?.[3] === v) continue;
        assert.ok(!n.test(v), `${where}: the patient's name (${n})`);
      }
      if (id && tag !== "00100020") assert.ok(!id.test(v), `${where}: the Patient ID`);
    }
    if (DATE_VRS.has(vr) && v && orig?.[3] && options.modifiedDates) {
      const a = days(orig[3]), b = days(v);
      if (a !== undefined && b !== undefined && orig[3].length >= 8) {
        shift ??= b - a;
        assert.equal(b - a, shift, `${where}: shifted unlike the other dates (was ${orig[3]})`);
        assert.notEqual(shift, 0, `${where}: not shifted`);
      }
    }
    const row = profileRow(tag);
    if (!row) continue;
    const optioned = (options.modifiedDates && row.modifiedDates) ||
      (options.cleanDescriptors && row.cleanDescriptors);
    if (optioned || vr === "SQ" && row.basic !== "X" && row.basic !== "Z") continue;
    const empty = v === "" || v === null && !items;
    if (row.basic === "X") assert.fail(`${where}: action X, yet present`);
    if (row.basic === "Z") assert.ok(empty, `${where}: action Z, yet valued`);
    const was = orig?.[3];
    if (was && !empty && !/^bytes:/.test(was)) {
      assert.notEqual(v, was, `${where}: action ${row.basic}, yet the original value`);
    }
  }
  return shift;
}

/** dciodvfy's errors of a file, values blanked (new UIDs and dates would differ textually). */
async function errors(bytes: Uint8Array): Promise<Set<string> | undefined> {
  const out = await dciodvfy(bytes);
  if (out === undefined) return undefined;
  return new Set(
    out.split("\n").filter((l) => l.startsWith("Error")).map((l) =>
      l.trimEnd().replace(/= <[^>]*>/g, "= <>")
    ),
  );
}

/** The output has no dciodvfy error its input lacked (an input dciodvfy cannot read: none). */
export async function assertNoNewDciodvfyErrors(
  name: string,
  input: Uint8Array,
  output: Uint8Array,
): Promise<void> {
  const [a, b] = [await errors(input), await errors(output)];
  if (!a || !b) return;
  assert.ok(![...b].some((l) => /read failed/.test(l)), `${name}: dciodvfy cannot read the output`);
  // dciodvfy cannot read some inputs (deflated ones): then the output must merely be readable.
  if ([...a].some((l) => /read failed/.test(l))) return;
  assert.deepEqual([...b].filter((l) => !a.has(l)), [], `${name}: new dciodvfy errors`);
}
