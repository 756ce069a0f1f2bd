// deno-lint-ignore-file no-explicit-any
/**
 * @module WADO-RS black-box tests: retrieval of the exact stored bytes (multipart and bare),
 * transfer-syntax negotiation, metadata whose BulkDataURIs resolve, frames of uncompressed,
 * big endian, native multi-frame and RLE files, and 404s with an OperationOutcome.
 */
import assert from "node:assert/strict";
import dicomParser from "dicom-parser";
import { createApp } from "../../app.ts";
import { backendTest, type TestContext } from "../_harness.ts";
import {
  assertSameBytes,
  CT_SMALL,
  dicomJson,
  FILES,
  multipartParts,
  newUid,
  pydicom,
  seedFiles,
  seedStudy,
  value,
} from "./_dicomweb_util.ts";

backendTest(
  "WADO-RS: study, series and instance as multipart of the exact stored bytes",
  async (ctx) => {
    const { study, series, instances } = await seedStudy(ctx);
    const retrieve = async (path: string, accept?: string) =>
      await fetch(`${ctx.origin}/dicomweb/${path}`, { headers: accept ? { accept } : {} });
    const partsOf = async (res: Response) => {
      assert.equal(res.status, 200);
      const { type, parts } = await multipartParts(res);
      assert.equal(type, "application/dicom");
      for (const p of parts) {
        assert.equal(
          p.headers.get("content-type"),
          "application/dicom; transfer-syntax=1.2.840.10008.1.2.1",
        );
      }
      return parts;
    };
    const bySop = new Map(instances.map((i) => [i.sop, i.bytes]));
    const check = (parts: { headers: Headers; body: Uint8Array }[], sops: string[]) => {
      assert.equal(parts.length, sops.length);
      const seen = parts.map((p) => p.headers.get("content-location")!.split("/").pop()!);
      assert.deepEqual([...seen].sort(), [...sops].sort());
      parts.forEach((p, i) => assertSameBytes(p.body, bySop.get(seen[i])!, seen[i]));
      // Each part says its length, so a client can copy it instead of searching for the boundary.
      parts.forEach((p) => assert.equal(p.headers.get("content-length"), String(p.body.length)));
    };
    const multi = 'multipart/related; type="application/dicom"';
    check(await partsOf(await retrieve(`studies/${study}`, multi)), instances.map((i) => i.sop));
    check(
      await partsOf(await retrieve(`studies/${study}/series/${series[1]}`)),
      instances.slice(2).map((i) => i.sop),
    );
    const one = `studies/${study}/series/${series[0]}/instances/${instances[1].sop}`;
    check(await partsOf(await retrieve(one, multi)), [instances[1].sop]);
    check(await partsOf(await retrieve(one, `${multi}; transfer-syntax=*`)), [instances[1].sop]);
    check(
      await partsOf(await retrieve(one, `${multi}; transfer-syntax=1.2.840.10008.1.2.1`)),
      [instances[1].sop],
    );
    const bare = await retrieve(one, "application/dicom");
    assert.equal(bare.status, 200);
    assert.match(bare.headers.get("content-type")!, /^application\/dicom\b/);
    assertSameBytes(new Uint8Array(await bare.arrayBuffer()), instances[1].bytes);
    for (
      const accept of [
        `${multi}; transfer-syntax=1.2.840.10008.1.2.4.50`,
        "application/dicom; transfer-syntax=1.2.840.10008.1.2.4.90",
        "image/jpeg",
      ]
    ) {
      const res = await retrieve(one, accept);
      assert.equal(res.status, 406, accept);
      assert.equal((await res.json()).resourceType, "OperationOutcome");
    }
    const ts = await retrieve(
      `studies/${study}`,
      `${multi}; transfer-syntax=1.2.840.10008.1.2.4.50`,
    );
    assert.equal(ts.status, 406);
    await ts.body?.cancel();
  },
);

backendTest("WADO-RS of the pydicom files returns each stored file unchanged", async (ctx) => {
  const items = await seedFiles(ctx);
  for (const [file, item] of items) {
    const url = value(item, "00081190").replace(/^.*\/dicomweb/, `${ctx.origin}/dicomweb`);
    const res = await fetch(url);
    const { parts } = await multipartParts(res);
    assert.equal(parts.length, 1, file);
    assertSameBytes(parts[0].body, pydicom(file), file);
  }
});

