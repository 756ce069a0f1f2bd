/**
 * @module Tests of `dicom/synth`: generated files are read back with dicom-parser (independent of
 * the dcmjs writer) for headers, UIDs, geometry and Hounsfield units; determinism; lesion truth;
 * speed; the CLI flags; and STOW-RS posting against a local `Deno.serve` that parses the multipart.
 */

import assert from "node:assert/strict";
import dicomParser from "dicom-parser";
import { sliceAnatomy } from "../../dicom/synth/anatomy.ts";
import { parseSynthArgs } from "../../dicom/synth/cli_args.ts";
import { generateStudy, planStudy, streamStudy, type SynthStudy } from "../../dicom/synth/ct.ts";
import { zToT } from "../../dicom/synth/geometry.ts";
import { isValidUid } from "../../dicom/synth/rng.ts";
import { runSynth } from "../../dicom/synth/run.ts";
import { encodeMultipartRelated } from "../../dicom/synth/stow.ts";

type DataSet = ReturnType<typeof dicomParser.parseDicom>;

const SMALL = { seed: 7, rows: 128, cols: 128, slices: 20 } as const;
let cached: SynthStudy | undefined;
const small = (): SynthStudy => (cached ??= generateStudy(SMALL));
const parse = (bytes: Uint8Array): DataSet => dicomParser.parseDicom(bytes);

/** HU of every voxel of a parsed slice (stored × slope + intercept). */
function huOf(ds: DataSet): Float64Array {
  const el = ds.elements.x7fe00010;
  const raw = ds.byteArray.slice(el.dataOffset, el.dataOffset + el.length);
  const stored = new Int16Array(raw.buffer, raw.byteOffset, el.length / 2);
  const slope = ds.floatString("x00281053") ?? 1, intercept = ds.floatString("x00281052") ?? 0;
  return Float64Array.from(stored, (v) => v * slope + intercept);
}

/** Mean HU of a (2h+1)² square around (column, row). */
function meanAround(hu: Float64Array, cols: number, column: number, row: number, h = 1): number {
  let sum = 0, n = 0;
  for (let r = row - h; r <= row + h; r++) {
    for (let c = column - h; c <= column + h; c++) (sum += hu[r * cols + c]), n++;
  }
  return sum / n;
}

Deno.test("generateStudy() writes Part 10 CT Image Storage files with the required headers", () => {
  const { instances, truth } = small();
  assert.equal(instances.length, SMALL.slices);
  const sops = new Set<string>();
  const z: number[] = [];
  instances.forEach((bytes, i) => {
    const ds = parse(bytes);
    const s = (tag: string) => ds.string(tag);
    assert.equal(s("x00020010"), "1.2.840.10008.1.2.1");
    assert.equal(s("x00020002"), "1.2.840.10008.5.1.4.1.1.2");
    assert.equal(s("x00080016"), "1.2.840.10008.5.1.4.1.1.2");
    assert.equal(s("x00020003"), s("x00080018"));
    assert.ok(isValidUid(s("x00020012")!), "ImplementationClassUID");
    for (const tag of ["x0020000d", "x0020000e", "x00080018", "x00200052"]) {
      const uid = s(tag)!;
      assert.ok(isValidUid(uid) && uid.startsWith("2.25."), `${tag} ${uid}`);
    }
    assert.equal(s("x0020000d"), truth.study.studyInstanceUid);
    assert.equal(s("x0020000e"), truth.study.seriesInstanceUid);
    assert.equal(s("x00080018"), truth.sopInstanceUids[i]);
    sops.add(s("x00080018")!);
    assert.equal(ds.intString("x00200013"), i + 1);
    assert.match(s("x00100010")!, /^SYNTH\^[A-Z]+/);
    assert.match(s("x00100020")!, /^SYN\d{7}$/);
    assert.equal(s("x00100021"), "SYNTHETIC");
    assert.match(s("x00100030")!, /^\d{8}$/);
    assert.match(s("x00100040")!, /^[MF]$/);
    for (const tag of ["x00080020", "x00080021", "x00080023"]) assert.match(s(tag)!, /^\d{8}$/);
    assert.match(s("x00080030")!, /^\d{6}$/);
    assert.ok(s("x00080050") && s("x00080090") && s("x00200010"), "accession, referrer, study id");
    assert.equal(s("x00080060"), "CT");
    assert.equal(s("x00180015"), "CHEST");
    assert.equal(s("x00081030"), "CT CHEST");
    assert.ok(s("x0008103e"));
    assert.equal(s("x00080070"), "Synthetic");
    assert.equal(s("x00080008"), "ORIGINAL\\PRIMARY\\AXIAL");
    assert.equal(s("x00200037"), "1\\0\\0\\0\\1\\0");
    assert.equal(s("x00185100"), "HFS");
    assert.equal(ds.uint16("x00280010"), 128);
    assert.equal(ds.uint16("x00280011"), 128);
    assert.equal(ds.uint16("x00280002"), 1);
    assert.equal(s("x00280004"), "MONOCHROME2");
    assert.deepEqual(
      [16, 16, 15, 1],
      ["x00280100", "x00280101", "x00280102", "x00280103"]
        .map((t) => ds.uint16(t)),
    );
    assert.equal(ds.floatString("x00281052"), -1024);
    assert.equal(ds.floatString("x00281053"), 1);
    assert.equal(ds.floatString("x00281050"), -600);
    assert.equal(ds.floatString("x00281051"), 1500);
    assert.ok(ds.floatString("x00180060")! > 0, "KVP");
    assert.equal(ds.floatString("x00180050"), 2.5);
    assert.equal(ds.floatString("x00180088"), 2.5);
    const spacing = [ds.floatString("x00280030", 0)!, ds.floatString("x00280030", 1)!];
    assert.deepEqual(spacing, [2.8, 2.8]);
    assert.equal(ds.elements.x7fe00010.length, 128 * 128 * 2);
    z.push(ds.floatString("x00200032", 2)!);
  });
  assert.equal(sops.size, SMALL.slices, "SOP Instance UIDs are unique");
  for (let i = 1; i < z.length; i++) assert.ok(Math.abs(z[i - 1] - z[i] - 2.5) < 1e-3, `z ${i}`);
});

