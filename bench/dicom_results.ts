/**
 * @module What writing an analysis's DICOM results costs as studies grow: the SEG (one segment per
 * finding, on the source grid) and the TID 1500 SR, for series of 256² × 100 up to 512² × 600
 * slices with 5 spherical findings of 10 mm radius, each written 3 times (median reported).
 *
 *   deno run -A bench/dicom_results.ts
 */
import { CODES, uidFrom, writeSegmentation } from "../dicom/codec/seg_writer.ts";
import { writeMeasurementReport } from "../dicom/codec/sr_writer.ts";
import { machine } from "./_host.ts";

const CASES = [
  { size: 256, slices: 100 },
  { size: 512, slices: 300 },
  { size: 512, slices: 600 },
];
const FINDINGS = 5;
const SPACING = 0.7;
const RADIUS_MM = 10;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

console.log(`Machine: ${await machine()}`);
console.log("");
console.log("| Series | Frames | SEG ms | SEG MB | SR ms | SR KB | label planes asked for |");
console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
for (const c of CASES) {
  const centres = Array.from({ length: FINDINGS }, (_, i) => ({
    x: c.size * (0.2 + 0.15 * i),
    y: c.size * (0.3 + 0.1 * i),
    z: c.slices * (0.15 + 0.17 * i),
  }));
  const r = RADIUS_MM / SPACING;
  let asked = 0;
  // Computed on demand, as the sidecar's segmentation does.
  const maskSlice = (z: number): Uint8Array | null => {
    asked++;
    let plane: Uint8Array | null = null;
    centres.forEach((o, n) => {
      const dz = z - o.z;
      if (Math.abs(dz) > r) return;
      const rr = Math.sqrt(r * r - dz * dz);
      plane ??= new Uint8Array(c.size * c.size);
      for (let y = Math.ceil(o.y - rr); y <= o.y + rr; y++) {
        for (let x = Math.ceil(o.x - rr); x <= o.x + rr; x++) {
          if ((x - o.x) ** 2 + (y - o.y) ** 2 <= rr * rr) plane[y * c.size + x] = n + 1;
        }
      }
    });
    return plane;
  };
  const sops = Array.from({ length: c.slices }, (_, z) => uidFrom(`bench:${c.size}:${z}`));
  const source = {
    patientStudy: { PatientName: "BENCH^SEG", PatientID: "B1" },
    studyInstanceUid: uidFrom("bench:study"),
    seriesInstanceUid: uidFrom(`bench:series:${c.size}:${c.slices}`),
    frameOfReferenceUid: uidFrom("bench:for"),
    sopClassUid: "1.2.840.10008.5.1.4.1.1.2",
  };
  const segTimes: number[] = [], srTimes: number[] = [];
  let seg: Uint8Array = new Uint8Array(), sr: Uint8Array = new Uint8Array(), frames = 0;
  for (let round = 0; round < 3; round++) {
    asked = 0;
    let t = performance.now();
    seg = writeSegmentation({
      source: {
        ...source,
        sopInstanceUids: sops,
        rows: c.size,
        columns: c.size,
        pixelSpacing: [SPACING, SPACING],
        spacingBetweenSlices: SPACING,
        orientation: [1, 0, 0, 0, 1, 0],
        positions: sops.map((_, z) => [0, 0, -z * SPACING]),
      },
      segments: centres.map((_, n) => ({
        number: n + 1,
        label: `Nodule ${n + 1}`,
        category: CODES.morphologicallyAltered,
        type: CODES.nodule,
      })),
      algorithm: {
        name: "bench",
        version: "1",
        manufacturer: "bench",
        modelName: "bench",
        softwareVersions: "1",
      },
      maskSlice,
      seriesInstanceUid: uidFrom("bench:seg-series"),
      sopInstanceUid: uidFrom("bench:seg"),
      seriesNumber: 9001,
      seriesDescription: "bench SEG",
      contentLabel: "BENCH",
    });
    segTimes.push(performance.now() - t);
    frames = Math.round(FINDINGS * (2 * r + 1));
    t = performance.now();
    sr = writeMeasurementReport({
      source,
      segmentation: {
        seriesInstanceUid: uidFrom("bench:seg-series"),
        sopInstanceUid: uidFrom("bench:seg"),
      },
      findings: centres.map((o, n) => ({
        trackingId: `finding-${n + 1}`,
        trackingUid: uidFrom(`bench:finding:${n}`),
        finding: CODES.nodule,
        site: CODES.lung,
        longAxisMm: 2 * RADIUS_MM,
        diameterMm: 2 * RADIUS_MM,
        volumeMm3: 4 / 3 * Math.PI * RADIUS_MM ** 3,
        segmentNumber: n + 1,
        sourceSopInstanceUids: sops.slice(Math.ceil(o.z - r), Math.floor(o.z + r) + 1),
      })),
      device: {
        name: "bench",
        version: "1",
        manufacturer: "bench",
        modelName: "bench",
        uid: uidFrom("bench:device"),
      },
      conclusion: "Five nodules.",
      seriesInstanceUid: uidFrom("bench:sr-series"),
      sopInstanceUid: uidFrom("bench:sr"),
      seriesNumber: 9002,
      seriesDescription: "bench SR",
    });
    srTimes.push(performance.now() - t);
  }
  console.log(
    `| ${c.size}² × ${c.slices} | ~${frames} | ${median(segTimes).toFixed(0)} | ${
      (seg.length / 1e6).toFixed(2)
    } | ${median(srTimes).toFixed(1)} | ${(sr.length / 1e3).toFixed(1)} | ${asked} |`,
  );
}
