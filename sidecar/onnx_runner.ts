/**
 * @module The ONNX Runtime session of one model: the only module that imports onnxruntime-node.
 * Execution providers are tried in the configured order (cuda, webgpu, cpu); one that cannot
 * start is logged in one line and the next is tried. `provider` is the one in use.
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
  } = {},
): Promise<ModelRunner> {
  const log = options.log ?? (() => {});
  const order = providers.length ? providers : ["cpu"];
  const tried: { provider: string; error: string }[] = [];
  for (const [n, wanted] of order.entries()) {
    const provider = PROVIDER_NAMES[wanted.toLowerCase()];
    if (!provider) {
      tried.push({ provider: wanted, error: "unknown execution provider" });
      log("warn", "unknown execution provider, trying the next", {
        model: options.model,
        provider: wanted,
        next: order[n + 1],
      });
      continue;
    }
    try {
      const session = await ort.InferenceSession.create(modelPath, {
        executionProviders: [provider],
        graphOptimizationLevel: "all",
        ...(options.threads ? { intraOpNumThreads: options.threads, interOpNumThreads: 1 } : {}),
      });
      return wrap(session, provider);
    } catch (e) {
      const error = firstLine(e);
      tried.push({ provider, error });
      log("warn", `execution provider ${provider} unavailable, falling back`, {
        model: options.model,
        provider,
        next: order[n + 1] ?? null,
        error,
      });
    }
  }
  throw new NoProviderError(tried);
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
