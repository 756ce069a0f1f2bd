/**
 * @module The lungs of a chest CT, found by classical image processing (no model): air below
 * −400 HU; per slice the air that reaches the image border (outside the patient) removed; of the
 * 3D components left, the large ones that span the chest kept (bowel and stomach gas dropped);
 * the trachea and main bronchi removed per slice (small, midline, darker than −800 HU on
 * average, partial volume included); holes filled per slice (vessels, airways and nodules inside a lung are lung), then a
 * 2D closing so that small bumps of the pleura count as lung, and the small holes it closed filled. Each voxel is
 * labelled right (1) or left (2) lung: by 3D component when the lungs are apart, else by the
 * body's midline.
 *
 * It works on any grid (its sizes are in mm) and reads the values through a linear map to HU, so
 * the model's windowed input planes serve without a copy.
 */
import {
  borderConnected,
  closePlanes,
  fillHolesPlanes,
  type Grid,
  planeComponents,
  volumeComponents,
} from "./morphology.ts";

export const RIGHT_LUNG = 1;
export const LEFT_LUNG = 2;

/** The values of a volume on a grid, and how they map to HU (`hu = value × scale + offset`). */
export interface ValueVolume extends Grid {
  data: Float32Array;
  toHu: { scale: number; offset: number };
  /** Patient x (LPS, mm) of voxel (i, j, k): right is negative. */
  patientX(i: number, j: number, k: number): number;
}

export interface LungMaskOptions {
  /** Air below this (HU). */
  airHu?: number;
  /** Airway rule: a slice's air component at most this large (mm²) ... */
  airwayMaxAreaMm2?: number;
  /** ... darker than this on average (HU) ... */
  airwayMaxMeanHu?: number;
  /** ... and centred within this of the body's midline (mm) is trachea or a main bronchus. */
  airwayMidlineMm?: number;
  /** Holes up to this area (mm²) are filled (larger enclosed regions are the mediastinum). */
  maxHoleMm2?: number;
  /**
   * After the closing, only holes up to this area (mm²) are filled: a bite of the pleura closed by
   * it, not a mediastinal structure (aorta, oesophagus) whose narrow neck the closing bridged.
   */
  maxClosedHoleMm2?: number;
  /** Radius of the 2D closing (mm). */
  closingMm?: number;
  /** A component smaller than this (mL) is not a lung. */
  minLungMl?: number;
}

export interface LungMask {
  grid: Grid;
  /** 0 outside, `RIGHT_LUNG`, `LEFT_LUNG`; `[z][y][x]`. */
  labels: Uint8Array;
  found: boolean;
  volumeMl: { right: number; left: number };
  /** First and last slice (grid z) with lung; -1 when none. */
  slices: { first: number; last: number };
  /** Voxels of air removed as trachea or main bronchi. */
  airwayVoxels: number;
}

const DEFAULTS: Required<LungMaskOptions> = {
  airHu: -400,
  airwayMaxAreaMm2: 600,
  airwayMaxMeanHu: -800,
  airwayMidlineMm: 30,
  maxHoleMm2: 2000,
  maxClosedHoleMm2: 400,
  closingMm: 5,
  minLungMl: 15,
};