/** True when a voxel has a 26-neighbour for which `inside` holds. */
function touches(
  dc: number,
  dr: number,
  dk: number,
  inside: (dc: number, dr: number, dk: number) => boolean,
): boolean {
  for (let a = -1; a <= 1; a++) {
    for (let b = -1; b <= 1; b++) {
      for (let e = -1; e <= 1; e++) if (inside(dc + a, dr + b, dk + e)) return true;
    }
  }
  return false;
}

Deno.test("generateStudy() pixels: air outside, lung inside, lesions at their truth", () => {
  const { instances, truth, plan } = small();
  const g = plan.geometry;
  const hu = instances.map((b) => huOf(parse(b)));
  const mid = Math.floor(g.slices / 2);
  assert.ok(Math.abs(meanAround(hu[mid], g.cols, 4, 4, 3) + 1000) < 10, "air at the corner");
  // A lung point away from every lesion, from the phantom's own geometry.
  const lungs = sliceAnatomy(plan.anatomy, zToT(g, g.origin[2] - mid * g.sliceSpacing));
  const lung = [lungs.rightLung!, lungs.leftLung!].find((e) =>
    plan.lesions.every((l) => Math.hypot(l.x - e.cx, l.y - e.cy) > l.radiusMm + 10)
  )!;
  const column = Math.round((lung.cx - g.origin[0]) / g.pixelSpacing);
  const row = Math.round((lung.cy - g.origin[1]) / g.pixelSpacing);
  assert.ok(Math.abs(meanAround(hu[mid], g.cols, column, row) + 850) < 20, "lung ≈ -850");
  assert.ok(truth.lesions.length >= 1 && truth.lesions.length <= 3);
  for (const l of truth.lesions) {
    const { column: c, row: r, slice: k } = l.centerVoxel;
    assert.equal(l.centerSopInstanceUid, truth.sopInstanceUids[k]);
    assert.equal(l.centerInstanceNumber, k + 1);
    // Voxels of the sphere in a 3×3×3 box around the centre average to the lesion's HU.
    let sum = 0, n = 0;
    for (let dk = -1; dk <= 1; dk++) {
      for (let dr = -1; dr <= 1; dr++) {
        for (let dc = -1; dc <= 1; dc++) {
          const d = Math.hypot(dc * g.pixelSpacing, dr * g.pixelSpacing, dk * g.sliceSpacing);
          if (d <= l.radiusMm) (sum += hu[k + dk][(r + dr) * g.cols + c + dc]), n++;
        }
      }
    }
    assert.ok(Math.abs(sum / n - l.designHu) < 3 * 15 / Math.sqrt(n) + 2, `lesion ${l.id} HU`);
    assert.ok(Math.abs(l.meanHu - l.designHu) < 3 * 15 / Math.sqrt(l.voxelCount) + 1);
    assert.ok(l.designHu >= 30 && l.designHu <= 60 && l.radiusMm >= 3 && l.radiusMm <= 15);
    assert.ok(l.voxelCount > 0 && Math.abs(l.volumeMm3 - (4 / 3) * Math.PI * l.radiusMm ** 3) < 1);
    const { min, max } = l.boundingBox;
    assert.ok(min.column <= c && c <= max.column && min.row <= r && r <= max.row);
    assert.ok(min.slice <= k && k <= max.slice);
    // Every voxel touching the lesion from outside is lung: the lesion lies fully inside a lung.
    const inside = (dc: number, dr: number, dk: number): boolean =>
      Math.hypot(dc * g.pixelSpacing, dr * g.pixelSpacing, dk * g.sliceSpacing) <= l.radiusMm;
    let shell = 0;
    for (let dk = min.slice - k - 1; dk <= max.slice - k + 1; dk++) {
      for (let dr = min.row - r - 1; dr <= max.row - r + 1; dr++) {
        for (let dc = min.column - c - 1; dc <= max.column - c + 1; dc++) {
          if (inside(dc, dr, dk) || !touches(dc, dr, dk, inside)) continue;
          const v = hu[k + dk][(r + dr) * g.cols + c + dc];
          assert.ok(
            Math.abs(v + 850) < 80,
            `lesion ${l.id}: ${v} HU beside it at ${dc},${dr},${dk}`,
          );
          shell++;
        }
      }
    }
    assert.ok(shell > 0);
  }
});

