/** @module The inference benchmark's tables: raw throughput, stage costs, pipeline runs. */
import type { PhaseResult } from "./_inference_pipeline.ts";
import type { InProcessResult } from "./_inference_raw.ts";

function fmt(n: number, digits = 1): string {
  return Number.isFinite(n) ? n.toFixed(digits) : "-";
}

function median(values: number[]): number {
  const s = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function printRaw({ raw, stages: s }: InProcessResult): void {
  console.log("");
  console.log(
    "Raw ONNX Runtime (the sidecar's runner, in the bench process, full batches only):",
  );
  console.log("");
  console.log(
    "| Model | Provider | Batch (input) | Batches | Seconds | Slices/s | Slices/s at p50 | " +
      "ms/batch mean | p50 | p95 |",
  );
  console.log("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  console.log(
    `| ${raw.model} ${raw.version} | ${raw.provider} | ${raw.batch} (${raw.inputDims.join("×")}) ` +
      `| ${raw.batches} | ${fmt(raw.seconds, 2)} | ${fmt(raw.slicesPerSecond)} | ` +
      `${fmt(raw.slicesPerSecondP50)} | ` +
      `${fmt(raw.msPerBatchMean)} | ${fmt(raw.msPerBatchP50)} | ${fmt(raw.msPerBatchP95)} |`,
  );
  console.log("");
  console.log(
    `CPU during the measured ${fmt(raw.seconds)} s: this process ${fmt(raw.ownCpuSeconds)} s ` +
      `(ONNX Runtime's default intra-op threads), all other processes ` +
      `${fmt(raw.otherCpuSeconds)} s (other work in the figure when well above 0). Model load ` +
      `${fmt(raw.loadSeconds, 2)} s; runner log: ${raw.loadNotes.join(" / ")}`,
  );
  if (raw.others.length) console.log(`Other processes during the raw run: ${others(raw.others)}`);
  console.log("");
  console.log(
    `The sidecar's CPU stages on one study (${s.slices} slices of ${s.size}², its functions ` +
      `called in the bench process after the raw run; per stage the faster of two passes):`,
  );
  console.log("");
  const batching = s.predictMs - s.inferenceMs;
  const rows: [string, number][] = [
    [
      "decode + window + resize to the model's plane, one pass (volume.ts + modelSampler)",
      s.decodeMs,
    ],
    ["model calls (runner.run)", s.inferenceMs],
    ["batching + probability planes on the model's grid (predictVolume rest)", batching],
    ["components (segment: boxes mapped to the image, 3D labelling, measures)", s.segmentMs],
    [`mask (NIfTI + gzip, ${s.maskBytes} bytes)`, s.maskMs],
  ];
  const total = rows.reduce((a, [, ms]) => a + ms, 0);
  console.log("| Stage | ms | ms/slice | Share |");
  console.log("| --- | ---: | ---: | ---: |");
  for (const [name, ms] of rows) {
    console.log(
      `| ${name} | ${fmt(ms)} | ${fmt(ms / s.slices, 2)} | ${fmt((100 * ms) / total)}% |`,
    );
  }
  console.log(`| total | ${fmt(total)} | ${fmt(total / s.slices, 2)} | 100% |`);
  console.log("");
  console.log(
    `Model calls are ${fmt((100 * s.inferenceMs) / total)}% of these stages: one sidecar that ` +
      `runs them one after another can reach at most ~${fmt(s.inferenceMs / total, 2)} of raw ` +
      `before any HTTP, database or queue work (${s.findings} finding(s) in this study). Other ` +
      `processes used ${fmt(s.otherCpuSeconds)} CPU-s during the two passes.`,
  );
}

export function printPhases(
  phases: PhaseResult[],
  { raw }: InProcessResult,
  slices: number,
  target: number,
): void {
  console.log("");
  console.log(
    "Pipeline throughput (`$analyze` for every study at once → the last Task's completing " +
      "write; one warm-up job per sidecar before):",
  );
  console.log("");
  console.log(
    "| Sidecars | Studies | Slices | Seconds | Studies/min | Slices/s | Ratio to raw | " +
      "Ratio to raw at p50 | Target ≥ " + target + " | Host idle before |",
  );
  console.log("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |");
  for (const p of phases) {
    const n = p.jobs.length;
    const sps = (n * slices) / p.seconds;
    const ratio = sps / raw.slicesPerSecond;
    const ratioP50 = sps / raw.slicesPerSecondP50;
    console.log(
      `| ${p.sidecars} | ${n} | ${n * slices} | ${fmt(p.seconds, 2)} | ` +
        `${fmt((n * 60) / p.seconds, 2)} | ${fmt(sps)} | ${fmt(ratio, 2)} | ${
          fmt(ratioP50, 2)
        } | ` +
        `${Math.min(ratio, ratioP50) >= target ? "met" : "NOT met"} | ${fmt(p.idleBefore, 0)}% |`,
    );
  }
  console.log("");
  console.log(
    `Raw: ${fmt(raw.slicesPerSecond)} slices/s, ${fmt(raw.slicesPerSecondP50)} at the median ` +
      `batch (${raw.provider}). Pipeline slices are DICOM ` +
      "instances; the standard profile runs the model once per instance, so the ratio compares " +
      "like with like.",
  );

  console.log("");
  console.log("Per job in the throughput runs (from each Task and its report; seconds):");
  console.log("");
  console.log(
    "| Sidecars | Task | Queued (requested → in progress) | In sidecar (→ results ready) | " +
      "Filing (→ transaction written) | Total | Sidecar log `ms` | Status | Report |",
  );
  console.log("| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |");
  for (const p of phases) {
    const logged = new Map(p.logs.flatMap((l) => l.jobs).map((j) => [j.taskId, j]));
    for (const j of [...p.jobs].sort((a, b) => a.started - b.started)) {
      console.log(
        `| ${p.sidecars} | ${j.taskId.slice(0, 8)} | ${
          fmt((j.started - j.requested) / 1000, 2)
        } | ` +
          `${fmt((j.filing - j.started) / 1000, 2)} | ${fmt((j.filed - j.filing) / 1000, 2)} | ` +
          `${fmt((j.filed - j.requested) / 1000, 2)} | ` +
          `${fmt((logged.get(j.taskId)?.ms ?? NaN) / 1000, 2)} | ${j.status}` +
          `${j.reason ? ` (${j.reason.slice(0, 80)})` : ""} | ${j.reportStatus ?? "-"} |`,
      );
    }
  }

  console.log("");
  console.log(
    "CPU seconds during the throughput runs (/proc; the host has " +
      `${navigator.hardwareConcurrency} CPUs):`,
  );
  console.log("");
  console.log(
    "| Sidecars | Wall s | CPU available | Host busy | API | Sidecars | Bench | Rest (Postgres, " +
      "Redis, other) | Jobs per sidecar | Sidecar peak RSS MiB |",
  );
  console.log("| ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- | --- |");
  for (const p of phases) {
    const sc = p.cpu.sidecars.reduce((a, b) => a + b, 0);
    const rest = p.cpu.host - p.cpu.api - sc - p.cpu.bench;
    console.log(
      `| ${p.sidecars} | ${fmt(p.observedSeconds)} | ` +
        `${fmt(p.observedSeconds * navigator.hardwareConcurrency)} | ${fmt(p.cpu.host)} | ` +
        `${fmt(p.cpu.api)} | ${p.cpu.sidecars.map((c) => fmt(c)).join(" + ")} | ` +
        `${fmt(p.cpu.bench)} | ${fmt(rest)} | ${p.jobsPerSidecar.join(", ")} | ` +
        `${p.sidecarPeakMiB.map((m) => fmt(m, 0)).join(", ")} |`,
    );
  }
  for (const p of phases) {
    console.log("");
    console.log(`Other processes during the ${p.sidecars}-sidecar run: ${others(p.others)}`);
  }
  console.log("");
  console.log(
    `Model work in those runs (raw ms/slice × slices): ` +
      phases.map((p) =>
        `${p.sidecars} sidecar(s): ${
          fmt((p.jobs.length * slices) / raw.slicesPerSecond)
        } s of the model at raw speed`
      ).join("; "),
  );

  console.log("");
  console.log(
    `One ${slices}-slice study alone: from the last STOW-RS response to the report filed ` +
      "(an explicit `$analyze` right after the upload; no rule, so the study-stable delay is " +
      "not included; seconds):",
  );
  console.log("");
  console.log(
    "| Sidecars | Upload | → `$analyze` 202 | → in progress | → results ready | → filed | " +
      "→ seen by the client | API CPU | Sidecar CPU | Host idle before |",
  );
  console.log("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const p of phases) {
    const l = p.latency;
    const stowed = l.times.filed - l.toFiledMs;
    console.log(
      `| ${p.sidecars} | ${fmt(l.uploadSeconds, 2)} | ${fmt(l.analyzeMs / 1000, 2)} | ` +
        `${fmt((l.times.started - stowed) / 1000, 2)} | ${
          fmt((l.times.filing - stowed) / 1000, 2)
        } ` +
        `| **${fmt(l.toFiledMs / 1000, 2)}** | ${fmt(l.toObservedMs / 1000, 2)} | ` +
        `${fmt(l.cpu.api)} | ${fmt(l.cpu.sidecars)} | ${fmt(l.idleBefore, 0)}% |`,
    );
  }
  console.log("");
  for (const p of phases) {
    console.log(
      `Other processes during the ${p.sidecars}-sidecar latency run: ${others(p.latency.others)}`,
    );
  }
  console.log("");
  console.log(
    "The sidecar's first step for that study, repeated from the bench afterwards (nothing else " +
      "running): " +
      phases.map((p) =>
        `${p.sidecars} sidecar(s) run: QIDO-RS + WADO-RS + multipart ${
          fmt(p.latency.fetchMs)
        } ms, decode ${fmt(p.latency.decodeMs)} ms`
      ).join("; "),
  );

  console.log("");
  const names = [...new Set(phases.flatMap((p) => p.logs.flatMap((l) => l.stageNames)))];
  if (names.length) {
    console.log("Stage timings from the sidecar logs (median ms per job):");
    console.log("");
    console.log(`| Sidecars | ${names.join(" | ")} | total ms |`);
    console.log(`| ---: | ${names.map(() => "---:").join(" | ")} | ---: |`);
    for (const p of phases) {
      const jobs = p.logs.flatMap((l) => l.jobs).filter((j) => j.ms !== undefined);
      console.log(
        `| ${p.sidecars} | ${
          names.map((n) => fmt(median(jobs.map((j) => j.stages[n]))))
            .join(" | ")
        } | ${fmt(median(jobs.map((j) => j.ms!)))} |`,
      );
    }
  } else {
    console.log(
      "The sidecar logs no stage timings (fetch, decode, preprocess, inference, postprocess, " +
        "filing): per job only `job started` and `job done` with the total `ms`. The stage table " +
        "above (in-process) and the Task timestamps stand in for them.",
    );
  }

  console.log("");
  for (const p of phases) {
    const warnings = p.logs.flatMap((l) => l.warnings);
    const errors = p.logs.flatMap((l) => l.errors);
    console.log(
      `${p.sidecars} sidecar(s): API errors ${p.apiErrors.length}, sidecar warnings ` +
        `${warnings.length}, errors ${errors.length}, sidecar exit codes ` +
        `${p.sidecarExit.join(", ")}; Redis after: ${JSON.stringify(p.redisAfter)}; logs: API ` +
        `${p.logFiles.api}, sidecars ${p.logFiles.sidecars.join(", ")}`,
    );
    for (const line of [...p.apiErrors, ...errors, ...warnings].slice(0, 5)) {
      console.log(`  ${line.slice(0, 400)}`);
    }
  }
}

function others(list: { pid: number; cmd: string; cpu: number }[]): string {
  return list.map((p) => `${fmt(p.cpu, 2)} s ${p.cmd.slice(0, 70)} (${p.pid})`).join("; ") ||
    "none above 0.05 s";
}
