/**
 * @module Command-line flags of `deno task synth` (`--name value` or `--name=value`), their
 * defaults, validation and the help text.
 */

/** Parsed flags of the synth CLI. */
export interface SynthArgs {
  help: boolean;
  out: string;
  studies: number;
  slices: number;
  size: number;
  seed: number;
  lesions?: number;
  post?: string;
  batch: number;
  write: boolean;
  token?: string;
}

export const HELP = `deno task synth — synthetic patients and chest CT studies that no patient owns

Usage: deno task synth [flags]

  --out DIR        output folder (default ./data/synth): DIR/<StudyInstanceUID>/NNNN.dcm + truth.json
  --studies N      number of studies (default 1); study i uses seed + i
  --slices N       axial slices per study (default 100, 2.5 mm apart)
  --size N         rows and columns (default 512)
  --seed N         first seed (default 1); same flags, same bytes
  --lesions N      lesions per study, 0-5 (default: seeded 1-3)
  --post URL       also send each study by STOW-RS to URL/studies (URL = DICOMweb root,
                   e.g. http://localhost:8080/dicomweb)
  --batch N        instances per STOW-RS request (default 20)
  --token T        send "Authorization: Bearer T" with each request
  --no-write       do not write files (with --post: generate and send only)
  --help           show this help
`;

const INTEGER_FLAGS = ["studies", "slices", "size", "seed", "lesions", "batch"] as const;
const STRING_FLAGS = ["out", "post", "token"] as const;

/** Parses `Deno.args`; throws an Error with a readable message on a bad flag. */
export function parseSynthArgs(argv: readonly string[]): SynthArgs {
  const args: SynthArgs = {
    help: false,
    out: "./data/synth",
    studies: 1,
    slices: 100,
    size: 512,
    seed: 1,
    batch: 20,
    write: true,
  };
  for (let i = 0; i < argv.length; i++) {
    const raw = argv[i];
    if (raw === "--help" || raw === "-h") {
      args.help = true;
      continue;
    }
    if (raw === "--no-write") {
      args.write = false;
      continue;
    }
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(raw);
    if (!match) throw new Error(`unexpected argument: ${raw}`);
    const name = match[1];
    const value = match[2] ?? argv[++i];
    if (value === undefined) throw new Error(`--${name} needs a value`);
    if ((INTEGER_FLAGS as readonly string[]).includes(name)) {
      const n = Number(value);
      if (!Number.isSafeInteger(n)) throw new Error(`--${name} must be an integer: ${value}`);
      (args as unknown as Record<string, number>)[name] = n;
    } else if ((STRING_FLAGS as readonly string[]).includes(name)) {
      (args as unknown as Record<string, string>)[name] = value;
    } else {
      throw new Error(`unknown flag: --${name} (see --help)`);
    }
  }
  const positive = {
    studies: args.studies,
    slices: args.slices,
    size: args.size,
    batch: args.batch,
  };
  for (const [name, v] of Object.entries(positive)) {
    if (v < 1) throw new Error(`--${name} must be at least 1: ${v}`);
  }
  if (args.lesions !== undefined && (args.lesions < 0 || args.lesions > 5)) {
    throw new Error(`--lesions must be in 0..5: ${args.lesions}`);
  }
  if (args.post !== undefined && !/^https?:\/\//.test(args.post)) {
    throw new Error(`--post must be an http(s) URL: ${args.post}`);
  }
  if (!args.write && args.post === undefined) {
    throw new Error("--no-write without --post would do nothing");
  }
  return args;
}
