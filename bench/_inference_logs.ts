/**
 * @module The sidecar's log as the inference benchmark reads it: JSON lines on stderr. Per job,
 * the `job started` and `job done` lines (the total `ms`) and any stage timing fields a `job
 * done` line carries (numeric fields named like `fetchMs`, or a `timings`/`stages` object), plus
 * the warnings and errors.
 */

export interface LoggedJob {
  taskId: string;
  startedAt?: number;
  doneAt?: number;
  /** `ms` of the `job done` line: the sidecar's own total for the job. */
  ms?: number;
  /** Stage timings found on the `job done` line (name → ms). */
  stages: Record<string, number>;
}

export interface SidecarLog {
  jobs: LoggedJob[];
  warnings: string[];
  errors: string[];
  /** The names of the stage timing fields any job line carried. */
  stageNames: string[];
}

const STAGE_FIELD = /^(\w+?)(Ms|_ms|Millis)$/;

export async function readSidecarLog(file: string): Promise<SidecarLog> {
  const text = await Deno.readTextFile(file).catch(() => "");
  const jobs = new Map<string, LoggedJob>();
  const warnings: string[] = [];
  const errors: string[] = [];
  const names = new Set<string>();
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line);
    } catch {
      continue;
    }
    if (entry.level === "warn") warnings.push(line);
    if (entry.level === "error") errors.push(line);
    const taskId = typeof entry.taskId === "string" ? entry.taskId : undefined;
    if (!taskId) continue;
    const job = jobs.get(taskId) ?? { taskId, stages: {} };
    jobs.set(taskId, job);
    const at = Date.parse(String(entry.time));
    if (entry.msg === "job started") job.startedAt = at;
    if (entry.msg !== "job done") continue;
    job.doneAt = at;
    if (typeof entry.ms === "number") job.ms = entry.ms;
    const nested = [entry.timings, entry.stages].find((v) => v && typeof v === "object") as
      | Record<string, unknown>
      | undefined;
    for (const [key, value] of Object.entries({ ...entry, ...nested })) {
      if (typeof value !== "number" || key === "ms") continue;
      const m = STAGE_FIELD.exec(key);
      const name = m ? m[1] : nested && key in nested ? key : undefined;
      if (!name) continue;
      job.stages[name] = value;
      names.add(name);
    }
  }
  return { jobs: [...jobs.values()], warnings, errors, stageNames: [...names] };
}
