/**
 * @module Thumbnail resources (PS3.18 10.4.1.1.4) of a study, series, instance and frame: the
 * representative frame (the study's image series with most instances, not SEG or SR; the middle
 * instance; the middle frame), rendered as the rendered resource would, with viewport, accept,
 * Cache-Control, the default size, and refusals (SR, unknown resources) as OperationOutcomes.
 */
import assert from "node:assert/strict";
import { generateStudy } from "../../dicom/synth/ct.ts";
import { stowInstances } from "../../dicom/synth/stow.ts";
import { backendTest } from "../_harness.ts";
import { multipartParts } from "./_dicomweb_util.ts";
import { decodeImage, get, pngSize, seedRendered } from "./_rendered_util.ts";

const SEED = 1802;

backendTest(
  "thumbnail of a study, series, instance and frame is its representative frame",
  async (ctx) => {
    const s = await seedRendered(ctx, SEED);
    const png = async (path: string) => {
      const res = await get(ctx, path, "image/png");
      assert.equal(
        res.status,
        200,
        `${path}: ${new TextDecoder().decode(res.bytes).slice(0, 300)}`,
      );
      assert.equal(res.headers.get("content-type"), "image/png");
      return decodeImage(res.bytes);
    };
    const series = `studies/${s.study}/series/${s.ct.series}`;
    const slice = async (i: number) => await png(`${series}/instances/${s.ct.slices[i]}/rendered`);
    const slices = await Promise.all([0, 1, 2, 3, 4].map(slice));
    // The slices differ, so matching one of them says which was chosen.
    for (let i = 1; i < 5; i++) assert.notDeepEqual(slices[i].grey, slices[i - 1].grey);
    const which = (image: { grey: Uint8Array }) =>
      slices.findIndex((sl) =>
        sl.grey.length === image.grey.length &&
        sl.grey.every((v, j) => v === image.grey[j])
      );

    // The study: the synthetic CT (5 images) over the SEG series (7, but a SEG) and the 2-image
    // CT series numbered first; its middle slice, instance number 3.
    const study = await png(`studies/${s.study}/thumbnail`);
    assert.deepEqual([study.width, study.height], [64, 48]);
    assert.equal(which(study), 2);
    assert.equal(which(await png(`${series}/thumbnail`)), 2);
    // An instance and a frame are themselves.
    assert.equal(which(await png(`${series}/instances/${s.ct.slices[4]}/thumbnail`)), 4);
    assert.equal(which(await png(`${series}/instances/${s.ct.slices[1]}/frames/1/thumbnail`)), 1);
    // The middle of 2 instances is the first.
    const small = await png(`studies/${s.study}/series/${s.small.series}/thumbnail`);
    const first = await png(
      `studies/${s.study}/series/${s.small.series}/instances/${s.small.sops[0]}/rendered`,
    );
    assert.deepEqual(small.grey, first.grey);

    // A multi-frame instance: its middle frame, 8 of 15; a frame thumbnail is that frame.
    const f = s.files["rtdose.dcm"];
    const dose = `studies/${f.study}/series/${f.series}/instances/${f.sop}`;
    const frames = await Promise.all(
      Array.from({ length: 15 }, (_, i) => png(`${dose}/frames/${i + 1}/rendered`)),
    );
    const frameOf = (image: { grey: Uint8Array }) =>
      frames.map((fr, i) => fr.grey.every((v, j) => v === image.grey[j]) ? i + 1 : 0)
        .filter(Boolean);
    assert.ok(frameOf(frames[7]).length < 15, "the dose frames are not all alike");
    assert.ok(frameOf(await png(`${dose}/thumbnail`)).includes(8));
    assert.deepEqual(frameOf(await png(`${dose}/thumbnail`)), frameOf(frames[7]));
    assert.deepEqual((await png(`${dose}/frames/3/thumbnail`)).grey, frames[2].grey);
    // The file's study is one RTDOSE series: a study of only that still has a thumbnail.
    assert.deepEqual((await png(`studies/${f.study}/thumbnail`)).grey, frames[7].grey);

    // The instance's own VOI window (MR_small: 600/1600) is used.
    const mr = s.files["MR_small.dcm"];
    const mrPath = `studies/${mr.study}/series/${mr.series}/instances/${mr.sop}`;
    const own = await png(`${mrPath}/thumbnail`);
    assert.deepEqual(own.grey, (await png(`${mrPath}/rendered?window=600,1600`)).grey);
    assert.notDeepEqual(own.grey, (await png(`${mrPath}/rendered?window=300,600`)).grey);
    // No window in CT_small: the pixel range, so the image spans black to (nearly) white.
    const ct = s.files["CT_small.dcm"];
    const auto = await png(`studies/${ct.study}/series/${ct.series}/thumbnail`);
    assert.ok(Math.min(...auto.grey) === 0 && Math.max(...auto.grey) >= 250);
  },
);

