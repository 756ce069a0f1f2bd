/**
 * @module 3D connected components of a label volume (6-connectivity), used to keep only the
 * largest piece of each lung in the truth mask: slivers of lung a voxel wide between the heart,
 * the hull and the ribs can be cut off on coarse grids, and a lung mask is two components.
 * Breadth-first floods with a growable ring queue; one scratch bit per voxel, no label array.
 */

const SEEN = 0x80;
const KEEP = 0x40;

/** Keeps, for each label in `labels`, only its largest 6-connected component; returns removed. */
export function keepLargest(
  vol: Uint8Array,
  nx: number,
  ny: number,
  nz: number,
  labels: readonly number[],
): number {
  const best = new Map<number, { seed: number; size: number }>();
  for (let i = 0; i < vol.length; i++) {
    const v = vol[i];
    if (v === 0 || v & SEEN || !labels.includes(v)) continue;
    const size = flood(vol, nx, ny, nz, i, v, SEEN);
    const b = best.get(v);
    if (!b || size > b.size) best.set(v, { seed: i, size });
  }
  for (const [v, b] of best) flood(vol, nx, ny, nz, b.seed, v | SEEN, KEEP);
  let removed = 0;
  for (let i = 0; i < vol.length; i++) {
    const v = vol[i];
    if (!(v & SEEN)) continue;
    if (v & KEEP) vol[i] = v & 0x3f;
    else (vol[i] = 0), removed++;
  }
  return removed;
}

/** Marks with `bit` the component of value `value` containing `start`; returns its size. */
function flood(
  vol: Uint8Array,
  nx: number,
  ny: number,
  nz: number,
  start: number,
  value: number,
  bit: number,
): number {
  let queue = new Int32Array(1 << 16), head = 0, tail = 0, count = 0;
  const plane = nx * ny;
  const push = (p: number) => {
    if (vol[p] !== value) return;
    vol[p] |= bit;
    if (tail - head === queue.length) {
      const bigger = new Int32Array(queue.length * 2);
      for (let k = 0; k < queue.length; k++) bigger[k] = queue[(head + k) % queue.length];
      tail -= head;
      head = 0;
      queue = bigger;
    }
    queue[tail++ % queue.length] = p;
  };
  push(start);
  while (head < tail) {
    const p = queue[head++ % queue.length];
    count++;
    const x = p % nx, y = ((p - x) / nx) % ny, z = (p - x - y * nx) / plane;
    if (x > 0) push(p - 1);
    if (x < nx - 1) push(p + 1);
    if (y > 0) push(p - nx);
    if (y < ny - 1) push(p + nx);
    if (z > 0) push(p - plane);
    if (z < nz - 1) push(p + plane);
  }
  return count;
}
