/**
 * @module Entry point of `deno task synth`: synthetic chest CT studies on disk and/or by STOW-RS.
 * Exits 2 on a bad flag and 1 when any STOW-RS request failed.
 */

import { HELP, parseSynthArgs, type SynthArgs } from "./cli_args.ts";
import { runSynth } from "./run.ts";

if (import.meta.main) {
  let args: SynthArgs;
  try {
    args = parseSynthArgs(Deno.args);
  } catch (e) {
    console.error(`synth: ${e instanceof Error ? e.message : e}`);
    Deno.exit(2);
  }
  if (args.help) {
    console.log(HELP);
  } else {
    const summary = await runSynth(args);
    if (summary.failedRequests > 0) Deno.exit(1);
  }
}