/** Every BulkDataURI in a DICOM JSON object, at any depth. */
function bulkUris(json: any, out: string[] = []): string[] {
  for (const a of Object.values(json ?? {}) as any[]) {
    if (a?.BulkDataURI) out.push(a.BulkDataURI);
    for (const v of a?.Value ?? []) {
      if (v && typeof v === "object" && !("Alphabetic" in v)) bulkUris(v, out);
    }
  }
  return out;
}

backendTest(
  "WADO-RS metadata: study, series, instance; every BulkDataURI resolves",
  async (ctx) => {
    await seedFiles(ctx);
    const { study, series } = CT_SMALL;
    const meta = async (path: string) => {
      const res = await dicomJson(ctx, path);
      assert.equal(res.status, 200, `${path}: ${JSON.stringify(res.body)}`);
      assert.equal(res.headers.get("content-type"), "application/dicom+json");
      return res.body as any[];
    };
    const [inst] = await meta(
      `studies/${study}/series/${series}/instances/${CT_SMALL.sop}/metadata`,
    );
    assert.equal(value(inst, "00080018"), CT_SMALL.sop);
    assert.equal(value(inst, "00100010"), "CompressedSamples^CT1");
    assert.equal(value(inst, "00280010"), 128);
    assert.equal(inst["00280010"].vr, "US");
    for (const computed of ["00201206", "00201208", "00201209", "00080056"]) {
      assert.equal(inst[computed], undefined, `${computed} exists only in query results`);
    }
    assert.equal((await meta(`studies/${study}/series/${series}/metadata`)).length, 1);
    assert.equal((await meta(`studies/${study}/metadata`)).length, 1);
    const ds = dicomParser.parseDicom(pydicom("CT_small.dcm"));
    const px = ds.elements.x7fe00010;
    const pixelData = ds.byteArray.subarray(px.dataOffset, px.dataOffset + px.length);
    const pixelUri = inst["7FE00010"].BulkDataURI as string;
    assert.equal(
      pixelUri,
      `${ctx.origin}/dicomweb/studies/${study}/series/${series}/instances/${CT_SMALL.sop}/bulkdata/7FE00010`,
    );
    const bulk = await multipartParts(await fetch(pixelUri));
    assert.equal(bulk.parts.length, 1);
    assertSameBytes(bulk.parts[0].body, pixelData, "pixel data");

    // Every BulkDataURI of every stored file resolves to bytes.
    let resolved = 0;
    for (const file of FILES) {
      const parsed = dicomParser.parseDicom(pydicom(file));
      const sop = parsed.string("x00080018")!;
      const [m] = (await meta(`instances?SOPInstanceUID=${sop}`)).map((r) => value(r, "00081190"));
      const [md] =
        await (await fetch(`${m.replace(/^.*\/dicomweb/, `${ctx.origin}/dicomweb`)}/metadata`))
          .json();
      for (const uri of bulkUris(md)) {
        const res = await fetch(uri.replace(/^.*\/dicomweb/, `${ctx.origin}/dicomweb`));
        assert.equal(res.status, 200, `${file} ${uri}`);
        const { parts } = await multipartParts(res);
        assert.equal(parts.length, 1);
        assert.ok(parts[0].body.length > 0, `${file} ${uri}`);
        resolved++;
      }
    }
    assert.ok(resolved >= FILES.length, `${resolved} BulkDataURIs`);
    // Bulk data of a big endian file comes in little endian too (the default transfer syntax).
    const mrSop = dicomParser.parseDicom(pydicom("MR_small.dcm")).string("x00080018")!;
    const [mrRow] = await meta(`instances?SOPInstanceUID=${mrSop}`);
    const mrUrl = value(mrRow, "00081190").replace(/^.*\/dicomweb/, `${ctx.origin}/dicomweb`);
    const [mrMeta] = await (await fetch(`${mrUrl}/metadata`)).json();
    assert.equal(value(mrMeta, "00280010"), 64, "Rows read in big endian");
    const mrPixels = dicomParser.parseDicom(pydicom("MR_small.dcm")).elements.x7fe00010;
    const mrBulk = await multipartParts(await fetch(mrMeta["7FE00010"].BulkDataURI));
    assertSameBytes(
      mrBulk.parts[0].body,
      pydicom("MR_small.dcm").subarray(mrPixels.dataOffset, mrPixels.dataOffset + mrPixels.length),
      "MR pixel data (little endian)",
    );
    const missing = await fetch(`${pixelUri.replace("7FE00010", "00091234")}`);
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
  },
);

