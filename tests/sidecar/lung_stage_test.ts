/**
 * The lung stage on an independent phantom (`_chest_phantom.ts`): the lung mask (two lungs,
 * right larger, trachea and bronchi out, heart and liver out, nodules and vessels in, a nodule on
 * the pleura in) on thin, standard and thick slices and on two pixel sizes; and the assessment of a
 * model's components: nodules kept and measured, a mass called a mass, vessels and everything
 * outside the lungs dropped with a reason.
 */
import assert from "node:assert/strict";
import {
  chestPhantom,
  type Phantom,
  phantomGeometry,
  phantomValues,
  type Sphere,
} from "./_chest_phantom.ts";
import { LEFT_LUNG, lungMask, RIGHT_LUNG } from "../../sidecar/anatomy/lung_mask.ts";
import { runLungStage } from "../../sidecar/nodules/lung_stage.ts";
import { segment } from "../../sidecar/postprocess.ts";

const SPHERES: Sphere[] = [
  { name: "free 8 mm", c: [-70, 40, 60], r: 4 },
  { name: "free 20 mm", c: [85, -60, -40], r: 10 },
  { name: "pleural 16 mm", c: [-131, 0, 0], r: 8 },
  { name: "mass 44 mm", c: [-60, 20, -50], r: 22 },
  { name: "ground-glass 12 mm", c: [60, 50, 40], r: 6, hu: -550 },
  // Outside the lungs: what a model trained on phantoms flags on real CT.
  { name: "chest wall", c: [0, -100, 60], r: 6 },
  { name: "heart", c: [15, -20, -30], r: 8 },
  { name: "liver", c: [-40, 0, -120], r: 7 },
];
const OUTSIDE = new Set(["chest wall", "heart", "liver"]);

const valuesOf = phantomValues;
const geometryOf = phantomGeometry;

const at = (p: Phantom, labels: Uint8Array, c: [number, number, number]) => {
  const [i, j, k] = p.voxelOf(c).map(Math.round);
  return labels[(k * p.height + j) * p.width + i];
};

for (
  const grid of [
    { sliceMm: 1.25, pixelMm: 1.4, size: 256 },
    { sliceMm: 2.5, pixelMm: 0.8, size: 448 },
    { sliceMm: 5, pixelMm: 1.4, size: 256 },
  ]
) {
  Deno.test(`lung mask: ${grid.sliceMm} mm slices, ${grid.pixelMm} mm pixels`, () => {
    const p = chestPhantom({ ...grid, spheres: SPHERES.filter((s) => !OUTSIDE.has(s.name)) });
    const m = lungMask(valuesOf(p));
    assert.ok(m.found);
    // Analytic lungs: the right is wider; both some litres.
    assert.ok(m.volumeMl.right > m.volumeMl.left, JSON.stringify(m.volumeMl));
    assert.ok(m.volumeMl.left > 1500 && m.volumeMl.right < 4500, JSON.stringify(m.volumeMl));
    assert.equal(at(p, m.labels, [0, -15, 80]), 0, "trachea");
    assert.equal(at(p, m.labels, [15, -20, -30]), 0, "heart");
    assert.equal(at(p, m.labels, [-40, 0, -120]), 0, "liver");
    assert.equal(at(p, m.labels, [0, -100, 60]), 0, "chest wall");
    assert.equal(at(p, m.labels, [-70, 40, 60]), RIGHT_LUNG, "nodule inside the right lung");
    assert.equal(at(p, m.labels, [85, -60, -40]), LEFT_LUNG, "nodule inside the left lung");
    assert.equal(at(p, m.labels, [-60, 20, -50]), RIGHT_LUNG, "mass inside the right lung");
    assert.equal(at(p, m.labels, [-73, -20, 60]), RIGHT_LUNG, "vessel inside the right lung");
    // The lung's lateral edge touches the wall from apex to base: still lung right up to it.
    assert.equal(at(p, m.labels, [-130, 5, -30]), RIGHT_LUNG, "lung along the chest wall");
  });
}