export function lungMask(volume: ValueVolume, options: LungMaskOptions = {}): LungMask {
  const o = { ...DEFAULTS, ...options };
  const { width: w, height: h, depth: d } = volume;
  const plane = w * h;
  const grid: Grid = {
    width: w,
    height: h,
    depth: d,
    sx: volume.sx,
    sy: volume.sy,
    sz: volume.sz,
  };
  const { scale, offset } = volume.toHu;
  const hu = (i: number) => volume.data[i] * scale + offset;

  // 1. Air inside the body; 2. body midline per slice (the centroid of what is not outside air).
  const air = new Uint8Array(plane * d);
  const midline = new Float64Array(d).fill(NaN);
  for (let k = 0; k < d; k++) {
    const base = k * plane;
    for (let i = 0; i < plane; i++) air[base + i] = hu(base + i) < o.airHu ? 1 : 0;
    const outside = borderConnected(air, base, w, h, 1);
    let sumX = 0, n = 0;
    for (let i = 0; i < plane; i++) {
      if (outside[i]) {
        air[base + i] = 0;
        continue;
      }
      if (!air[base + i]) {
        const x = i % w;
        sumX += volume.patientX(x, (i - x) / w, k);
        n++;
      }
    }
    if (n > 0) midline[k] = sumX / n;
  }

  // 3. The lungs among the 3D components of that air.
  const voxelMl = (grid.sx * grid.sy * grid.sz) / 1000;
  const comps = volumeComponents(air, grid);
  const zMin = new Int32Array(comps.sizes.length).fill(d);
  const zMax = new Int32Array(comps.sizes.length).fill(-1);
  for (let i = 0; i < air.length; i++) {
    const l = comps.labels[i];
    if (!l) continue;
    const z = Math.floor(i / plane);
    if (z < zMin[l]) zMin[l] = z;
    if (z > zMax[l]) zMax[l] = z;
  }
  let largest = 0;
  for (let l = 1; l < comps.sizes.length; l++) {
    if (comps.sizes[l] > comps.sizes[largest]) largest = l;
  }
  const keep = new Uint8Array(comps.sizes.length);
  if (largest && comps.sizes[largest] * voxelMl >= o.minLungMl) {
    keep[largest] = 1;
    const span = zMax[largest] - zMin[largest] + 1;
    for (let l = 1; l < comps.sizes.length; l++) {
      if (l === largest || comps.sizes[l] < 0.1 * comps.sizes[largest]) continue;
      if (comps.sizes[l] * voxelMl < o.minLungMl) continue;
      const overlap = Math.min(zMax[l], zMax[largest]) - Math.max(zMin[l], zMin[largest]) + 1;
      if (overlap >= 0.5 * span) keep[l] = 1;
    }
  }
  const lung = new Uint8Array(plane * d);
  for (let i = 0; i < lung.length; i++) lung[i] = keep[comps.labels[i]];

  // 4. Trachea and main bronchi: small, dark, midline air components of a slice.
  let airwayVoxels = 0;
  for (let k = 0; k < d; k++) {
    const base = k * plane;
    const { labels, sizes } = planeComponents(lung, base, w, h, 1);
    if (sizes.length <= 1) continue;
    const sumHu = new Float64Array(sizes.length), sumX = new Float64Array(sizes.length);
    for (let i = 0; i < plane; i++) {
      const l = labels[i];
      if (!l) continue;
      sumHu[l] += hu(base + i);
      const x = i % w;
      sumX[l] += volume.patientX(x, (i - x) / w, k);
    }
    const airway = new Uint8Array(sizes.length);
    for (let l = 1; l < sizes.length; l++) {
      const area = sizes[l] * grid.sx * grid.sy;
      const meanHu = sumHu[l] / sizes[l];
      const fromMidline = Math.abs(sumX[l] / sizes[l] - (midline[k] || 0));
      airway[l] = area <= o.airwayMaxAreaMm2 && meanHu < o.airwayMaxMeanHu &&
          fromMidline <= o.airwayMidlineMm
        ? 1
        : 0;
    }
    for (let i = 0; i < plane; i++) {
      if (airway[labels[i]]) {
        lung[base + i] = 0;
        airwayVoxels++;
      }
    }
  }

  // 5. Vessels and nodules inside are lung; small bumps of the pleura too.
  fillHolesPlanes(lung, grid, o.maxHoleMm2);
  const closed = o.closingMm > 0 ? closePlanes(lung, grid, o.closingMm) : lung;
  fillHolesPlanes(closed, grid, o.maxClosedHoleMm2);

  // 6. Right and left.
  const labels = sideLabels(closed, grid, volume, midline, voxelMl, o.minLungMl);
  let right = 0, left = 0, first = -1, last = -1;
  for (let i = 0; i < labels.length; i++) {
    if (!labels[i]) continue;
    if (labels[i] === RIGHT_LUNG) right++;
    else left++;
    const z = Math.floor(i / plane);
    if (first < 0) first = z;
    last = z;
  }
  return {
    grid,
    labels,
    found: right + left > 0,
    volumeMl: { right: right * voxelMl, left: left * voxelMl },
    slices: { first, last },
    airwayVoxels,
  };
}

/** Right/left per voxel: by component when two large ones lie each on one side, else midline. */
function sideLabels(
  mask: Uint8Array,
  grid: Grid,
  volume: ValueVolume,
  midline: Float64Array,
  voxelMl: number,
  minLungMl: number,
): Uint8Array {
  const { width: w, height: h } = grid;
  const plane = w * h;
  const comps = volumeComponents(mask, grid);
  const sumX = new Float64Array(comps.sizes.length), sumMid = new Float64Array(comps.sizes.length);
  for (let i = 0; i < mask.length; i++) {
    const l = comps.labels[i];
    if (!l) continue;
    const x = i % w, k = Math.floor(i / plane), y = ((i - x) / w) % h;
    sumX[l] += volume.patientX(x, y, k);
    sumMid[l] += midline[k] || 0;
  }
  // Components by size; the lungs are the big ones (a small leftover goes by the midline).
  const order = comps.sizes.map((s, l) => [s, l]).slice(1).sort((a, b) => b[0] - a[0]);
  const side = new Uint8Array(comps.sizes.length);
  const big = order.filter(([s]) => s * voxelMl >= minLungMl);
  if (big.length >= 2) {
    for (const [, l] of big) {
      side[l] = sumX[l] / comps.sizes[l] < sumMid[l] / comps.sizes[l] ? RIGHT_LUNG : LEFT_LUNG;
    }
  }
  const apart = big.length >= 2 && new Set(big.map(([, l]) => side[l])).size === 2;
  const labels = new Uint8Array(mask.length);
  for (let i = 0; i < mask.length; i++) {
    const l = comps.labels[i];
    if (!l) continue;
    if (apart && side[l]) {
      labels[i] = side[l];
      continue;
    }
    const x = i % w, k = Math.floor(i / plane), y = ((i - x) / w) % h;
    labels[i] = volume.patientX(x, y, k) < (midline[k] || 0) ? RIGHT_LUNG : LEFT_LUNG;
  }
  return labels;
}