Deno.test("generateStudy() is deterministic per seed and differs across seeds", () => {
  const a = small(), b = generateStudy(SMALL), c = generateStudy({ ...SMALL, seed: 8 });
  assert.equal(b.instances.length, a.instances.length);
  a.instances.forEach((bytes, i) => assert.deepEqual(b.instances[i], bytes, `slice ${i}`));
  assert.deepEqual(b.truth, a.truth);
  assert.notEqual(c.study.studyInstanceUid, a.study.studyInstanceUid);
  assert.notEqual(c.study.seriesInstanceUid, a.study.seriesInstanceUid);
  assert.ok(c.truth.sopInstanceUids.every((u) => !a.truth.sopInstanceUids.includes(u)));
  // Another size of the same seed: the same patient (age aside), a different study.
  const d = planStudy({ ...SMALL, slices: 30 });
  assert.deepEqual({ ...d.patient, age: "" }, { ...a.patient, age: "" });
  assert.notEqual(d.study.studyInstanceUid, a.study.studyInstanceUid);
});

Deno.test("planStudy() fits five separate lesions in the lungs, and rejects bad options", () => {
  for (let seed = 1; seed <= 10; seed++) {
    const plan = planStudy({ seed, lesions: 5 });
    assert.equal(plan.lesions.length, 5);
    for (const l of plan.lesions) {
      for (const o of plan.lesions) {
        if (o !== l) {
          assert.ok(Math.hypot(o.x - l.x, o.y - l.y, o.z - l.z) > o.radiusMm + l.radiusMm);
        }
      }
    }
  }
  assert.equal(planStudy({ seed: 3, lesions: 0 }).lesions.length, 0);
  assert.throws(() => planStudy({ seed: 1, lesions: 6 }), RangeError);
  assert.throws(() => planStudy({ seed: 1.5 }), RangeError);
  assert.throws(() => planStudy({ seed: 1, rows: 0 }), RangeError);
});

Deno.test("streamStudy() generates 512×512 slices quickly", () => {
  const started = performance.now();
  const stream = streamStudy({ seed: 11, slices: 10 });
  let n = 0;
  for (const instance of stream.instances) {
    assert.equal(instance.bytes.length > 512 * 512 * 2, true);
    n++;
  }
  const seconds = (performance.now() - started) / 1000;
  assert.equal(n, 10);
  const lesions = stream.truth().lesions;
  assert.ok(lesions.length >= 1);
  for (const l of lesions.filter((l) => l.radiusMm >= 5)) {
    assert.ok(Math.abs(l.voxelVolumeMm3 / l.volumeMm3 - 1) < 0.1, `lesion ${l.id} volume`);
  }
  console.log(`512×512: ${(n / seconds).toFixed(0)} slices/s`);
  assert.ok(seconds < 5, `10 slices took ${seconds.toFixed(2)} s`);
});

Deno.test("parseSynthArgs() reads flags, defaults and rejects bad ones", () => {
  const d = parseSynthArgs([]);
  assert.deepEqual([d.out, d.studies, d.slices, d.size, d.seed, d.batch, d.write], [
    "./data/synth",
    1,
    100,
    512,
    1,
    20,
    true,
  ]);
  const a = parseSynthArgs([
    "--studies",
    "3",
    "--size=256",
    "--post",
    "http://h/dicomweb",
    "--no-write",
  ]);
  assert.deepEqual([a.studies, a.size, a.post, a.write], [3, 256, "http://h/dicomweb", false]);
  assert.equal(parseSynthArgs(["--help"]).help, true);
  for (const bad of [["--slices", "x"], ["--bogus", "1"], ["--batch", "0"], ["--no-write"]]) {
    assert.throws(() => parseSynthArgs(bad), Error, bad.join(" "));
  }
});

