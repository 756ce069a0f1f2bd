/**
 * @module Command-line flags of `deno task synth` (`--name value` or `--name=value`), their
 * defaults, validation and the help text. Two generators: `v2` (the default: realistic chest
 * anatomy, nodules, masks) and `v1` (the original ellipse phantom, unchanged).
 */

/** Parsed flags of the synth CLI. */
export interface SynthArgs {
  help: boolean;
  /** Which generator (`parseSynthArgs` defaults to v2; absent means v1 for older callers). */
  generator?: "v1" | "v2";
  out: string;
  studies: number;
  /** v1: slices per study. */
  slices: number;
  /** Rows and columns (v1; with v2 the same as `matrix`). */
  size: number;
  seed: number;
  /** v1: lesions per study. */
  lesions?: number;
  /** v2: slice thickness (= spacing), mm. */
  thickness?: number;
  /** v2: rows = columns. */
  matrix?: number;
  /** v2: pixel spacing, mm. */
  pixelSpacing?: number;
  /** v2: noise standard deviation, HU. */
  noise?: number;
  /** v2: reconstruction blur σ, mm. */
  blur?: number;
  /** v2: nodules per study, 0–8. */
  nodules?: number;
  /** v2: a mass (true: seeded 35–60 mm, or its diameter in mm). */
  mass?: boolean | number;
  post?: string;
  batch: number;
  write: boolean;
  token?: string;
  /** With --post and no --token: who signs in (else the env or the first admin's password file). */
  username?: string;
  password?: string;
  /** Where the first admin's password file was looked for (named by the 401 hint; not a flag). */
  passwordFile?: string;
}

export const HELP = `deno task synth — synthetic patients and chest CT studies that no patient owns

Usage: deno task synth [flags]

  --generator G    v2 (the default, unless only v1 flags are given): realistic chest anatomy
                   (body wall, ribs, spine, heart and great vessels, lungs with lobes, fissures,
                   vessel and bronchial trees, diaphragm, upper abdomen) with seeded nodules,
                   masks and scanner variation; v1: the original ellipse phantom
  --out DIR        output folder (default ./data/synth): DIR/<StudyInstanceUID>/NNNN.dcm +
                   truth.json (v2 also lungs.nii.gz: 1 right, 2 left lung; nodules.nii.gz: nodule
                   id per voxel, 100 + id for a mass)
  --studies N      number of studies (default 1); study i uses seed + i
  --seed N         first seed (default 1); same flags, same bytes
  --size N         rows and columns (v1 default 512; with v2 the same as --matrix)

 v2 (everything left out is seeded):
  --thickness MM   slice thickness = spacing, 0.5-10 (seeded 0.625-5); the scan runs from above
                   the lung apices to below the diaphragm (~250-330 mm)
  --matrix N       rows = columns, 32-1024 (seeded 256/384/512)
  --pixel-spacing MM  in-plane spacing, 0.2-5 (seeded: field of view / matrix)
  --noise HU       noise standard deviation, 0-300 (seeded 10-60, correlated)
  --blur MM        reconstruction blur (Gaussian PSF sigma), 0-5 (seeded 0.4-1.0)
  --nodules N      nodules per study, 0-8 (seeded, some studies have none)
  --mass [MM]      add a mass: seeded 35-60 mm, or MM (31-80)

 v1:
  --slices N       axial slices per study (default 100, 2.5 mm apart)
  --lesions N      lesions per study, 0-5 (default: seeded 1-3)

  --post URL       also send each study by STOW-RS to URL/studies (URL = DICOMweb root,
                   e.g. http://localhost:8080/dicomweb)
  --batch N        instances per STOW-RS request (default 20)
  --token T        send "Authorization: Bearer T" with each request; without it, --post signs
                   in (code flow + PKCE) as --username/--password, else IMAGING_AI_USERNAME and
                   IMAGING_AI_PASSWORD, else the first admin of data/initial-admin-password
  --username U, --password P   who signs in for --post
  --no-write       do not write files (with --post: generate and send only)
  --help           show this help
`;

