// deno-lint-ignore-file no-explicit-any
/**
 * @module The steps the pipeline tests share: wait for a stored study's ImagingStudy, then ask
 * for an analysis (`$analyze`) and wait for its Task to end, completed.
 */
import assert from "node:assert/strict";
import { fhirJson, type TestContext } from "./_harness.ts";

/** The ImagingStudy of a stored study, once the index has made it (up to 10 s). */
export async function imagingStudyOf(ctx: Pick<TestContext, "fetch">, uid: string): Promise<any> {
  const q = `ImagingStudy?identifier=${encodeURIComponent(`urn:dicom:uid|urn:oid:${uid}`)}`;
  for (let i = 0; i < 100; i++) {
    const found = (await fhirJson(ctx, "GET", q)).body.entry?.[0]?.resource;
    if (found) return found;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`no ImagingStudy for ${uid}`);
}

/** `$analyze` with these parameters, then the Task once it ended; asserts it completed. */
export async function analyseStudy(
  ctx: Pick<TestContext, "fetch">,
  imagingStudyId: string,
  parameter: Record<string, unknown>[] = [{ name: "model", valueString: "lung-nodule-demo" }],
): Promise<any> {
  const asked = await fhirJson(ctx, "POST", `ImagingStudy/${imagingStudyId}/$analyze`, {
    resourceType: "Parameters",
    parameter,
  });
  assert.ok([200, 202].includes(asked.status), JSON.stringify(asked.body));
  let task: any;
  for (let i = 0; i < 600; i++) {
    task = (await fhirJson(ctx, "GET", `Task/${asked.body.id}`)).body;
    if (task.status === "completed" || task.status === "failed") break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(task.status, "completed", JSON.stringify(task));
  return task;
}
