/**
 * @module AI pipeline benchmark: raw ONNX Runtime throughput of a model against the whole
 * pipeline's (STOW-RS → `$analyze` → Redis Streams → sidecars → DiagnosticReport), and the latency
 * of one study from its upload to its filed report.
 *
 *   deno run -A bench/inference.ts [--studies 4] [--slices 100] [--size 512] [--sidecars 1,2]
 *     [--providers cpu] [--seconds 15] [--warmup 3] [--model lung-nodule-demo]
 *     [--models-dir sidecar/models] [--database-url postgres://…]
 *     [--redis-url redis://127.0.0.1:6379/6] [--stow-batch 10] [--timeout 1800]
 *     [--train-wait 900] [--threads 0] [--raw-only] [--no-wait]
 *
 * 1. Raw, in this process: the model loaded by the sidecar's own `loadModels` (same runner, same
 *    providers), fed full batches of the manifest's size (standard profile) built from one
 *    synthetic study (`dicom/synth/ct.ts`, decoded, windowed and resized as the sidecar does) for
 *    `--seconds` after `--warmup` seconds; slices/s, ms per batch, the provider. Then the
 *    sidecar's CPU stages over that study, each timed (the faster of two passes).
 * 2. Pipeline, per `--sidecars` count: a fresh API (`main.ts`, recreated database
 *    `fhir_bench_inference`, objects in a temp folder, REDIS_URL = `--redis-url` after FLUSHDB of
 *    that database, INFERENCE_WORKER=off, no ANALYSIS_RULES) and that many `sidecar/main.ts`
 *    processes. The `--studies` studies are stored over STOW-RS, one 8-slice warm-up study per
 *    sidecar is analysed, then `$analyze` is POSTed for every study at once and the Tasks polled
 *    until all are completed: studies/min and slices/s from the first request to the last Task's
 *    completing write (its meta.lastUpdated). Then one more study alone: stored, `$analyze`d right
 *    after the last STOW-RS response, timed to its report being filed. No rule is involved, so
 *    the study-stable delay (DICOM_STABLE_SECONDS) is not in that time.
 *
 * Before each measured part it waits for `pgrep -f train.py` and `pgrep -f sidecar/train/` to
 * be empty (up to `--train-wait` seconds) and for the host to be ≥ 85% idle (up to 3 minutes),
 * and prints what it found; `--no-wait` skips both (for a smoke run) and only reads the idle %.
 */
import { flagsOf, nonNegative, positive } from "./_args.ts";
import { cpuIdle, machine, waitForQuiet } from "./_host.ts";
import { type PhaseResult, runPhase } from "./_inference_pipeline.ts";
import { makeStudies } from "./_inference_pipeline.ts";
import { measureInProcess } from "./_inference_raw.ts";
import { BENCH_DATABASE, pgrep, type PipelineEnv } from "./_inference_services.ts";
import { printPhases, printRaw } from "./_inference_report.ts";

const TARGET_RATIO = 0.9;

export interface Options {
  studies: number;
  slices: number;
  size: number;
  sidecars: number[];
  providers: string[];
  seconds: number;
  warmup: number;
  model: string;
  modelsDir: string;
  databaseUrl: string;
  redisUrl: string;
  stowBatch: number;
  timeout: number;
  trainWait: number;
  rawOnly: boolean;
  /** INFERENCE_THREADS per sidecar; 0: cores ÷ sidecars (at least 1). */
  threads: number;
  /** Skip the waits for training and a quiet host (smoke runs; the idle % is still shown). */
  noWait: boolean;
}

const USAGE = "deno run -A bench/inference.ts [--studies 4] [--slices 100] [--size 512] " +
  "[--sidecars 1,2] [--providers cpu] [--seconds 15] [--warmup 3] [--model lung-nodule-demo] " +
  "[--models-dir sidecar/models] [--database-url postgres://…] " +
  "[--redis-url redis://127.0.0.1:6379/6] [--stow-batch 10] [--timeout 1800] [--train-wait 900] " +
  "[--threads 0] [--raw-only] [--no-wait]";

function parseArgs(args: string[]): Options {
  const opts: Options = {
    studies: 4,
    slices: 100,
    size: 512,
    sidecars: [1, 2],
    providers: ["cpu"],
    seconds: 15,
    warmup: 3,
    model: "lung-nodule-demo",
    modelsDir: new URL("../sidecar/models", import.meta.url).pathname,
    databaseUrl: Deno.env.get("DATABASE_URL") || "postgres://postgres@127.0.0.1:5432/postgres",
    redisUrl: "redis://127.0.0.1:6379/6",
    stowBatch: 10,
    timeout: 1800,
    trainWait: 900,
    rawOnly: false,
    threads: 0,
    noWait: false,
  };
  for (const [flag, value] of flagsOf(args)) {
    switch (flag) {
      case "--studies":
      case "--slices":
      case "--size":
      case "--seconds":
      case "--timeout":
        opts[flag.slice(2) as "studies"] = positive(flag, value());
        break;
      case "--warmup":
        opts.warmup = nonNegative(flag, value());
        break;
      case "--train-wait":
        opts.trainWait = nonNegative(flag, value());
        break;
      case "--stow-batch":
        opts.stowBatch = positive(flag, value());
        break;
      case "--sidecars":
        opts.sidecars = value().split(",").map((v) => positive(flag, v.trim()));
        break;
      case "--providers":
        opts.providers = value().split(",").map((p) => p.trim()).filter(Boolean);
        break;
      case "--model":
        opts.model = value();
        break;
      case "--models-dir":
        opts.modelsDir = value();
        break;
      case "--database-url":
        opts.databaseUrl = value();
        break;
      case "--redis-url":
        opts.redisUrl = value();
        break;
      case "--threads":
        opts.threads = nonNegative(flag, value());
        break;
      case "--raw-only":
        opts.rawOnly = true;
        break;
      case "--no-wait":
        opts.noWait = true;
        break;
      case "--help":
      case "-h":
        console.log(USAGE);
        Deno.exit(0);
        break;
      default:
        throw new Error(`Unknown option ${flag}\n${USAGE}`);
    }
  }
  return opts;
}