backendTest(
  "WADO-RS frames: uncompressed, native multi-frame, RLE multi-frame, out of range",
  async (ctx) => {
    const items = await seedFiles(ctx);
    const framesOf = async (file: string, list: string, status = 200) => {
      const url = `${
        value(items.get(file), "00081190").replace(/^.*\/dicomweb/, `${ctx.origin}/dicomweb`)
      }/frames/${list}`;
      const res = await fetch(url);
      assert.equal(res.status, status, `${file} frames ${list}`);
      if (status !== 200) {
        assert.equal((await res.json()).resourceType, "OperationOutcome");
        return [];
      }
      return (await multipartParts(res)).parts;
    };
    const pixels = (file: string) => {
      const ds = dicomParser.parseDicom(pydicom(file));
      const px = ds.elements.x7fe00010;
      return { ds, px, bytes: ds.byteArray.subarray(px.dataOffset, px.dataOffset + px.length) };
    };
    // CT_small: 128×128, 16 bits, one frame.
    const [ct] = await framesOf("CT_small.dcm", "1");
    assert.equal(ct.body.length, 128 * 128 * 2);
    assertSameBytes(ct.body, pixels("CT_small.dcm").bytes, "CT frame 1");
    assert.match(ct.headers.get("content-type")!, /^application\/octet-stream/);
    await framesOf("CT_small.dcm", "2", 404);
    // A big endian file's frame comes in little endian: the pixels of MR_small.dcm.
    const [mr] = await framesOf("MR_small_bigendian.dcm", "1");
    assert.match(mr.headers.get("content-type")!, /transfer-syntax=1\.2\.840\.10008\.1\.2\.1$/);
    assertSameBytes(mr.body, pixels("MR_small.dcm").bytes, "MR frame 1 (little endian)");
    await framesOf("CT_small.dcm", "0", 404);
    // rtdose.dcm: 15 native frames of 10×10×32 bits.
    const dose = pixels("rtdose.dcm").bytes;
    const [f1, f2] = await framesOf("rtdose.dcm", "1,2");
    assertSameBytes(f1.body, dose.subarray(0, 400), "dose frame 1");
    assertSameBytes(f2.body, dose.subarray(400, 800), "dose frame 2");
    const [f15] = await framesOf("rtdose.dcm", "15");
    assertSameBytes(f15.body, dose.subarray(14 * 400, 15 * 400), "dose frame 15");
    await framesOf("rtdose.dcm", "16", 404);
    // SC_rgb_rle_2frame.dcm: two RLE frames, one fragment each.
    const { ds, px } = pixels("SC_rgb_rle_2frame.dcm");
    const rle = await framesOf("SC_rgb_rle_2frame.dcm", "1,2");
    assert.equal(rle.length, 2);
    rle.forEach((part, i) => {
      assert.match(
        part.headers.get("content-type")!,
        /^image\/dicom-rle; transfer-syntax=1\.2\.840\.10008\.1\.2\.5$/,
      );
      const expected = dicomParser.readEncapsulatedPixelDataFromFragments(ds, px, i, 1);
      assertSameBytes(part.body, new Uint8Array(expected), `RLE frame ${i + 1}`);
    });
    assert.notDeepEqual(rle[0].body, rle[1].body);
    await framesOf("SC_rgb_rle_2frame.dcm", "3", 404);
    await framesOf("SC_rgb_rle_2frame.dcm", "x", 400);
  },
);

backendTest(
  "WADO-RS: unknown study, series, instance answer 404 with an OperationOutcome",
  async (ctx) => {
    await seedFiles(ctx);
    const { study, series, sop } = CT_SMALL;
    for (
      const path of [
        `studies/${newUid()}`,
        `studies/${newUid()}/metadata`,
        `studies/${study}/series/${newUid()}`,
        `studies/${study}/series/${series}/instances/${newUid()}`,
        `studies/${study}/series/${series}/instances/${newUid()}/metadata`,
        `studies/${study}/series/${series}/instances/${newUid()}/frames/1`,
        `studies/${newUid()}/series/${series}/instances/${sop}`,
        "no/such/resource",
      ]
    ) {
      const res = await fetch(`${ctx.origin}/dicomweb/${path}`);
      assert.equal(res.status, 404, path);
      const body = await res.json();
      assert.equal(body.resourceType, "OperationOutcome", path);
      assert.equal(body.issue[0].code, "not-found");
    }
  },
);

/** Deletes the stored object of each SOP Instance UID (as if the store lost it). */
async function loseObjects(ctx: TestContext, sops: string[]): Promise<void> {
  for (const sop of sops) {
    const [row] = await ctx.services.db.query<{ object_key: string }>(
      `SELECT object_key FROM dicom_instance WHERE sop_uid = $1`,
      [sop],
    );
    await ctx.services.store.delete(row.object_key);
  }
}