const INTEGER_FLAGS = [
  "studies",
  "slices",
  "size",
  "seed",
  "lesions",
  "batch",
  "matrix",
  "nodules",
] as const;
const NUMBER_FLAGS = ["thickness", "pixel-spacing", "noise", "blur"] as const;
const STRING_FLAGS = ["out", "post", "token", "generator", "username", "password"] as const;
const V1_ONLY = ["slices", "lesions"];
const V2_ONLY = ["thickness", "matrix", "pixel-spacing", "noise", "blur", "nodules", "mass"];
const camel = (name: string): string =>
  name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

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
    generator: "v2",
  };
  const given = new Set<string>();
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
    given.add(name);
    if (name === "mass") {
      // A bare --mass (seeded size), or --mass MM / --mass=MM.
      const next = match[2] ?? (/^\d+(\.\d+)?$/.test(argv[i + 1] ?? "") ? argv[++i] : undefined);
      const mm = next === undefined ? true : Number(next);
      if (mm !== true && !(mm > 30 && mm <= 80)) {
        throw new Error(`--mass must be 31-80 mm: ${next}`);
      }
      args.mass = mm;
      continue;
    }
    const value = match[2] ?? argv[++i];
    if (value === undefined) throw new Error(`--${name} needs a value`);
    const record = args as unknown as Record<string, number | string>;
    if ((INTEGER_FLAGS as readonly string[]).includes(name)) {
      const n = Number(value);
      if (!Number.isSafeInteger(n)) throw new Error(`--${name} must be an integer: ${value}`);
      record[name] = n;
    } else if ((NUMBER_FLAGS as readonly string[]).includes(name)) {
      const n = Number(value);
      if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a number: ${value}`);
      record[camel(name)] = n;
    } else if ((STRING_FLAGS as readonly string[]).includes(name)) {
      record[name] = value;
    } else {
      throw new Error(`unknown flag: --${name} (see --help)`);
    }
  }
  // Older command lines (v1-only flags, no --generator) keep meaning v1.
  if (!given.has("generator") && V1_ONLY.some((f) => given.has(f))) {
    if (!V2_ONLY.some((f) => given.has(f))) args.generator = "v1";
  }
  if (args.generator !== "v1" && args.generator !== "v2") {
    throw new Error(`--generator must be v1 or v2: ${args.generator}`);
  }
  const wrong = [...given].filter((f) => (args.generator === "v1" ? V2_ONLY : V1_ONLY).includes(f));
  if (wrong.length > 0) {
    const other = args.generator === "v1" ? "v2" : "v1";
    throw new Error(`--${wrong[0]} is a ${other} flag (add --generator ${other})`);
  }
  if (args.generator === "v2" && given.has("size") && !given.has("matrix")) args.matrix = args.size;
  checkV2(args);
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
  if ((args.username !== undefined || args.password !== undefined) && args.post === undefined) {
    throw new Error("--username and --password are for --post");
  }
  if (!args.write && args.post === undefined) {
    throw new Error("--no-write without --post would do nothing");
  }
  return args;
}

function checkV2(args: SynthArgs): void {
  const ranges: [string, number | undefined, number, number][] = [
    ["thickness", args.thickness, 0.5, 10],
    ["matrix", args.matrix, 32, 1024],
    ["pixel-spacing", args.pixelSpacing, 0.2, 5],
    ["noise", args.noise, 0, 300],
    ["blur", args.blur, 0, 5],
    ["nodules", args.nodules, 0, 8],
  ];
  for (const [name, v, lo, hi] of ranges) {
    if (v !== undefined && !(v >= lo && v <= hi)) {
      throw new Error(`--${name} must be in ${lo}..${hi}: ${v}`);
    }
  }
}
