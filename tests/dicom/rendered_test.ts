/**
 * @module WADO-RS rendered resources: media type negotiation (the `accept` query parameter beats
 * the Accept header, q-values, 406 and 400), JPEG, PNG and GIF answers, viewport, and the rendered
 * study, series, instance and frame list as multipart/related of rendered frames.
 */
import assert from "node:assert/strict";
import { acceptRendered } from "../../dicom/rendered.ts";
import { encodeGif } from "../../dicom/codec/gif.ts";
import { DicomwebError } from "../../dicom/errors.ts";
import { backendTest } from "../_harness.ts";
import { multipartParts } from "./_dicomweb_util.ts";
import { decodeGif, decodeImage, get, pngSize, seedRendered } from "./_rendered_util.ts";

const SEED = 1801;
const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

Deno.test("acceptRendered: the query parameter first, then the header; q-values; 406 and 400", () => {
  const q = (s: string) => new URLSearchParams(s);
  const octets = 'multipart/related; type="application/octet-stream"; transfer-syntax=*';
  const cases: [string, string | undefined, boolean, string][] = [
    ["accept=image/jpeg", octets, true, "image/jpeg"],
    ["accept=image/png", "image/jpeg", true, "image/png"],
    ["", undefined, true, "image/jpeg"],
    ["", "image/png", true, "image/png"],
    ["", "image/webp, image/png;q=0.5, image/jpeg;q=0.8", true, "image/jpeg"],
    ["accept=image/png,image/jpeg", undefined, true, "image/png"],
    ["accept=image/png;q=0.4,image/gif;q=0.9", undefined, true, "image/gif"],
    ["", "image/png;q=0, image/*", true, "image/jpeg"],
    ["", "text/html, */*;q=0.1", true, "image/jpeg"],
    ["", 'multipart/related; type="image/png"', true, "multipart image/png"],
    ["", 'image/gif;q=0.2, multipart/related; type="image/png"', true, "multipart image/png"],
    ["", 'multipart/related; type="image/png"', false, "multipart image/png"],
    ["accept=multipart/related;type=image/gif", "image/jpeg", false, "multipart image/gif"],
    ["", "*/*", false, "multipart image/jpeg"],
    ["", undefined, false, "multipart image/jpeg"],
  ];
  for (const [query, header, single, want] of cases) {
    const got = acceptRendered(q(query), header, single);
    assert.equal(
      `${got.multipart ? "multipart " : ""}${got.type}`,
      want,
      `${query} | ${header} | ${single}`,
    );
  }
  const status = (query: string, header: string | undefined, single: boolean) => {
    try {
      acceptRendered(q(query), header, single);
    } catch (e) {
      assert.ok(e instanceof DicomwebError);
      return e.status;
    }
    return 200;
  };
  assert.equal(status("accept=application/pdf", "image/jpeg", true), 406, "the query decides");
  assert.equal(status("", octets, true), 406);
  assert.equal(status("", "video/mp4", true), 406);
  assert.equal(status("", "image/jpeg", false), 406, "a study is never one bare image");
  assert.equal(status("accept=image/jpeg,application/dicom", undefined, true), 400);
  assert.equal(status("", 'image/png, multipart/related; type="application/dicom"', true), 400);
});

Deno.test("encodeGif: grey is lossless, colour maps to the 6×7×6 palette, long runs reset LZW", () => {
  // Noise fills the 4096-entry LZW table several times over (clear codes inside the data).
  const width = 300;
  const height = 211;
  const grey = new Uint8Array(width * height);
  let x = 12345;
  for (let i = 0; i < grey.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    grey[i] = i % 7 === 0 ? 0 : x >>> 24;
  }
  const gif = decodeGif(encodeGif({ width, height, data: grey, channels: 1 }));
  assert.equal(gif.width, width);
  assert.equal(gif.height, height);
  for (let i = 0; i < grey.length; i++) {
    if (gif.palette[gif.indices[i] * 3] !== grey[i]) assert.fail(`pixel ${i} differs`);
  }
  const rgb = new Uint8Array([255, 0, 0, 0, 255, 0, 0, 0, 255, 128, 128, 128]);
  const colour = decodeGif(encodeGif({ width: 2, height: 2, data: rgb, channels: 3 }));
  const px = (
    i: number,
  ) => [...colour.palette.subarray(colour.indices[i] * 3, colour.indices[i] * 3 + 3)];
  assert.deepEqual([px(0), px(1), px(2)], [[255, 0, 0], [0, 255, 0], [0, 0, 255]]);
  assert.ok(px(3).every((v) => Math.abs(v - 128) <= 26), `grey 128 became ${px(3)}`);
  const single = decodeGif(
    encodeGif({ width: 1, height: 1, data: new Uint8Array([7]), channels: 1 }),
  );
  assert.deepEqual([...single.indices], [7]);
});