backendTest(
  "WADO-RS with objects missing from the store: 206 with the others and a Warning naming them; all missing is a 404",
  async (ctx) => {
    const { study, series, instances } = await seedStudy(ctx);
    const [a, b, c, d] = instances; // a, b in series[0]; c, d in series[1]
    await loseObjects(ctx, [b.sop]);
    const get = (path: string, accept?: string) =>
      fetch(`${ctx.origin}/dicomweb/${path}`, { headers: accept ? { accept } : {} });
    const sopsOf = (parts: { headers: Headers }[]) =>
      parts.map((p) => p.headers.get("content-location")!.split("/").pop()!).sort();

    // The study: 206, the three present instances, exact bytes, a Warning naming the missing one.
    const partial = await get(`studies/${study}`);
    assert.equal(partial.status, 206);
    const warning = partial.headers.get("warning") ?? "";
    assert.match(warning, /^299 - "1 of 4 instances are missing from the object store/);
    assert.ok(warning.includes(`"Instance ${b.sop} is missing from the object store"`), warning);
    const { parts } = await multipartParts(partial);
    assert.deepEqual(sopsOf(parts), [a.sop, c.sop, d.sop].sort());
    for (const part of parts) {
      const sop = part.headers.get("content-location")!.split("/").pop()!;
      assertSameBytes(part.body, instances.find((i) => i.sop === sop)!.bytes, sop);
    }
    // Its series: 206 with the other instance; the other series is whole: 200, no Warning.
    const seriesPartial = await get(`studies/${study}/series/${series[0]}`);
    assert.equal(seriesPartial.status, 206);
    assert.match(seriesPartial.headers.get("warning")!, /1 of 2 instances/);
    assert.deepEqual(sopsOf((await multipartParts(seriesPartial)).parts), [a.sop]);
    const whole = await get(`studies/${study}/series/${series[1]}`);
    assert.equal(whole.status, 200);
    assert.equal(whole.headers.get("warning"), null);
    assert.equal((await multipartParts(whole)).parts.length, 2);

    // The missing instance itself: 404 with an OperationOutcome, multipart or bare.
    for (const accept of [undefined, "application/dicom"]) {
      const res = await get(`studies/${study}/series/${series[0]}/instances/${b.sop}`, accept);
      assert.equal(res.status, 404, accept);
      const outcome = await res.json();
      assert.equal(outcome.resourceType, "OperationOutcome");
      assert.equal(outcome.issue[0].code, "not-found");
      assert.match(outcome.issue[0].diagnostics, new RegExp(`${b.sop}.* missing`));
    }
    // Every instance of a series missing: 404 saying so; the study is a 206 of the other series.
    await loseObjects(ctx, [a.sop]);
    const gone = await get(`studies/${study}/series/${series[0]}`);
    assert.equal(gone.status, 404);
    assert.equal(
      (await gone.json()).issue[0].diagnostics,
      `The bytes of all 2 instances of series ${series[0]} are missing from the object store`,
    );
    const half = await get(`studies/${study}`);
    assert.equal(half.status, 206);
    assert.match(half.headers.get("warning")!, /^299 - "2 of 4 instances/);
    assert.deepEqual(sopsOf((await multipartParts(half)).parts), [c.sop, d.sop].sort());
    // Metadata comes from the index, bytes or not.
    assert.equal((await dicomJson(ctx, `studies/${study}/metadata`)).body.length, 4);
  },
);

backendTest(
  "WADO-RS: an object that vanishes after the check aborts the multipart instead of skipping it",
  async (ctx) => {
    const { study, series, instances } = await seedStudy(ctx);
    // In process, so that nothing reads the body ahead of the test.
    const app = createApp(ctx.services);
    const res = await app.request(`${ctx.origin}/dicomweb/studies/${study}/series/${series[1]}`);
    assert.equal(res.status, 200, "both objects were there when the status was sent");
    await loseObjects(ctx, [instances[3].sop]);
    const reader = res.body!.getReader();
    const received: Uint8Array[] = [];
    await assert.rejects(async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        received.push(value);
      }
    }, new RegExp(`${instances[3].sop} vanished from the object store`));
    const text = new TextDecoder().decode(
      new Uint8Array(await new Blob(received as BlobPart[]).arrayBuffer()),
    );
    assert.ok(text.includes(instances[2].sop), "the first instance was sent");
    assert.ok(!/--\S+--\r\n$/.test(text), "no closing delimiter");
  },
);
