/**
 * @module What the inference benchmark asks of the API: STOW-RS of one study's instances, the
 * ImagingStudy ids of stored studies, `$analyze`, waiting for Tasks to end, and the timestamps a
 * finished job leaves on its Task and DiagnosticReport.
 */
import type { DiagnosticReport, ImagingStudy, Task } from "@medplum/fhirtypes";
import { multipart } from "./_ingest_bodies.ts";

const FHIR_JSON = "application/fhir+json";

async function fhir<T>(url: string, init: RequestInit = {}): Promise<{ status: number; body: T }> {
  const res = await fetch(url, {
    ...init,
    headers: { Accept: FHIR_JSON, "Content-Type": FHIR_JSON, ...init.headers },
  });
  const text = await res.text();
  if (!res.ok) {
    throw new Error(`${init.method ?? "GET"} ${url}: ${res.status} ${text.slice(0, 400)}`);
  }
  return { status: res.status, body: JSON.parse(text) as T };
}

/** POSTs `instances` to `${dicomweb}/studies` in requests of `batch`, one after another. */
export async function stowStudy(
  dicomweb: string,
  instances: Uint8Array[],
  batch: number,
): Promise<void> {
  const boundary = "bench-inference-5d1c8e0a2f7b4936a1e4c0d9b8f2";
  for (let i = 0; i < instances.length; i += batch) {
    const res = await fetch(`${dicomweb}/studies`, {
      method: "POST",
      headers: {
        "Content-Type": `multipart/related; type="application/dicom"; boundary=${boundary}`,
        Accept: "application/dicom+json",
      },
      body: multipart(instances.slice(i, i + batch), boundary),
    });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`STOW-RS: ${res.status} ${text.slice(0, 400)}`);
  }
}

/** StudyInstanceUID → ImagingStudy id for every ImagingStudy on the server. */
export async function imagingStudies(base: string): Promise<Map<string, string>> {
  const { body } = await fhir<{ entry?: { resource: ImagingStudy }[] }>(
    `${base}/ImagingStudy?_count=1000`,
  );
  const out = new Map<string, string>();
  for (const { resource } of body.entry ?? []) {
    const uid = resource.identifier?.find((i) => i.system === "urn:dicom:uid")?.value;
    if (uid) out.set(uid.replace(/^urn:oid:/, ""), resource.id!);
  }
  return out;
}

/** `POST ImagingStudy/{id}/$analyze` for `model` (standard profile); the Task it answers. */
export async function requestAnalysis(base: string, studyId: string, model: string): Promise<Task> {
  const { status, body } = await fhir<Task>(`${base}/ImagingStudy/${studyId}/$analyze`, {
    method: "POST",
    body: JSON.stringify({
      resourceType: "Parameters",
      parameter: [{ name: "model", valueString: model }, {
        name: "profile",
        valueCode: "standard",
      }],
    }),
  });
  if (status !== 202) throw new Error(`$analyze answered ${status}, not 202`);
  return body;
}

const ENDED = new Set(["completed", "failed", "cancelled", "rejected", "entered-in-error"]);

/**
 * Polls the Tasks every `pollMs` until each has ended (or `timeoutMs` passes); `seen` gets the
 * Date.now() at which each was first seen ended.
 */
export async function waitForTasks(
  base: string,
  ids: string[],
  opts: { pollMs: number; timeoutMs: number; seen?: Map<string, number> },
): Promise<Map<string, Task>> {
  const done = new Map<string, Task>();
  const deadline = Date.now() + opts.timeoutMs;
  while (done.size < ids.length) {
    const open = ids.filter((id) => !done.has(id));
    const tasks = await Promise.all(open.map((id) => fhir<Task>(`${base}/Task/${id}`)));
    const now = Date.now();
    for (const { body } of tasks) {
      if (ENDED.has(body.status)) {
        done.set(body.id!, body);
        opts.seen?.set(body.id!, now);
      }
    }
    if (done.size === ids.length) break;
    if (Date.now() > deadline) {
      throw new Error(
        `${ids.length - done.size} of ${ids.length} Tasks still open after ${opts.timeoutMs} ms: ` +
          open.filter((id) => !done.has(id)).map((id) => `Task/${id}`).join(", "),
      );
    }
    await new Promise((r) => setTimeout(r, opts.pollMs));
  }
  return done;
}

/** Epoch ms of one finished job's steps, from its Task and DiagnosticReport. */
export interface JobTimes {
  taskId: string;
  status: string;
  reason?: string;
  reportStatus?: string;
  /** Task.authoredOn: when `$analyze` created the Task. */
  requested: number;
  /** Task.executionPeriod.start: when a sidecar marked it in progress. */
  started: number;
  /** Task.executionPeriod.end = DiagnosticReport.issued: the results ready, filing begins. */
  filing: number;
  /** Task.meta.lastUpdated of the completed version: the transaction's last write. */
  filed: number;
  findings?: number;
}

export async function jobTimes(base: string, task: Task): Promise<JobTimes> {
  const t = (s?: string) => (s ? Date.parse(s) : NaN);
  const times: JobTimes = {
    taskId: task.id!,
    status: task.status,
    reason: task.statusReason?.text,
    requested: t(task.authoredOn),
    started: t(task.executionPeriod?.start),
    filing: t(task.executionPeriod?.end),
    filed: t(task.meta?.lastUpdated),
  };
  const ref = task.output?.find((o) => o.type?.text === "DiagnosticReport")?.valueReference
    ?.reference;
  if (ref) {
    const { body } = await fhir<DiagnosticReport>(`${base}/${ref}`);
    times.reportStatus = body.status;
    times.findings = body.result?.length ?? 0;
  }
  return times;
}
