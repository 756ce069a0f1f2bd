/**
 * @module The ONNX Runtime session of one model: the only module that imports onnxruntime-node.
 * Execution providers are tried in the configured order (cuda, webgpu, cpu): one whose native
 * library is absent is skipped without trying, one that cannot start is passed over, each at debug
 * level; the one chosen is one info line saying why the others were not. ONNX Runtime's own
 * native log is kept to fatal errors. `provider` is the one in use.
 */
import * as ort from "onnxruntime-node";
import type { Logger } from "../platform/log.ts";

export interface ModelRunner {
  /** The execution provider in use (`cuda`, `webgpu`, `cpu`, …). */
  readonly provider: string;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /** Runs one batch: `input` float32 of shape `dims`; returns the output `outputName`. */
  run(
    input: Float32Array,
    dims: readonly number[],
    names?: { input?: string; output?: string },
  ): Promise<{ data: Float32Array; dims: number[] }>;
  close(): Promise<void>;
}

export class NoProviderError extends Error {
  constructor(readonly tried: { provider: string; error: string }[]) {
    super(
      `No execution provider could run the model: ${
        tried.map((t) => `${t.provider}: ${t.error}`).join("; ")
      }`,
    );
    this.name = "NoProviderError";
  }
}

/** What onnxruntime-node calls each provider we accept in config. */
const PROVIDER_NAMES: Record<string, string> = {
  cuda: "cuda",
  webgpu: "webgpu",
  cpu: "cpu",
  tensorrt: "tensorrt",
  dml: "dml",
  coreml: "coreml",
};

export async function createRunner(
  modelPath: string,
  providers: readonly string[],
  options: {
    log?: Logger;
    model?: string;
    /** ONNX Runtime's intra-op threads; 0 or absent: its default (one per core). */
    threads?: number;
    /** Whether a provider's native libraries are there (default: `providerMissing`). */
    missing?: (provider: string) => string | undefined;
  } = {},
): Promise<ModelRunner> {
  const log = options.log ?? (() => {});
  const missing = options.missing ?? providerMissing;
  quietNativeLog();
  const order = providers.length ? providers : ["cpu"];
  const tried: { provider: string; error: string }[] = [];
  for (const [n, wanted] of order.entries()) {
    const provider = PROVIDER_NAMES[wanted.toLowerCase()];
    // Each provider passed over is a debug line; the one chosen is one info line naming why the
    // others were not (a machine without a GPU is normal, not an error).
    const skip = (error: string) => {
      tried.push({ provider: provider ?? wanted, error });
      log("debug", `execution provider ${provider ?? wanted} not used`, {
        model: options.model,
        provider: provider ?? wanted,
        next: order[n + 1] ?? null,
        error,
      });
    };
    if (!provider) {
      skip("unknown execution provider");
      continue;
    }
    const absent = missing(provider);
    if (absent) {
      // Not even tried: ONNX Runtime would print its own errors while failing to load it.
      skip(absent);
      continue;
    }
    try {
      const session = await ort.InferenceSession.create(modelPath, {
        executionProviders: [provider],
        graphOptimizationLevel: "all",
        ...(options.threads ? { intraOpNumThreads: options.threads, interOpNumThreads: 1 } : {}),
      });
      // Once per process and outcome at info; the next models' sessions say it at debug.
      const skipped = tried.map((t) => `${t.provider}: ${t.error}`).join("; ");
      const first = !reported.has(`${provider}|${skipped}`);
      reported.add(`${provider}|${skipped}`);
      log(first ? "info" : "debug", `inference on ${provider}`, {
        model: options.model,
        provider,
        ...(skipped ? { skipped } : {}),
      });
      return wrap(session, provider);
    } catch (e) {
      skip(firstLine(e));
    }
  }
  throw new NoProviderError(tried);
}

/** The folder of onnxruntime-node's native libraries (where the CUDA provider would be). */
function nativeFolder(): string | undefined {
  try {
    const binding = import.meta.resolve("onnxruntime-node");
    const root = new URL("../", binding); // dist/ → the package
    return new URL(`bin/napi-v6/${Deno.build.os}/${archOf()}/`, root).pathname;
  } catch {
    return undefined;
  }
}

function archOf(): string {
  return Deno.build.arch === "aarch64" ? "arm64" : "x64";
}

/**
 * Why `provider` cannot load on this machine, before ONNX Runtime tries (and logs errors of its
 * own): the CUDA provider's library is installed by onnxruntime-node from NuGet at install time,
 * and WebGPU on Linux needs the Vulkan loader. Undefined: worth a try.
 */
export function providerMissing(provider: string): string | undefined {
  if (provider === "cuda" || provider === "tensorrt") {
    const folder = nativeFolder();
    if (!folder) return undefined;
    const lib = Deno.build.os === "windows"
      ? "onnxruntime_providers_cuda.dll"
      : "libonnxruntime_providers_cuda.so";
    return exists(`${folder}${lib}`)
      ? undefined
      : `${lib} is not installed (onnxruntime-node installs it with CUDA on a networked machine)`;
  }
  if (provider === "webgpu" && Deno.build.os === "linux") {
    const dirs = [
      ...(Deno.env.get("LD_LIBRARY_PATH") ?? "").split(":").filter(Boolean),
      `/usr/lib/${Deno.build.arch}-linux-gnu`,
      "/usr/lib64",
      "/usr/lib",
      "/usr/local/lib",
    ];
    return dirs.some((d) => exists(`${d}/libvulkan.so.1`))
      ? undefined
      : "no Vulkan loader (libvulkan.so.1)";
  }
  return undefined;
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** The providers chosen so far, with why the others were not (each reported once at info). */
const reported = new Set<string>();

let quieted = false;
/** ONNX Runtime's own log to stderr: fatal only (our log says what failed, in one line). */
function quietNativeLog(): void {
  if (quieted) return;
  quieted = true;
  ort.env.logLevel = "fatal";
}

function wrap(session: ort.InferenceSession, provider: string): ModelRunner {
  return {
    provider,
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    async run(input, dims, names = {}) {
      const inputName = names.input ?? session.inputNames[0];
      const outputName = names.output ?? session.outputNames[0];
      const tensor = new ort.Tensor("float32", input, [...dims]);
      const result = await session.run({ [inputName]: tensor }, [outputName]);
      const out = result[outputName];
      if (!out) throw new Error(`The model has no output "${outputName}"`);
      if (out.type !== "float32") {
        throw new Error(`Output "${outputName}" is ${out.type}; float32 expected`);
      }
      const data = out.data as Float32Array;
      const shape = [...out.dims];
      tensor.dispose();
      return { data, dims: shape };
    },
    async close() {
      await session.release();
    },
  };
}

function firstLine(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  return text.split("\n")[0].slice(0, 300);
}