/** Model training and evaluation (`sidecar/train/*.py`): CPU-heavy, and long. */
const TRAINING = ["train.py", "sidecar/train/"];

async function training(): Promise<number[]> {
  return [...new Set((await Promise.all(TRAINING.map(pgrep))).flat())];
}

/** Waits until no training runs (up to `seconds`); answers whether one still ran. */
async function waitForTraining(seconds: number): Promise<boolean> {
  const deadline = Date.now() + seconds * 1000;
  let pids = await training();
  while (pids.length && Date.now() < deadline) {
    console.log(`  (training is running, pid ${pids.join(", ")}; waiting for it to finish)`);
    await new Promise((r) => setTimeout(r, 15_000));
    pids = await training();
  }
  if (pids.length) {
    console.log(`  training (pid ${pids.join(", ")}) still running after ${seconds} s: measuring`);
  }
  return pids.length > 0;
}

async function main() {
  const opts = parseArgs(Deno.args);
  const notes: string[] = [];
  const command = `deno run -A bench/inference.ts ${Deno.args.join(" ")}`.trim();
  console.log(`Machine: ${await machine()}`);
  console.log(`Command: ${command}`);

  const quiet = opts.noWait ? () => cpuIdle(1000) : waitForQuiet;
  const trainWait = opts.noWait ? 0 : opts.trainWait;
  const busyRaw = await waitForTraining(trainWait);
  if (busyRaw) notes.push("the raw measurement ran while training was running");
  console.log(`Raw: ${opts.model} on ${opts.providers.join(",")}, one ${opts.slices}-slice study`);
  let rawIdle = NaN;
  const inProcess = await measureInProcess({
    modelsDir: opts.modelsDir,
    model: opts.model,
    providers: opts.providers,
    slices: opts.slices,
    size: opts.size,
    warmupSeconds: opts.warmup,
    seconds: opts.seconds,
  }, async () => {
    rawIdle = await quiet();
  });
  console.log(
    `  ${inProcess.raw.slicesPerSecond.toFixed(1)} slices/s on ${inProcess.raw.provider} ` +
      `(host ${rawIdle.toFixed(0)}% idle before)`,
  );

  const phases: PhaseResult[] = [];
  if (!opts.rawOnly) {
    const env: PipelineEnv = {
      adminUrl: opts.databaseUrl,
      redisUrl: opts.redisUrl,
      modelsDir: opts.modelsDir,
      providers: opts.providers,
      stableSeconds: 1,
      threads: opts.threads,
    };
    console.log(
      `Generating ${opts.studies} + 1 studies × ${opts.slices} slices of ${opts.size}², and ` +
        `${Math.max(...opts.sidecars)} warm-up studies × 8 slices`,
    );
    const studies = makeStudies(7100, opts.studies, opts.slices, opts.size);
    const [latency] = makeStudies(7900, 1, opts.slices, opts.size);
    const warmup = makeStudies(7800, Math.max(...opts.sidecars), 8, opts.size);
    for (const n of opts.sidecars) {
      console.log(`Pipeline with ${n} sidecar(s)`);
      if (await waitForTraining(trainWait)) {
        notes.push(`the ${n}-sidecar run ran while training was running`);
      }
      phases.push(
        await runPhase(env, {
          sidecars: n,
          model: opts.model,
          studies,
          warmup: warmup.slice(0, n),
          latency,
          slices: opts.slices,
          stowBatch: opts.stowBatch,
          timeoutMs: opts.timeout * 1000,
          quiet,
        }),
      );
    }
  }

  console.log("");
  console.log(`Machine: ${await machine()}`);
  console.log(`Command: ${command}`);
  console.log(
    `Configuration: model ${opts.model} (${opts.modelsDir}), INFERENCE_PROVIDERS=` +
      `${opts.providers.join(",")}, INFERENCE_THREADS per sidecar ${
        opts.threads || `cores ÷ sidecars (${navigator.hardwareConcurrency} cores)`
      }, profile standard (every slice once, no flip TTA); ` +
      `data: dicom/synth CT, ${opts.slices} slices of ${opts.size}×${opts.size} per study, ` +
      `${opts.studies} studies per throughput run; API: database ${BENCH_DATABASE} on ` +
      `${new URL(opts.databaseUrl).host} (recreated per run), objects in a temp folder, ` +
      `REDIS_URL=${opts.redisUrl} (FLUSHDB per run), INFERENCE_WORKER=off, no ANALYSIS_RULES, ` +
      `DICOM_STABLE_SECONDS=1; STOW-RS in requests of ${opts.stowBatch} instances`,
  );
  console.log(
    `Host idle before the raw run: ${rawIdle.toFixed(0)}%` +
      (notes.length
        ? `; NOTE: ${notes.join("; ")}`
        : "; no training (train.py, sidecar/train/) ran"),
  );
  printRaw(inProcess);
  if (phases.length) printPhases(phases, inProcess, opts.slices, TARGET_RATIO);
  const bad = phases.flatMap((p) => p.jobs.filter((j) => j.status !== "completed"));
  if (bad.length) Deno.exit(1);
}

if (import.meta.main) await main();
