// deno-lint-ignore-file no-explicit-any
/**
 * @module A new analysis of a study by the same model supersedes the earlier results without
 * deleting them: both SEG/SR series stay in the study; the earlier results document (FHIR
 * DocumentReference) goes to `superseded` and the new one `replaces` it; the new SR names the
 * earlier SR in its Predecessor Documents Sequence; the same analysis asked again files nothing.
 */
import assert from "node:assert/strict";
import dcmjs from "dcmjs";
import { generateStudy } from "../../dicom/synth/ct.ts";
import { stowInstances } from "../../dicom/synth/stow.ts";
import { COMPREHENSIVE_3D_SR_STORAGE } from "../../dicom/codec/sr_writer.ts";
import { readMultipart } from "../../dicom/codec/multipart.ts";
import { backendTest, fhirJson, type TestContext } from "../_harness.ts";
import { analyseStudy, imagingStudyOf } from "../_analysis.ts";
import { RESULTS_OF_MODEL } from "../../sidecar/result_documents.ts";

const analyse = (ctx: TestContext, studyId: string, threshold: number) =>
  analyseStudy(ctx, studyId, [
    { name: "model", valueString: "lung-nodule-demo" },
    { name: "threshold", valueDecimal: threshold },
  ]);

async function documents(ctx: TestContext, studyId: string): Promise<any[]> {
  const q = `DocumentReference?related=ImagingStudy/${studyId}` +
    `&category=${encodeURIComponent(`${RESULTS_OF_MODEL}|lung-nodule-demo`)}&_sort=date`;
  const found = await fhirJson(ctx, "GET", q);
  assert.equal(found.status, 200, JSON.stringify(found.body));
  return (found.body.entry ?? []).map((e: any) => e.resource);
}

async function retrieve(url: string): Promise<any> {
  const res = await fetch(url, {
    headers: { Accept: 'multipart/related; type="application/dicom"' },
  });
  assert.equal(res.status, 200);
  const boundary = /boundary="?([^";]+)"?/.exec(res.headers.get("content-type") ?? "")![1];
  const limits = { maxPartBytes: 2 ** 28, maxTotalBytes: 2 ** 30 };
  for await (const part of readMultipart(res.body!, boundary, limits)) {
    const dict = dcmjs.data.DicomMessage.readFile(part.body.slice().buffer);
    return dcmjs.data.DicomMetaDictionary.naturalizeDataset(dict.dict);
  }
  throw new Error(`no part in ${url}`);
}

backendTest(
  "a new analysis supersedes the model's earlier results: kept, marked, named as predecessors",
  async (ctx) => {
    const study = generateStudy({ seed: 5151, slices: 30, rows: 192, cols: 192, lesions: 1 });
    const uid = study.plan.study.studyInstanceUid;
    assert.equal((await stowInstances(`${ctx.origin}/dicomweb`, study.instances)).stored, 30);
    const imagingStudy = await imagingStudyOf(ctx, uid);

    await analyse(ctx, imagingStudy.id, 0.5);
    const [first] = await documents(ctx, imagingStudy.id);
    assert.equal(first.status, "current");
    assert.equal(first.relatesTo, undefined);
    const firstSr = first.content.find((c: any) => c.format.code === COMPREHENSIVE_3D_SR_STORAGE);
    assert.equal(firstSr.format.system, "urn:oid:1.2.840.10008.2.6.1");
    assert.match(firstSr.attachment.url, new RegExp(`/dicomweb/studies/${uid}/series/`));

    // Another threshold: another analysis, with new series.
    await analyse(ctx, imagingStudy.id, 0.6);
    const docs = await documents(ctx, imagingStudy.id);
    assert.equal(docs.length, 2, JSON.stringify(docs.map((d) => [d.id, d.status])));
    const old = docs.find((d) => d.id === first.id);
    const fresh = docs.find((d) => d.id !== first.id);
    assert.equal(old.status, "superseded");
    assert.equal(fresh.status, "current");
    assert.deepEqual(fresh.relatesTo, [{
      code: "replaces",
      target: { reference: `DocumentReference/${first.id}` },
    }]);
    const freshSr = fresh.content.find((c: any) => c.format.code === COMPREHENSIVE_3D_SR_STORAGE);
    const sr = await retrieve(freshSr.attachment.url);
    const [, , , , priorSeries, , priorSop] = new URL(firstSr.attachment.url).pathname.split("/")
      .slice(1);
    const predecessors = [sr.PredecessorDocumentsSequence].flat();
    assert.equal(predecessors.length, 1, "the earlier SR named as predecessor");
    assert.equal(predecessors[0].StudyInstanceUID, uid);
    const refSeries = [predecessors[0].ReferencedSeriesSequence].flat()[0];
    assert.equal(refSeries.SeriesInstanceUID, priorSeries);
    assert.equal([refSeries.ReferencedSOPSequence].flat()[0].ReferencedSOPInstanceUID, priorSop);

    // Nothing deleted: both analyses' SR series are still in the study.
    const series = await (await fetch(`${ctx.origin}/dicomweb/studies/${uid}/series?Modality=SR`))
      .json();
    assert.equal(series.length, 2, JSON.stringify(series));

    // The same analysis asked again files nothing new, supersedes nothing.
    await analyse(ctx, imagingStudy.id, 0.6);
    const again = await documents(ctx, imagingStudy.id);
    assert.deepEqual(
      again.map((d) => [d.id, d.status]).sort(),
      docs.map((d) => [d.id, d.status]).sort(),
    );
  },
);
