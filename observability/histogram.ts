/**
 * @module A fixed-size logarithmic latency histogram (DDSketch-style bins): 352 bins cover
 * 0.05 ms to 60 s with a relative error of at most {@link RELATIVE_ERROR} (2%).
 *
 * Bin 0 holds latencies below {@link MIN_MS} (and NaN or negative ones), bins 1..K hold
 * `[MIN_MS·γ^(k-1), MIN_MS·γ^k)` with `γ = (1 + α) / (1 − α)`, and bin K+1 holds everything from
 * about {@link MAX_MS} up. A bin is reported as the harmonic mean of its bounds, `2·lo·hi/(lo+hi)`,
 * which is within `(γ − 1)/(γ + 1) = α` of every value in the bin, relatively. A percentile taken
 * from summed bins is therefore within α of the exact nearest-rank percentile when that falls in
 * [0.05 ms, 60 s); below 0.05 ms it is within 0.05 ms absolutely; from 60 s up it is the window's
 * maximum. Clamping to the window's [min, max] (done by {@link percentilesOf}) only brings an
 * estimate closer to the exact value.
 */

/** The relative error bound α of a percentile in [{@link MIN_MS}, {@link MAX_MS}). */
export const RELATIVE_ERROR = 0.02;
/** The smallest latency (ms) that is resolved to within {@link RELATIVE_ERROR}. */
export const MIN_MS = 0.05;
/** Latencies (ms) from here up share the overflow bin (reported as the window's maximum). */
export const MAX_MS = 60_000;

const GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR);
const INV_LN_GAMMA = 1 / Math.log(GAMMA);
/** K: the number of logarithmic bins between MIN_MS and (at least) MAX_MS. */
const K = Math.ceil(Math.log(MAX_MS / MIN_MS) * INV_LN_GAMMA);

/** The number of bins of a histogram: underflow, K logarithmic bins, overflow. */
export const BIN_COUNT = K + 2;

/** BOUNDS[k] = MIN_MS·γ^k, k = 0..K: bin k+1 is [BOUNDS[k], BOUNDS[k+1]). */
const BOUNDS = new Float64Array(K + 1);
for (let k = 0; k <= K; k++) BOUNDS[k] = MIN_MS * Math.pow(GAMMA, k);

/** The value each bin is reported as (before clamping to the window's min and max). */
const REPRESENTATIVE = new Float64Array(BIN_COUNT);
REPRESENTATIVE[0] = MIN_MS / 2;
for (let k = 1; k <= K; k++) {
  const lo = BOUNDS[k - 1];
  const hi = BOUNDS[k];
  REPRESENTATIVE[k] = (2 * lo * hi) / (lo + hi);
}
REPRESENTATIVE[K + 1] = Infinity;

/**
 * The bin of a latency in milliseconds. NaN, negative and sub-{@link MIN_MS} values go to bin 0,
 * values from about {@link MAX_MS} up (and +Infinity) to the last bin.
 */
export function binOf(ms: number): number {
  if (!(ms >= MIN_MS)) return 0;
  if (ms >= BOUNDS[K]) return K + 1;
  let j = Math.floor(Math.log(ms / MIN_MS) * INV_LN_GAMMA);
  if (j < 0) j = 0;
  else if (j > K - 1) j = K - 1;
  // Math.log may land one bin off at a boundary: the BOUNDS table is the truth.
  while (j > 0 && ms < BOUNDS[j]) j--;
  while (j < K - 1 && ms >= BOUNDS[j + 1]) j++;
  return j + 1;
}

/**
 * Nearest-rank percentiles (`percents` ascending, e.g. `[50, 95, 99]`) of `total` values binned in
 * `bins`, each clamped to `[min, max]`: the value at rank `ceil(p·total/100)` in sorted
 * order, estimated by its bin. Zeros when `total` is 0.
 */
export function percentilesOf(
  bins: ArrayLike<number>,
  total: number,
  percents: readonly number[],
  min: number,
  max: number,
): number[] {
  const out = percents.map(() => 0);
  if (total <= 0) return out;
  const ranks = percents.map((p) => Math.max(1, Math.ceil((p * total) / 100)));
  let next = 0;
  let seen = 0;
  for (let b = 0; b < BIN_COUNT && next < ranks.length; b++) {
    seen += bins[b];
    while (next < ranks.length && seen >= ranks[next]) {
      out[next] = Math.min(Math.max(REPRESENTATIVE[b], min), max);
      next++;
    }
  }
  // Only if the bins hold fewer than `total` values (a caller's bug): the rest are the maximum.
  for (; next < ranks.length; next++) out[next] = max;
  return out;
}
