/**
 * @module The job's FHIR Task, as the sidecar changes it through the API: read it, mark it
 * in progress or failed with ordinary PUTs guarded by `If-Match` on the version read (a
 * concurrent change makes it re-read and try again), keeping every other field as it was.
 */
import type { Task } from "@medplum/fhirtypes";
import { type ApiClient, ApiError } from "./api_client.ts";
import { fatal } from "./errors.ts";
import type { AnalysisJob } from "../queue/jobs.ts";

const ATTEMPTS = 3;

export async function readTask(api: ApiClient, job: AnalysisJob): Promise<Task> {
  try {
    const res = await api.fhir<Task>("GET", `Task/${encodeURIComponent(job.taskId)}`, undefined, {
      requestId: job.requestId,
    });
    return res.body;
  } catch (e) {
    if (e instanceof ApiError && (e.status === 404 || e.status === 410)) {
      throw fatal(`Task/${job.taskId} of the job does not exist`);
    }
    throw e;
  }
}

/**
 * Runs `fn` with the Task as just read; when it fails with 412 (the Task changed in between),
 * reads again and retries, up to three times.
 */
export async function withFreshTask<T>(
  api: ApiClient,
  job: AnalysisJob,
  fn: (task: Task) => Promise<T>,
  first?: Task,
): Promise<T> {
  let task = first;
  for (let attempt = 1;; attempt++) {
    task ??= await readTask(api, job);
    try {
      return await fn(task);
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 412) || attempt >= ATTEMPTS) throw e;
      task = undefined;
    }
  }
}

async function putTask(api: ApiClient, job: AnalysisJob, task: Task): Promise<Task> {
  const { meta, ...body } = task;
  const res = await api.fhir<Task>("PUT", `Task/${encodeURIComponent(task.id!)}`, body, {
    requestId: job.requestId,
    headers: meta?.versionId ? { "If-Match": `W/"${meta.versionId}"` } : {},
  });
  return res.body;
}

/**
 * status in-progress (and executionPeriod.start, once); a Task that ended meanwhile (cancelled,
 * completed) is answered as it is.
 */
export function markTaskInProgress(api: ApiClient, job: AnalysisJob, task?: Task): Promise<Task> {
  return withFreshTask(api, job, (t) => {
    if (["in-progress", "cancelled", "completed", "entered-in-error"].includes(t.status)) {
      return Promise.resolve(t);
    }
    const now = new Date().toISOString();
    const next: Task = {
      ...t,
      status: "in-progress",
      lastModified: now,
      executionPeriod: { ...t.executionPeriod, start: t.executionPeriod?.start ?? now },
    };
    delete next.statusReason;
    return putTask(api, job, next);
  }, task);
}

/** status failed with `statusReason.text` = the reason; a completed Task is left alone. */
export function markTaskFailed(api: ApiClient, job: AnalysisJob, reason: string): Promise<Task> {
  return withFreshTask(api, job, (t) => {
    if (t.status === "completed") return Promise.resolve(t);
    const now = new Date().toISOString();
    return putTask(api, job, {
      ...t,
      status: "failed",
      statusReason: { text: reason.slice(0, 1000) },
      lastModified: now,
      executionPeriod: { ...t.executionPeriod, end: now },
    });
  });
}