backendTest(
  "rendered: ?accept= beats the Accept header (OHIF); PNG, GIF, q-values, 406 and 400",
  async (ctx) => {
    const s = await seedRendered(ctx, SEED);
    const inst = `studies/${s.study}/series/${s.ct.series}/instances/${s.ct.slices[0]}`;
    const octets = 'multipart/related; type="application/octet-stream"; transfer-syntax=*';
    // What OHIF sends: a multipart Accept header, the wanted type in the query.
    const jpeg = await get(ctx, `${inst}/rendered?accept=image/jpeg`, octets);
    assert.equal(jpeg.status, 200, new TextDecoder().decode(jpeg.bytes));
    assert.equal(jpeg.headers.get("content-type"), "image/jpeg");
    assert.deepEqual([...jpeg.bytes.subarray(0, 3)], [0xff, 0xd8, 0xff]);
    assert.match(jpeg.headers.get("cache-control")!, /^private\b/);
    assert.deepEqual([decodeImage(jpeg.bytes).width, decodeImage(jpeg.bytes).height], [64, 48]);
    const framed = await get(ctx, `${inst}/frames/1/rendered?accept=image/jpeg`, octets);
    assert.equal(framed.status, 200);
    assert.deepEqual(framed.bytes, jpeg.bytes, "frame 1 is the instance's rendering");

    const png = await get(ctx, `${inst}/rendered?accept=image/png`, "image/jpeg");
    assert.equal(png.status, 200);
    assert.equal(png.headers.get("content-type"), "image/png");
    assert.deepEqual([...png.bytes.subarray(0, 8)], PNG_SIGNATURE);
    assert.deepEqual(pngSize(png.bytes), { width: 64, height: 48 });
    const pngImage = decodeImage(png.bytes);
    // The JPEG is the same picture, within JPEG's loss.
    const jpegImage = decodeImage(jpeg.bytes);
    let diff = 0;
    for (let i = 0; i < pngImage.grey.length; i++) {
      diff += Math.abs(pngImage.grey[i] - jpegImage.grey[i]);
    }
    assert.ok(diff / pngImage.grey.length < 4, `mean difference ${diff / pngImage.grey.length}`);

    // GIF of a grey image is lossless: the same pixels as the PNG.
    const gif = await get(ctx, `${inst}/rendered?accept=image/gif`);
    assert.equal(gif.status, 200);
    assert.equal(gif.headers.get("content-type"), "image/gif");
    const gifImage = decodeImage(gif.bytes);
    assert.deepEqual([gifImage.width, gifImage.height], [64, 48]);
    assert.deepEqual(gifImage.grey, pngImage.grey);

    // q-values, in the query as in the header; unsupported types are passed over.
    const preferred = await get(
      ctx,
      `${inst}/rendered?accept=image/webp,image/png;q=0.5,image/jpeg;q=0.4`,
    );
    assert.equal(preferred.headers.get("content-type"), "image/png");
    const header = await get(ctx, `${inst}/rendered`, "image/png;q=0.3, image/gif;q=0.7");
    assert.equal(header.headers.get("content-type"), "image/gif");
    // Multipart only acceptable: a multipart of the one image.
    const multi = await get(
      ctx,
      `${inst}/frames/1/rendered`,
      'multipart/related; type="image/png"',
    );
    assert.equal(multi.status, 200);
    const { type, parts } = await multipartParts(
      new Response(multi.bytes, { headers: multi.headers }),
    );
    assert.equal(type, "image/png");
    assert.equal(parts.length, 1);
    assert.deepEqual(parts[0].body, png.bytes);

    for (
      const [query, accept, status] of [
        ["accept=application/pdf", "image/jpeg", 406],
        ["", octets, 406],
        ["", "video/mp4", 406],
        ["accept=image/jpeg,application/dicom", undefined, 400],
      ] as const
    ) {
      const res = await get(ctx, `${inst}/rendered?${query}`, accept);
      assert.equal(res.status, status, `${query} ${accept}`);
      const body = res.json();
      assert.equal(body.resourceType, "OperationOutcome");
      assert.match(
        body.issue[0].diagnostics,
        status === 406 ? /image\/jpeg/ : /DICOM and rendered/,
      );
    }
  },
);