backendTest(
  "thumbnail: Accept image/jpeg (OHIF), ?accept=, viewport, default size, Cache-Control",
  async (ctx) => {
    const s = await seedRendered(ctx, SEED);
    const series = `studies/${s.study}/series/${s.ct.series}`;
    // OHIF's default: the series thumbnail with Accept: image/jpeg.
    const jpeg = await get(ctx, `${series}/thumbnail`, "image/jpeg");
    assert.equal(jpeg.status, 200);
    assert.equal(jpeg.headers.get("content-type"), "image/jpeg");
    assert.match(jpeg.headers.get("cache-control")!, /^private, max-age=\d+$/);
    assert.equal(jpeg.headers.get("vary"), "Accept");
    const image = decodeImage(jpeg.bytes);
    assert.deepEqual([image.type, image.width, image.height], ["image/jpeg", 64, 48]);
    // thumbnailDirect: the instance's thumbnail, the type in the query beating the header.
    const inst = `${series}/instances/${s.ct.slices[2]}`;
    const direct = await get(
      ctx,
      `${inst}/thumbnail?accept=image/png`,
      'multipart/related; type="application/octet-stream"',
    );
    assert.equal(direct.status, 200);
    assert.deepEqual(pngSize(direct.bytes), { width: 64, height: 48 });
    const gif = await get(ctx, `studies/${s.study}/thumbnail`, "image/gif");
    assert.equal(gif.headers.get("content-type"), "image/gif");
    assert.deepEqual(decodeImage(gif.bytes).grey, decodeImage(direct.bytes).grey);
    // The viewport: fits inside, aspect kept, at every level.
    for (const path of [`studies/${s.study}`, series, inst, `${inst}/frames/1`]) {
      const small = await get(ctx, `${path}/thumbnail?viewport=40,40`, "image/jpeg");
      const d = decodeImage(small.bytes);
      assert.deepEqual([d.width, d.height], [40, 30], path);
      const tall = await get(ctx, `${path}/thumbnail?viewport=16,100&accept=image/png`);
      assert.deepEqual(pngSize(tall.bytes), { width: 16, height: 12 }, path);
    }
    // Only multipart acceptable: a multipart/related of the one image.
    const multi = await fetch(`${ctx.origin}/dicomweb/${series}/thumbnail`, {
      headers: { accept: 'multipart/related; type="image/png"' },
    });
    const { parts } = await multipartParts(multi);
    assert.equal(parts.length, 1);
    assert.deepEqual(parts[0].body, direct.bytes);
    const pdf = await get(ctx, `${series}/thumbnail`, "application/pdf");
    assert.equal(pdf.status, 406);
    assert.equal(pdf.json().resourceType, "OperationOutcome");

    // Without a viewport a large image shrinks to fit 256 × 256 (a small one stays as it is).
    const large = generateStudy({ seed: SEED + 1, slices: 1, rows: 320, cols: 512, lesions: 0 });
    const stored = await stowInstances(`${ctx.origin}/dicomweb`, large.instances);
    assert.equal(stored.status, 200);
    const l = large.plan.study;
    const shrunk = await get(
      ctx,
      `studies/${l.studyInstanceUid}/series/${l.seriesInstanceUid}/thumbnail?accept=image/png`,
    );
    assert.deepEqual(pngSize(shrunk.bytes), { width: 256, height: 160 });
    const full = await get(
      ctx,
      `studies/${l.studyInstanceUid}/series/${l.seriesInstanceUid}/instances/${
        large.plan.sopInstanceUids[0]
      }/rendered?accept=image/png`,
    );
    assert.deepEqual(pngSize(full.bytes), { width: 512, height: 320 }, "rendered is full size");
  },
);

backendTest(
  "thumbnail: an SR is refused (406), unknown study, series, instance and frame are 404",
  async (ctx) => {
    const s = await seedRendered(ctx, SEED);
    const refused = async (path: string, status: number, pattern: RegExp) => {
      const res = await get(ctx, path, "image/jpeg");
      assert.equal(res.status, status, path);
      const body = res.json();
      assert.equal(body.resourceType, "OperationOutcome", path);
      assert.match(body.issue[0].diagnostics, pattern, path);
    };
    const sr = s.files["test-SR.dcm"];
    await refused(
      `studies/${sr.study}/series/${sr.series}/instances/${sr.sop}/thumbnail`,
      406,
      /no pixel data/,
    );
    await refused(
      `studies/${sr.study}/series/${sr.series}/thumbnail`,
      406,
      /no instance with pixel/,
    );
    await refused(`studies/${sr.study}/thumbnail`, 406, /no instance with pixel data/);
    await refused(
      `studies/${s.study}/series/${s.sr.series}/instances/${s.sr.sops[0]}/thumbnail`,
      406,
      /1\.2\.840\.10008\.5\.1\.4\.1\.1\.88\.11/,
    );
    await refused(
      `studies/1.2.3.4.5.6.999/thumbnail`,
      404,
      /Study 1\.2\.3\.4\.5\.6\.999 not found/,
    );
    await refused(`studies/${s.study}/series/1.2.3.999/thumbnail`, 404, /not found/);
    await refused(
      `studies/${s.study}/series/${s.ct.series}/instances/1.2.3.999/thumbnail`,
      404,
      /not found/,
    );
    const inst = `studies/${s.study}/series/${s.ct.series}/instances/${s.ct.slices[0]}`;
    await refused(`${inst}/frames/2/thumbnail`, 404, /Frame 2 does not exist/);
    await refused(`${inst}/frames/0/thumbnail`, 400, /positive integers/);
    await refused(`${inst}/frames/1,2/thumbnail`, 400, /one frame/);
  },
);
