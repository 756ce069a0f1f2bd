/**
 * @module Measuring one ingest run: concurrent STOW-RS clients over a shared queue of bodies, the
 * QIDO-RS check afterwards, the server process's peak memory and CPU time, and the host's idleness.
 */
import type { StowBodies } from "./_ingest_bodies.ts";

const DICOM_JSON = "application/dicom+json";

/** What one server did with all the bodies. */
export interface StowResult {
  seconds: number;
  requests: number;
  /** Instances listed in ReferencedSOPSequence (00081199) of the responses. */
  stored: number;
  /** Instances listed in FailedSOPSequence (00081198). */
  failed: number;
  /** Responses other than 200, and fetch errors. */
  non200: number;
  /** The first few problems, for the report. */
  problems: string[];
  /** Per-request latency in ms, sorted. */
  latencies: Float64Array;
}

/** POSTs every body to `${dicomweb}/studies` from `clients` workers sharing one queue. */
export async function stowAll(
  dicomweb: string,
  data: StowBodies,
  clients: number,
): Promise<StowResult> {
  const url = `${dicomweb}/studies`;
  const latencies: number[] = [];
  const problems: string[] = [];
  let next = 0, stored = 0, failed = 0, non200 = 0;
  const note = (p: string) => problems.length < 5 && problems.push(p);
  const worker = async () => {
    while (next < data.bodies.length) {
      const i = next++;
      const body = data.bodies[i];
      const t = performance.now();
      try {
        const res = await fetch(url, {
          method: "POST",
          headers: { "Content-Type": data.contentType, Accept: DICOM_JSON },
          body: body.bytes,
        });
        const text = await res.text();
        latencies.push(performance.now() - t);
        let json: Record<string, { Value?: unknown[] }> = {};
        try {
          json = JSON.parse(text);
        } catch {
          note(`request ${i}: ${res.status}, not JSON: ${text.slice(0, 300)}`);
        }
        stored += json["00081199"]?.Value?.length ?? 0;
        failed += json["00081198"]?.Value?.length ?? 0;
        if (res.status !== 200) {
          non200++;
          note(`request ${i}: ${res.status} ${text.slice(0, 300)}`);
        }
      } catch (e) {
        latencies.push(performance.now() - t);
        non200++;
        note(`request ${i}: ${e}`);
      }
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: clients }, worker));
  const seconds = (performance.now() - t0) / 1000;
  return {
    seconds,
    requests: data.bodies.length,
    stored,
    failed,
    non200,
    problems,
    latencies: Float64Array.from(latencies).sort(),
  };
}

export function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

/** Studies and the sum of their NumberOfStudyRelatedInstances (00201208) from QIDO-RS `/studies`. */
export async function qidoCounts(
  dicomweb: string,
): Promise<{ studies: number; instances: number; problem?: string }> {
  const res = await fetch(`${dicomweb}/studies?includefield=00201208&limit=1000`, {
    headers: { Accept: DICOM_JSON },
  });
  const text = await res.text();
  if (!res.ok && res.status !== 204) {
    return { studies: 0, instances: 0, problem: `${res.status} ${text.slice(0, 300)}` };
  }
  const list: Record<string, { Value?: unknown[] }>[] = text ? JSON.parse(text) : [];
  let instances = 0;
  for (const s of list) instances += Number(s["00201208"]?.Value?.[0] ?? NaN);
  return { studies: list.length, instances };
}

/** VmHWM (peak resident set since the process started) and VmRSS, in MiB. */
export async function memory(pid: number): Promise<{ peakMiB: number; rssMiB: number }> {
  const text = await Deno.readTextFile(`/proc/${pid}/status`).catch(() => "");
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s*(\\d+) kB`, "m").exec(text)?.[1]);
  return { peakMiB: kib("VmHWM") / 1024, rssMiB: kib("VmRSS") / 1024 };
}

/** User + system CPU seconds of a process (all its threads) from /proc/<pid>/stat. */
export async function cpuSeconds(pid: number): Promise<number> {
  const text = await Deno.readTextFile(`/proc/${pid}/stat`).catch(() => "");
  // The command name (field 2) is in parentheses and may hold spaces: count from after it.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15, in clock ticks (100 per second on Linux).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