backendTest(
  "rendered study and series: multipart/related of every rendered frame; SR left out, 206",
  async (ctx) => {
    const s = await seedRendered(ctx, SEED);
    const series = `studies/${s.study}/series/${s.ct.series}`;
    const res = await fetch(`${ctx.origin}/dicomweb/${series}/rendered`, {
      headers: { accept: 'multipart/related; type="image/jpeg"' },
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get("cache-control")!, /^private\b/);
    const { type, parts } = await multipartParts(res);
    assert.equal(type, "image/jpeg");
    assert.equal(parts.length, 5);
    for (const [i, part] of parts.entries()) {
      assert.equal(part.headers.get("content-type"), "image/jpeg");
      const location = `${series}/instances/${s.ct.slices[i]}/frames/1/rendered`;
      assert.ok(part.headers.get("content-location")!.endsWith(location), location);
      // Each part is the slice's own rendering, byte for byte.
      const one = await get(ctx, `${series}/instances/${s.ct.slices[i]}/rendered`, "image/jpeg");
      assert.deepEqual(part.body, one.bytes, `slice ${i + 1}`);
    }

    // The study: every image frame (5 + 2 + 7), the 3 SR instances left out with a Warning.
    const study = await fetch(`${ctx.origin}/dicomweb/studies/${s.study}/rendered?viewport=16,16`, {
      headers: { accept: 'multipart/related; type="image/png"' },
    });
    assert.equal(study.status, 206);
    const warning = study.headers.get("warning")!;
    for (const sop of s.sr.sops) assert.ok(warning.includes(sop), `warning names ${sop}`);
    const all = await multipartParts(study);
    assert.equal(all.type, "image/png");
    assert.equal(all.parts.length, 14);
    const sizes = all.parts.map((p) => {
      const { width, height } = pngSize(p.body);
      return `${width}x${height}`;
    });
    // 64 × 48 slices fit 16 × 12; the 4 × 4 instances 16 × 16.
    assert.equal(sizes.filter((x) => x === "16x12").length, 5, sizes.join());
    assert.equal(sizes.filter((x) => x === "16x16").length, 9, sizes.join());

    // A bare image type is for one image: not for a study or series (PS3.18 10.4.4).
    for (const path of [`studies/${s.study}/rendered`, `${series}/rendered`]) {
      const refused = await get(ctx, path, "image/jpeg");
      assert.equal(refused.status, 406, path);
      assert.match(refused.json().issue[0].diagnostics, /multipart\/related; type="image\/jpeg"/);
      const byQuery = await get(
        ctx,
        `${path}?accept=multipart/related;type=image/gif`,
        "image/png",
      );
      assert.equal(byQuery.status, path.includes("series") ? 200 : 206);
      assert.match(byQuery.headers.get("content-type")!, /^multipart\/related; type="image\/gif"/);
    }
    const srOnly = await get(
      ctx,
      `studies/${s.study}/series/${s.sr.series}/rendered`,
      'multipart/related; type="image/jpeg"',
    );
    assert.equal(srOnly.status, 406);
    assert.match(srOnly.json().issue[0].diagnostics, /no pixel data/);
    const unknown = await get(
      ctx,
      `studies/1.2.3.999/rendered`,
      'multipart/related; type="image/jpeg"',
    );
    assert.equal(unknown.status, 404);
  },
);

backendTest(
  "rendered frames of a multi-frame instance: a list is multipart; viewport keeps the aspect",
  async (ctx) => {
    const s = await seedRendered(ctx, SEED);
    const f = s.files["rtdose.dcm"];
    const inst = `studies/${f.study}/series/${f.series}/instances/${f.sop}`;
    const list = await fetch(`${ctx.origin}/dicomweb/${inst}/frames/2,5,15/rendered`, {
      headers: { accept: 'multipart/related; type="image/png"' },
    });
    assert.equal(list.status, 200);
    const { parts } = await multipartParts(list);
    assert.deepEqual(
      parts.map((p) => p.headers.get("content-location")!.split("/").slice(-2, -1)[0]),
      ["2", "5", "15"],
    );
    for (const [i, n] of [2, 5, 15].entries()) {
      const one = await get(ctx, `${inst}/frames/${n}/rendered?accept=image/png`);
      assert.deepEqual(parts[i].body, one.bytes, `frame ${n}`);
    }
    const all = await fetch(`${ctx.origin}/dicomweb/${inst}/rendered`, {
      headers: { accept: 'multipart/related; type="image/png"' },
    });
    assert.equal((await multipartParts(all)).parts.length, 15, "every frame of the instance");
    const bare = await get(ctx, `${inst}/frames/2,5/rendered`, "image/png");
    assert.equal(bare.status, 406, "two frames are not one image");
    const beyond = await get(ctx, `${inst}/frames/16/rendered`, "image/png");
    assert.equal(beyond.status, 404);
    const bad = await get(ctx, `${inst}/frames/1,x/rendered`, "image/png");
    assert.equal(bad.status, 400);

    // MR_small is 64 × 64: a 100 × 40 viewport gives 40 × 40; CT slices 64 × 48 in 32 × 32: 32 × 24.
    const mr = s.files["MR_small.dcm"];
    const mrPath = `studies/${mr.study}/series/${mr.series}/instances/${mr.sop}`;
    const square = await get(ctx, `${mrPath}/rendered?viewport=100,40`, "image/jpeg");
    assert.deepEqual([decodeImage(square.bytes).width, decodeImage(square.bytes).height], [40, 40]);
    const ct = `studies/${s.study}/series/${s.ct.series}/instances/${s.ct.slices[2]}`;
    const wide = await get(ctx, `${ct}/rendered?viewport=32,32&accept=image/png`);
    assert.deepEqual(pngSize(wide.bytes), { width: 32, height: 24 });
    const big = await get(ctx, `${ct}/rendered?viewport=128,128`, "image/gif");
    const up = decodeImage(big.bytes);
    assert.deepEqual([up.type, up.width, up.height], ["image/gif", 128, 96]);
  },
);
