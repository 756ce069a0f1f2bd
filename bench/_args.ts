/** @module Command-line flags of the benches: `--flag value` or `--flag=value`, and number checks. */

/** Each argument as its flag and a reader of its value (the `=` part, else the next argument). */
export function* flagsOf(args: readonly string[]): Generator<[string, () => string]> {
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i].split("=", 2);
    yield [flag, () => inline ?? args[++i]];
  }
}

/** `v` as an integer ≥ 1; throws naming the flag. */
export function positive(flag: string, v: string | undefined): number {
  const n = Number(v);
  if (v === undefined || !Number.isInteger(n) || n < 1) {
    throw new Error(`${flag} needs a positive integer, got ${v}`);
  }
  return n;
}

/** `v` as an integer ≥ 0; throws naming the flag. */
export function nonNegative(flag: string, v: string | undefined): number {
  const n = Number(v);
  if (v === undefined || !Number.isInteger(n) || n < 0) {
    throw new Error(`${flag} needs an integer ≥ 0, got ${v}`);
  }
  return n;
}
