/**
 * @module Building a statement with parameters: `Params` collects the values and answers each one's
 * `$n`, and `escapeLike` makes a value literal inside a LIKE pattern. Every SQL builder of the
 * service (FHIR search, QIDO-RS, the audit search, account updates) uses these.
 */

/** The parameters of the statement being built. */
export class Params {
  readonly values: unknown[];
  /** `initial`: values already numbered `$1`… by the statement's fixed part. */
  constructor(initial: unknown[] = []) {
    this.values = [...initial];
  }
  /** Adds `value` and answers its `$n` (with `cast`, e.g. `::text[]`). */
  add(value: unknown, cast = ""): string {
    this.values.push(value);
    return `$${this.values.length}${cast}`;
  }
}

/** `s` with LIKE's wildcards and escape character escaped (backslash, the default escape). */
export function escapeLike(s: string): string {
  return s.replace(/[\\%_]/g, (c) => `\\${c}`);
}
