/**
 * @module Real tools over a DICOM file written by this service: dicom3tools' `dciodvfy`, DCMTK's
 * `dsrdump`, pydicom. Each is skipped where it is missing, except in CI (which installs them).
 */
import assert from "node:assert/strict";

/** Runs `fn` with `bytes` in a temporary file, removed afterwards. */
export async function withFile<T>(bytes: Uint8Array, fn: (path: string) => Promise<T>): Promise<T> {
  const path = await Deno.makeTempFile({ suffix: ".dcm" });
  try {
    await Deno.writeFile(path, bytes);
    return await fn(path);
  } finally {
    await Deno.remove(path);
  }
}

/** A command's exit code and its stdout and stderr together. */
export async function run(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  const o = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  return { code: o.code, out: dec.decode(o.stdout) + dec.decode(o.stderr) };
}

/** Whether `cmd` can run here; in CI a missing tool fails the test instead. */
export async function available(cmd: string): Promise<boolean> {
  const found = (await new Deno.Command("sh", { args: ["-c", `command -v ${cmd}`] }).output())
    .success;
  if (!found) assert.notEqual(Deno.env.get("CI"), "true", `${cmd} is missing in CI`);
  return found;
}

/** dciodvfy's output for `bytes`, or undefined where dciodvfy is missing. */
export async function dciodvfy(bytes: Uint8Array): Promise<string | undefined> {
  if (!await available("dciodvfy")) return undefined;
  return (await withFile(bytes, (p) => run("dciodvfy", ["-new", p]))).out;
}

/** dciodvfy reports no error for `bytes` (its warnings are allowed). */
export async function assertNoDciodvfyError(bytes: Uint8Array, what = "the file"): Promise<void> {
  const out = await dciodvfy(bytes);
  if (out === undefined) return;
  assert.deepEqual(out.split("\n").filter((l) => l.startsWith("Error")), [], `${what}: ${out}`);
}
