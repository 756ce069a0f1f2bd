/**
 * @module Small synthetic CT series with known content for the sidecar's tests: identities and
 * geometry from `dicom/synth` (`planStudy`), pixels of our own: air (−1000 HU) with soft-tissue
 * spheres (+40 HU) at chosen voxel centres, encoded as real DICOM Part 10 files.
 */
import dcmjs from "dcmjs";
import { planStudy, type StudyPlan } from "../../dicom/synth/ct.ts";
import { encodeSlice, seriesAttributes } from "../../dicom/synth/encode.ts";

const { DicomDict, DicomMetaDictionary } = dcmjs.data;

export interface Sphere {
  /** Centre voxel: column, row, slice (0-based, instance number − 1). */
  i: number;
  j: number;
  k: number;
  radiusMm: number;
}

export interface TestStudy {
  plan: StudyPlan;
  /** Slice index order (instance number − 1). */
  instances: Uint8Array[];
  /** Voxels inside each sphere (centre distance ≤ radius). */
  voxels: number[];
}

export function sphereStudy(options: {
  seed: number;
  rows?: number;
  cols?: number;
  slices?: number;
  pixelSpacing?: number;
  sliceSpacing?: number;
  spheres: Sphere[];
}): TestStudy {
  const plan = planStudy({
    seed: options.seed,
    rows: options.rows ?? 32,
    cols: options.cols ?? 32,
    slices: options.slices ?? 12,
    lesions: 0,
    pixelSpacing: options.pixelSpacing ?? 1,
    sliceSpacing: options.sliceSpacing ?? 2.5,
  });
  const g = plan.geometry;
  const shared = seriesAttributes(plan);
  const pixels = new Int16Array(g.rows * g.cols);
  const voxels = options.spheres.map(() => 0);
  const instances: Uint8Array[] = [];
  for (let k = 0; k < g.slices; k++) {
    pixels.fill(-1000 - plan.rescaleIntercept);
    for (let y = 0; y < g.rows; y++) {
      for (let x = 0; x < g.cols; x++) {
        options.spheres.forEach((s, n) => {
          const d = Math.hypot(
            (x - s.i) * g.pixelSpacing,
            (y - s.j) * g.pixelSpacing,
            (k - s.k) * g.sliceSpacing,
          );
          if (d <= s.radiusMm) {
            pixels[y * g.cols + x] = 40 - plan.rescaleIntercept;
            voxels[n]++;
          }
        });
      }
    }
    instances.push(encodeSlice(plan, shared, k, pixels));
  }
  return { plan, instances, voxels };
}

/** A seeded shuffle (so a failure replays). */
export function shuffled<T>(items: readonly T[], seed = 1): T[] {
  const out = [...items];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** One CT instance claiming JPEG 2000 (encapsulated, not decodable here) for failure tests. */
export function jpeg2000Instance(seed: number): { plan: StudyPlan; bytes: Uint8Array } {
  const plan = planStudy({ seed, rows: 8, cols: 8, slices: 1, lesions: 0 });
  const dataset = {
    ...seriesAttributes(plan),
    SOPInstanceUID: plan.sopInstanceUids[0],
    InstanceNumber: 1,
    ImagePositionPatient: [0, 0, 0],
    // A J2K codestream's first markers (SOC, SIZ) and nothing else: never decoded.
    PixelData: [new Uint8Array([0xff, 0x4f, 0xff, 0x51, 0, 0, 0, 0]).buffer],
    _vrMap: { PixelData: "OB" },
  };
  const meta = {
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: "1.2.840.10008.5.1.4.1.1.2",
    MediaStorageSOPInstanceUID: plan.sopInstanceUids[0],
    TransferSyntaxUID: "1.2.840.10008.1.2.4.90",
    ImplementationClassUID: "2.25.1",
  };
  const dict = new DicomDict(DicomMetaDictionary.denaturalizeDataset(meta));
  dict.dict = DicomMetaDictionary.denaturalizeDataset(dataset);
  return { plan, bytes: new Uint8Array(dict.write()) };
}

/** A small chest CT of air with two soft-tissue spheres (the fixture model finds both). */
export function smallStudy(seed: number): TestStudy {
  return sphereStudy({
    seed,
    rows: 48,
    cols: 48,
    slices: 12,
    spheres: [{ i: 14, j: 16, k: 4, radiusMm: 5 }, { i: 34, j: 30, k: 8, radiusMm: 6 }],
  });
}