Deno.test("lung stage: nodules and the mass kept and measured, the rest dropped with reasons", async () => {
  const p = chestPhantom({ sliceMm: 2.5, pixelMm: 1.4, size: 256, spheres: SPHERES });
  // A model that flags every vessel and sphere, inside the lungs or not.
  const probability = new Float32Array(p.tags.length);
  for (let i = 0; i < p.tags.length; i++) probability[i] = p.tags[i] ? 0.9 : 0.01;
  const g = geometryOf(p);
  const seg = segment(probability, g, { threshold: 0.5, connectivity: 26, minVolumeMm3: 10 });
  const stage = await runLungStage(
    { ...g, data: p.hu, values: "modality", plane: { height: p.height, width: p.width } },
    { preprocessing: { window: { center: 0, width: 1 }, rescale: [0, 1] } },
    seg,
  );
  const byName = new Map<string, (typeof stage.assessed.findings)[number]>();
  for (const f of stage.assessed.findings) {
    const s = SPHERES.find((s) => Math.hypot(...s.c.map((v, a) => v - f.centrePatient[a])) < s.r);
    assert.ok(
      s,
      `a kept finding that is no sphere: ${JSON.stringify(f.lung)} at ${f.centrePatient}`,
    );
    byName.set(s!.name, f);
  }
  const kept = [...byName.keys()].sort();
  assert.deepEqual(kept, [
    "free 20 mm",
    "free 8 mm",
    "ground-glass 12 mm",
    "mass 44 mm",
    "pleural 16 mm",
  ], JSON.stringify(stage.assessed.rejected.map((r) => [r.finding.centrePatient, r.reason])));
  assert.equal(stage.assessed.findings.length, 5);
  for (const r of stage.assessed.rejected) assert.ok(r.reason.length > 5);
  const reasons = stage.assessed.rejected.map((r) => r.reason).join("; ");
  assert.match(reasons, /outside the lungs/);
  assert.match(reasons, /vessel/);

  const f20 = byName.get("free 20 mm")!.lung, f8 = byName.get("free 8 mm")!.lung;
  assert.equal(f20.kind, "nodule");
  assert.equal(f20.lung, "left");
  assert.ok(Math.abs(f20.measures.longAxisMm - 20) <= 2.5, `${f20.measures.longAxisMm}`);
  assert.ok(Math.abs(f20.measures.shortAxisMm - 20) <= 3, `${f20.measures.shortAxisMm}`);
  assert.ok(Math.abs(f8.measures.meanDiameterMm - 8) <= 2.5, `${f8.measures.meanDiameterMm}`);
  assert.equal(f8.lung, "right");
  assert.equal(f8.zone, "upper");
  assert.equal(f8.measures.attenuation, "solid");
  const mass = byName.get("mass 44 mm")!.lung;
  assert.equal(mass.kind, "mass");
  assert.ok(mass.measures.longAxisMm > 40, `${mass.measures.longAxisMm}`);
  const pleural = byName.get("pleural 16 mm")!.lung;
  assert.equal(pleural.kind, "nodule");
  assert.equal(pleural.lung, "right");
  assert.equal(byName.get("ground-glass 12 mm")!.lung.measures.attenuation, "ground-glass");
  // The kept findings are renumbered 1..n and the mask follows them.
  const numbers = new Set<number>();
  for (let z = 0; z < p.depth; z++) {
    stage.assessed.maskSlice(z)?.forEach((v) => v && numbers.add(v));
  }
  assert.deepEqual([...numbers].sort(), [1, 2, 3, 4, 5]);
  // The stored lung mask holds every reported finding's centre, the one on the pleura included.
  for (const f of stage.assessed.findings) {
    const [i, j, k] = f.centreVoxel.map(Math.round);
    const side = stage.lungSlice(k)?.[j * p.width + i];
    assert.equal(side, f.lung.lung === "right" ? 1 : 2, `centre of finding ${f.number}`);
  }
});