Deno.test("encodeMultipartRelated() frames each instance as an application/dicom part", async () => {
  const { contentType, body } = encodeMultipartRelated([
    new Uint8Array([1, 2]),
    new Uint8Array([3]),
  ], "b1");
  assert.equal(contentType, 'multipart/related; type="application/dicom"; boundary=b1');
  const text = new TextDecoder("latin1").decode(await body.arrayBuffer());
  const part = (s: string) => `--b1\r\nContent-Type: application/dicom\r\n\r\n${s}\r\n`;
  assert.equal(text, `${part("\x01\x02")}${part("\x03")}--b1--\r\n`);
});

/** A tiny multipart/related reader, written from RFC 2046 for this test only. */
function readMultipart(
  body: Uint8Array,
  boundary: string,
): { headers: string; data: Uint8Array }[] {
  const delimiter = new TextEncoder().encode(`\r\n--${boundary}`);
  const find = (from: number): number => {
    outer: for (let i = from; i <= body.length - delimiter.length; i++) {
      for (let j = 0; j < delimiter.length; j++) if (body[i + j] !== delimiter[j]) continue outer;
      return i;
    }
    return -1;
  };
  // The first delimiter has no leading CRLF: pretend there is one.
  const prefix = new TextEncoder().encode(`--${boundary}\r\n`);
  assert.deepEqual(body.subarray(0, prefix.length), prefix);
  const parts = [];
  let start = prefix.length;
  for (;;) {
    const end = find(start);
    assert.ok(end > 0, "closing delimiter");
    const headerEnd = new TextDecoder().decode(body.subarray(start, start + 200)).indexOf(
      "\r\n\r\n",
    );
    parts.push({
      headers: new TextDecoder().decode(body.subarray(start, start + headerEnd)),
      data: body.slice(start + headerEnd + 4, end),
    });
    const after = new TextDecoder().decode(
      body.subarray(end + delimiter.length, end + delimiter.length + 2),
    );
    if (after === "--") return parts;
    start = end + delimiter.length + 2;
  }
}

Deno.test("runSynth() writes files and truth.json and posts STOW-RS batches", async () => {
  const received: { contentType: string; parts: { headers: string; data: Uint8Array }[] }[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    if (req.method !== "POST" || url.pathname !== "/dicomweb/studies") {
      return new Response("not found", { status: 404 });
    }
    const contentType = req.headers.get("content-type") ?? "";
    const boundary = /boundary=("?)([^";]+)\1/.exec(contentType)![2];
    const parts = readMultipart(new Uint8Array(await req.arrayBuffer()), boundary);
    received.push({ contentType, parts });
    const items = parts.map((p) => ({
      "00081155": { vr: "UI", Value: [parse(p.data).string("x00080018")] },
    }));
    return Response.json({ "00081199": { vr: "SQ", Value: items } }, {
      headers: { "content-type": "application/dicom+json" },
    });
  });
  const out = await Deno.makeTempDir({ prefix: "synth_test_" });
  try {
    const lines: string[] = [];
    const base = `http://127.0.0.1:${server.addr.port}/dicomweb/`;
    const args = {
      ...parseSynthArgs(["--generator", "v1", "--out", out, "--slices", "20", "--size", "64"]),
      post: base,
      batch: 7,
    };
    const summary = await runSynth(args, (l) => lines.push(l));
    assert.deepEqual([summary.instances, summary.requests, summary.failedRequests], [20, 3, 0]);
    assert.deepEqual(received.map((r) => r.parts.length), [7, 7, 6]);
    for (const r of received) {
      assert.match(r.contentType, /^multipart\/related; type="application\/dicom"; boundary=/);
      for (const p of r.parts) assert.match(p.headers, /^Content-Type: application\/dicom$/i);
    }
    const studyUid = summary.studyInstanceUids[0];
    const sent = received.flatMap((r) => r.parts.map((p) => p.data));
    for (let i = 0; i < 20; i++) {
      const file = await Deno.readFile(`${out}/${studyUid}/${String(i + 1).padStart(4, "0")}.dcm`);
      assert.deepEqual(sent[i], file, `instance ${i + 1} posted as written`);
    }
    const truth = JSON.parse(await Deno.readTextFile(`${out}/${studyUid}/truth.json`));
    assert.equal(truth.study.studyInstanceUid, studyUid);
    assert.equal(truth.sopInstanceUids.length, 20);
    assert.ok(lines.some((l) => /POST 15-20: HTTP 200 6 instances .* stored=6 failed=0/.test(l)));
    assert.match(
      lines.at(-1)!,
      /^done: 1 studies, 20 instances, .* MB in .* s, 3 requests \(0 failed\)/,
    );
  } finally {
    await server.shutdown();
    await Deno.remove(out, { recursive: true });
  }
});
