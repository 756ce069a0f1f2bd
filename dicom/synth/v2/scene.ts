/**
 * @module The v2 chest scene: every anatomical part of one patient, built once, and the plane
 * renderer that paints an axial plane at any z on any grid — the same painter serves the images,
 * the coarse lung volume the trees grow in, and exact point tests (a 1×1 grid).
 */

import { createRng } from "../rng.ts";
import { type Anatomy, bodyAt, createAnatomy } from "./anatomy.ts";
import { buildSkeleton, paintBodyWall, paintSkeleton, paintTable, type Skeleton } from "./body.ts";
import {
  buildLungModel,
  lobeAt,
  type LungModel,
  paintLungsAndAbdomen,
  shadeTissues,
} from "./lungs.ts";
import { buildMediastinum, type Mediastinum, paintHull, paintMediastinum } from "./mediastinum.ts";
import { type NoduleSpec, paintNodules } from "./nodules.ts";
import { type Canvas, clearCanvas, createCanvas, type Grid2, LUNGS } from "./raster.ts";
import { createTexture, type Texture } from "./texture.ts";
import { growTrees, type LabelVolume, type Trees } from "./trees.ts";
import { paintTubes } from "./tubes.ts";

/** One synthetic patient's chest. */
export interface Scene {
  an: Anatomy;
  sk: Skeleton;
  md: Mediastinum;
  lm: LungModel;
  tex: Texture;
  trees: Trees | null;
  lesions: NoduleSpec[];
}

/** Builds the anatomy of seed `seed` (no trees or lesions yet). */
export function buildScene(seed: number, sex: "M" | "F"): Scene {
  const rng = (part: string) => createRng(`synth:v2:${seed}:${part}`);
  const an = createAnatomy(rng("anatomy"), sex);
  const b = bodyAt(an, 0);
  const box: [number, number, number, number, number, number] = [
    -an.bodyW - 30,
    an.bodyW + 30,
    b.cy - b.Dant - 40,
    an.yBack + 10,
    an.zCarina + an.aBottom - 10,
    an.zCarina + an.aTop + 10,
  ];
  return {
    an,
    sk: buildSkeleton(an, rng("skeleton")),
    md: buildMediastinum(an, rng("mediastinum")),
    lm: buildLungModel(an, rng("lungs")),
    tex: createTexture(rng("texture"), box, 2.2),
    trees: null,
    lesions: [],
  };
}

/** Paints the tissues (values and regions) of plane z, without lung detail. */
export function paintAnatomy(cv: Canvas, s: Scene, z: number): void {
  const a = z - s.an.zCarina;
  clearCanvas(cv);
  paintBodyWall(cv, s.an, s.sk, a, z);
  paintLungsAndAbdomen(cv, s.an, s.lm, a);
  paintHull(cv, s.an, s.md, a, z);
  paintMediastinum(cv, s.an, s.md, a, z);
  paintSkeleton(cv, s.an, s.sk, a, z);
  paintTable(cv, s.an, s.sk);
}

/**
 * Renders plane z completely (noise-free HU in `cv.value`, regions in `cv.region`); writes lesion
 * labels into `mask` and body pixels through `onBody` when given.
 */
export function renderPlane(
  cv: Canvas,
  s: Scene,
  z: number,
  mask?: Uint8Array,
  onBody?: (l: NoduleSpec, pixel: number) => void,
): void {
  paintAnatomy(cv, s, z);
  shadeTissues(cv, s.an, s.lm, s.tex, z - s.an.zCarina, z);
  if (s.trees) {
    paintTubes(cv, s.trees.vessels, z, { hu: 42, allow: LUNGS });
    paintTubes(cv, s.trees.bronchi, z, { hu: 20, innerHu: -1000, allow: LUNGS });
  }
  paintNodules(cv, s.lesions, z, cv.tex, mask, onBody);
}

let probe: Canvas | null = null;

/** The region at one point (1 right lung, 2 left lung, see `R`). */
export function regionAt(s: Scene, x: number, y: number, z: number): number {
  probe ??= createCanvas({ cols: 1, rows: 1, x0: 0, y0: 0, dx: 0.5 });
  probe.grid.x0 = x;
  probe.grid.y0 = y;
  paintAnatomy(probe, s, z);
  return probe.region[0];
}

/** The lungs on a coarse grid of `step` mm covering the scan. */
export function coarseLungs(s: Scene, step: number): LabelVolume {
  const an = s.an, b = bodyAt(an, 0);
  const x0 = -an.bodyW - 4, y0 = b.cy - b.Dant - 4;
  const nx = Math.ceil((2 * an.bodyW + 8) / step) + 1;
  const ny = Math.ceil((an.yBack + 4 - y0) / step) + 1;
  const z0 = an.zCarina + an.aTop, nz = Math.floor((an.aTop - an.aBottom) / step) + 1;
  const grid: Grid2 = { cols: nx, rows: ny, x0, y0, dx: step };
  const cv = createCanvas(grid), data = new Uint8Array(nx * ny * nz);
  for (let k = 0; k < nz; k++) {
    paintAnatomy(cv, s, z0 - k * step);
    const o = k * nx * ny;
    for (let i = 0; i < nx * ny; i++) {
      const r = cv.region[i];
      if (r === 1 || r === 2) data[o + i] = r;
    }
  }
  return { x0, y0, z0, step, nx, ny, nz, data };
}

/** Grows the vessel and bronchial trees into the coarse lungs. */
export function addTrees(s: Scene, vol: LabelVolume, seed: number): void {
  const zc = s.an.zCarina;
  s.trees = growTrees(
    vol,
    (side, x, y, z) => lobeAt(s.lm, side, x, y, z - zc),
    {
      hilum: [s.md.hilum.right, s.md.hilum.left],
      bronchusEnd: [s.md.bronchusEnds.right, s.md.bronchusEnds.left],
      veins: {
        RUL: s.md.veinRoots[0],
        RML: s.md.veinRoots[0],
        RLL: s.md.veinRoots[1],
        LUL: s.md.veinRoots[2],
        LLL: s.md.veinRoots[3],
      },
    },
    createRng(`synth:v2:${seed}:trees`),
  );
}
