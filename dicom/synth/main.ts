/**
 * @module Entry point of `deno task synth`: synthetic chest CT studies on disk and/or by STOW-RS.
 * `--post` without `--token` signs in first (`sign_in.ts`: the code flow with PKCE, as the given
 * account or the first admin of the embedded default's password file). Exits 2 on a bad flag and
 * 1 when the sign-in or any STOW-RS request failed.
 */

import { HELP, parseSynthArgs, type SynthArgs } from "./cli_args.ts";
import { runSynth } from "./run.ts";
import { passwordFilePath, SignInError, tokenFor } from "./sign_in.ts";

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
    if (args.post && args.token === undefined) {
      const env = Deno.env.toObject();
      args.passwordFile = passwordFilePath(env);
      try {
        const signed = await tokenFor(new URL(args.post).origin, {
          username: args.username,
          password: args.password,
          passwordFile: args.passwordFile,
          env,
        });
        if (signed) {
          args.token = signed.token;
          console.log(`signed in as ${signed.username} (${signed.source})`);
        }
      } catch (e) {
        if (!(e instanceof SignInError)) throw e;
        console.error(`synth: ${e.message}`);
        Deno.exit(1);
      }
    }
    const summary = await runSynth(args);
    if (summary.failedRequests > 0 || summary.unauthorized) Deno.exit(1);
  }
}
