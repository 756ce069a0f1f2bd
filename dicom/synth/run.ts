/**
 * @module What `deno task synth` does, callable from tests: generate each study slice by slice,
 * write `<out>/<StudyInstanceUID>/NNNN.dcm` and `truth.json`, and optionally STOW-RS the instances
 * in batches, overlapping the upload of one batch with the generation of the next.
 */

import type { SynthArgs } from "./cli_args.ts";
import { streamStudy } from "./ct.ts";
import { stowInstances, type StowResponse } from "./stow.ts";

/** Totals of a run. */
export interface SynthSummary {
  studies: number;
  instances: number;
  bytes: number;
  seconds: number;
  requests: number;
  failedRequests: number;
  studyInstanceUids: string[];
}

/** Runs the CLI; `log` receives one line per study and per request. */
export async function runSynth(
  args: SynthArgs,
  log: (line: string) => void = console.log,
): Promise<SynthSummary> {
  const started = performance.now();
  const summary: SynthSummary = {
    studies: 0,
    instances: 0,
    bytes: 0,
    seconds: 0,
    requests: 0,
    failedRequests: 0,
    studyInstanceUids: [],
  };
  const headers: HeadersInit = args.token ? { Authorization: `Bearer ${args.token}` } : {};
  const report = (r: StowResponse, label: string): void => {
    summary.requests++;
    if (!r.ok || (r.failed ?? 0) > 0) summary.failedRequests++;
    const counts = r.stored === undefined ? "" : ` stored=${r.stored} failed=${r.failed}`;
    const mb = (r.bytes / 1e6).toFixed(1);
    log(
      `  POST ${label}: HTTP ${r.status} ${r.instances} instances ${mb} MB ` +
        `${r.ms.toFixed(0)} ms${counts}${r.text ? ` ${r.text}` : ""}`,
    );
  };
  for (let s = 0; s < args.studies; s++) {
    const seed = args.seed + s;
    const stream = streamStudy({
      seed,
      slices: args.slices,
      rows: args.size,
      cols: args.size,
      lesions: args.lesions,
    });
    const { study } = stream.plan;
    const dir = `${args.out.replace(/\/+$/, "")}/${study.studyInstanceUid}`;
    if (args.write) await Deno.mkdir(dir, { recursive: true });
    log(`study ${s + 1}/${args.studies} seed=${seed} ${study.studyInstanceUid}`);
    let batch: Uint8Array[] = [];
    let first = 1;
    let pending: Promise<void> | undefined;
    const send = async (): Promise<void> => {
      const instances = batch, label = `${first}-${first + instances.length - 1}`;
      batch = [];
      first += instances.length;
      await pending;
      pending = stowInstances(args.post!, instances, { headers }).then(
        (r) => report(r, label),
        (e) => {
          summary.requests++;
          summary.failedRequests++;
          log(`  POST ${label}: ${e instanceof Error ? e.message : e}`);
        },
      );
    };
    for (const instance of stream.instances) {
      summary.instances++;
      summary.bytes += instance.bytes.length;
      if (args.write) {
        const name = String(instance.instanceNumber).padStart(4, "0");
        await Deno.writeFile(`${dir}/${name}.dcm`, instance.bytes);
      }
      if (args.post) {
        batch.push(instance.bytes);
        if (batch.length >= args.batch) await send();
      }
    }
    if (args.post && batch.length > 0) await send();
    await pending;
    const truth = stream.truth();
    if (args.write) {
      await Deno.writeTextFile(`${dir}/truth.json`, JSON.stringify(truth, null, 2) + "\n");
    }
    const lesions = truth.lesions.map((l) => `${l.radiusMm}mm@${l.centerInstanceNumber}`);
    log(`  ${truth.patient.name} ${truth.patient.id} lesions: ${lesions.join(", ") || "none"}`);
    summary.studies++;
    summary.studyInstanceUids.push(study.studyInstanceUid);
  }
  summary.seconds = (performance.now() - started) / 1000;
  log(
    `done: ${summary.studies} studies, ${summary.instances} instances, ` +
      `${(summary.bytes / 1e6).toFixed(1)} MB in ${summary.seconds.toFixed(2)} s` +
      (args.post ? `, ${summary.requests} requests (${summary.failedRequests} failed)` : ""),
  );
  return summary;
}
