/** @module Tests of `sidecar/volume.ts`: synthetic DICOM, shuffled, assembled into a volume. */
import assert from "node:assert/strict";
import { createVolumeBuilder, dicomDateTime, voxelToPatient } from "../../sidecar/volume.ts";
import { JobError } from "../../sidecar/errors.ts";
import { jpeg2000Instance, shuffled, sphereStudy } from "./_study.ts";

Deno.test("createVolumeBuilder() sorts shuffled instances by position and keeps the geometry", () => {
  const study = sphereStudy({
    seed: 11,
    slices: 9,
    spheres: [{ i: 10, j: 12, k: 4, radiusMm: 3 }],
  });
  const g = study.plan.geometry;
  const builder = createVolumeBuilder();
  for (const bytes of shuffled(study.instances, 3)) builder.add(bytes);
  const v = builder.finish();
  assert.deepEqual(v.dims, { x: 32, y: 32, z: 9 });
  assert.deepEqual(v.spacing, { x: 1, y: 1, z: 2.5 });
  // Instance 1 first (the scanner's order, top slice), stepping down along −z.
  assert.deepEqual(v.instanceNumbers, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual(v.sopInstanceUids, study.plan.sopInstanceUids);
  assert.deepEqual(v.origin, [...g.origin]);
  assert.deepEqual(v.sliceStep, [0, 0, -2.5]);
  assert.deepEqual(v.rowDirection, [1, 0, 0]);
  assert.deepEqual(v.columnDirection, [0, 1, 0]);
  // The sphere's centre voxel holds +40 HU, its corner air.
  const at = (x: number, y: number, z: number) => v.data[z * 32 * 32 + y * 32 + x];
  assert.equal(at(10, 12, 4), 40);
  assert.equal(at(0, 0, 0), -1000);
  assert.deepEqual(voxelToPatient(v, 10, 12, 4), [
    g.origin[0] + 10,
    g.origin[1] + 12,
    g.origin[2] - 10,
  ]);
  assert.equal(v.modality, "CT");
  assert.equal(v.seriesInstanceUid, study.plan.study.seriesInstanceUid);
  assert.match(v.studyDateTime ?? "", /^\d{4}-\d{2}-\d{2}$/);
  assert.deepEqual(v.warnings, []);
});

Deno.test("createVolumeBuilder() refuses bytes that are not DICOM, as a fatal job error", () => {
  const builder = createVolumeBuilder();
  assert.throws(() => builder.add(new Uint8Array(300)), (e: unknown) => {
    assert.ok(e instanceof JobError && e.fatal, String(e));
    return true;
  });
  assert.throws(() => createVolumeBuilder().finish(), /no images/);
});

Deno.test("dicomDateTime() keeps a time only with a zone", () => {
  assert.equal(dicomDateTime("20240102", "101500"), "2024-01-02");
  assert.equal(dicomDateTime("20240102", "101500", "+0100"), "2024-01-02T10:15:00+01:00");
  assert.equal(dicomDateTime("2024"), undefined);
});

Deno.test("createVolumeBuilder() fails an unsupported transfer syntax fatally, naming it", () => {
  const { bytes, plan } = jpeg2000Instance(3);
  assert.throws(() => createVolumeBuilder().add(bytes), (e: unknown) => {
    assert.ok(e instanceof JobError && e.fatal);
    assert.equal(
      e.message,
      `Instance ${
        plan.sopInstanceUids[0]
      }: Decoding JPEG 2000 Lossless (1.2.840.10008.1.2.4.90) is not supported; supported: native, RLE Lossless, JPEG Baseline, JPEG Lossless`,
    );
    return true;
  });
});
