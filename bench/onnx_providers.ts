/**
 * Raw ONNX Runtime throughput of a model per execution provider (cpu, cuda, webgpu): creates one
 * session per provider (only that provider, no fallback), runs batches of the manifest's input
 * shape for `--seconds` after a warm-up, and prints slices/s, ms per batch and whether the
 * provider could be used at all. Used on a GPU machine as well as here.
 *
 *   deno run -A bench/onnx_providers.ts [--model sidecar/models/lung-nodule-demo]
 *     [--providers cpu,cuda,webgpu] [--seconds 10] [--batch N] [--json out.json]
 *
 * ORT_MODULE=<path to an onnxruntime-node folder> loads that copy instead of the npm import
 * (for machines without the npm registry).
 */
import { flagsOf } from "./_args.ts";
import { createRequire } from "node:module";
import { machine } from "./_host.ts";

/** The part of onnxruntime-node used here (its types are not imported: see loadOrt). */
interface Ort {
  InferenceSession: {
    create(path: string, options: { executionProviders: string[] }): Promise<{
      inputNames: readonly string[];
      run(feeds: Record<string, unknown>): Promise<unknown>;
      release(): Promise<void>;
    }>;
  };
  Tensor: new (type: "float32", data: Float32Array, dims: number[]) => unknown;
}

interface Options {
  model: string;
  providers: string[];
  seconds: number;
  batch?: number;
  json?: string;
}

function parseArgs(args: string[]): Options {
  const o: Options = {
    model: "sidecar/models/lung-nodule-demo",
    providers: ["cpu", "cuda", "webgpu"],
    seconds: 10,
  };
  for (const [flag, value] of flagsOf(args)) {
    if (flag === "--model") o.model = value();
    else if (flag === "--providers") o.providers = value().split(",");
    else if (flag === "--seconds") o.seconds = Number(value());
    else if (flag === "--batch") o.batch = Number(value());
    else if (flag === "--json") o.json = value();
    else throw new Error(`Unknown option ${flag}`);
  }
  return o;
}

async function loadOrt(): Promise<Ort> {
  const path = Deno.env.get("ORT_MODULE");
  // Not a static import: on a machine without the npm registry the module graph must not need it.
  const name = "onnxruntime-node";
  if (!path) return await import(name) as Ort;
  const require = createRequire(import.meta.url);
  return require(path.startsWith("/") ? path : `${Deno.cwd()}/${path}`) as Ort;
}

interface Result {
  provider: string;
  ok: boolean;
  error?: string;
  batch?: number;
  batches?: number;
  slicesPerSecond?: number;
  msPerBatch?: number;
  firstRunMs?: number;
}

async function main() {
  const o = parseArgs(Deno.args);
  const ort = await loadOrt();
  const manifest = JSON.parse(await Deno.readTextFile(`${o.model}/manifest.json`));
  const input = manifest.input;
  const batch = o.batch ?? input.batch ?? 8;
  const channels = input.channels ?? (input.neighbours?.length ?? 1);
  const dims = [batch, channels, input.height, input.width];
  const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761 % 1000) / 1000;
  const results: Result[] = [];
  for (const provider of o.providers) {
    const r: Result = { provider, ok: false };
    try {
      const session = await ort.InferenceSession.create(`${o.model}/model.onnx`, {
        executionProviders: [provider],
      });
      const feeds = {
        [input.name ?? session.inputNames[0]]: new ort.Tensor("float32", data, dims),
      };
      let t = performance.now();
      await session.run(feeds);
      r.firstRunMs = performance.now() - t;
      for (let i = 0; i < 3; i++) await session.run(feeds);
      let n = 0;
      t = performance.now();
      while (performance.now() - t < o.seconds * 1000) {
        await session.run(feeds);
        n++;
      }
      const ms = performance.now() - t;
      Object.assign(r, {
        ok: true,
        batch,
        batches: n,
        msPerBatch: ms / n,
        slicesPerSecond: (n * batch * 1000) / ms,
      });
      await session.release();
    } catch (e) {
      r.error = String((e as Error).message ?? e).split("\n")[0].slice(0, 300);
    }
    results.push(r);
    console.log(JSON.stringify(r));
  }
  console.log(`\nMachine: ${await machine()}`);
  console.log(`Model: ${manifest.name} ${manifest.version}, input ${dims.join("×")} float32`);
  console.log("\n| Provider | Usable | Batch | ms/batch | Slices/s | First run ms |");
  console.log("| --- | --- | ---: | ---: | ---: | ---: |");
  for (const r of results) {
    console.log(
      `| ${r.provider} | ${r.ok ? "yes" : `no: ${r.error}`} | ${r.batch ?? "-"} | ${
        r.msPerBatch?.toFixed(2) ?? "-"
      } | ${r.slicesPerSecond?.toFixed(0) ?? "-"} | ${r.firstRunMs?.toFixed(0) ?? "-"} |`,
    );
  }
  if (o.json) {
    await Deno.writeTextFile(
      o.json,
      JSON.stringify({ manifest: manifest.version, results }, null, 2),
    );
  }
}

if (import.meta.main) await main();
