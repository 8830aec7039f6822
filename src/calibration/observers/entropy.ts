// The KL-optimal ("entropy") clipping range, found as ONNX Runtime's Entropy calibrator finds it
// (onnxruntime/python/tools/quantization/calibrate.py, HistogramCollector.get_entropy_threshold), after
// TensorRT's 8-bit calibration (Migacz, GTC 2017). For each candidate window of the histogram, centred on the
// zero edge and widening one bin each side per step (from quantizedBins bins to all of them):
//   p = the window's counts, with everything left of it added to its first bin and right of it to its last;
//   q = the window's counts (without those tails) merged into quantizedBins groups of floor(len / quantizedBins)
//       bins, the leftover bins' counts added to the last group, then each group's count spread evenly over
//       the group's bins where p is non-zero and truncated to an integer; the leftover bins get 0;
//   both smoothed (zeros become 1e-4, the same mass taken off the non-zeros) and compared by KL(p || q).
// The window with the smallest divergence (the first, on ties) gives [left edge, right edge], clipped to the
// observed [min, max].
//
// Kept from ORT on purpose, so a threshold here matches ORT's on the same histogram: the window's right side
// is one bin wider than its left; q also fills the bins of a group where p is zero; q's values are truncated to
// integers; the leftover bins count toward the last group but get no share of it. Differences: the arithmetic is
// float64 throughout (ORT smooths in float32), so where two windows' divergences agree to float32 precision ORT
// may pick the other (checked against a transcription of ORT's code on 20 tiny-llama histograms: 19 identical,
// 1 such tie, 4e-9 apart); and the histogram differs: ORT's spans exactly the first batch's max|x| and grows by
// adding bins, ours spans a power of two (histogram.ts), so up to half of our bins can lie beyond max|x| and the
// windows step in different widths.
// Defaults: a 2048-bin histogram and 128 quantized bins (TensorRT's setting). ORT's create_calibrator defaults the
// Entropy method to 128 bins and 128 quantized bins, which leaves a single window: the min/max range.
import { binWidth, type HistogramState } from './histogram.js';

export const DEFAULT_QUANTIZED_BINS = 128;

/** ORT's smoothing constant (quant_utils.smooth_distribution). */
const EPS = 1e-4;
const LOG_EPS = Math.log(EPS);

export interface EntropyThreshold {
  low: number;
  high: number;
  /** KL(p || q) of the chosen window; Infinity when the histogram is empty. */
  divergence: number;
  quantizedBins: number;
}

export function entropyThreshold(
  h: HistogramState,
  quantizedBins = DEFAULT_QUANTIZED_BINS,
  observed: { min: number; max: number } = { min: -Infinity, max: Infinity },
): EntropyThreshold {
  const { bins } = h;
  checkQuantizedBins(bins, quantizedBins);
  const zero = bins / 2;
  const halfQuantized = Math.floor(quantizedBins / 2);
  const sums = new BinSums(h.counts);
  const groups = new Groups(quantizedBins);

  let best = Infinity;
  let bestStart = zero - halfQuantized;
  let bestEnd = Math.min(zero + halfQuantized + 1, bins);
  for (let i = halfQuantized; i <= zero; i++) {
    const start = zero - i;
    const end = Math.min(zero + i + 1, bins);
    const divergence = windowDivergence(sums, groups, start, end);
    if (divergence < best) {
      best = divergence;
      bestStart = start;
      bestEnd = end;
    }
  }
  const w = binWidth(h);
  return {
    low: Math.max(-h.range + bestStart * w, observed.min),
    high: Math.min(-h.range + bestEnd * w, observed.max),
    divergence: best,
    quantizedBins,
  };
}

/** The search needs at least one window: quantizedBins in [2, bins]. */
export function checkQuantizedBins(bins: number, quantizedBins: number): void {
  if (!Number.isInteger(quantizedBins) || quantizedBins < 2 || quantizedBins > bins) {
    throw new RangeError(`quantized bins must be an integer in [2, ${bins}] for a ${bins}-bin histogram, not ${quantizedBins}`);
  }
}

/**
 * Prefix sums over the bins, so that a window's or a group's mass, empty-bin count and sum of c log c cost O(1):
 * the search looks at ~bins/2 windows of up to `bins` bins each, and logarithms dominate the cost.
 */
class BinSums {
  readonly bins: number;
  readonly total: number;
  /** mass[k]: values in bins [0, k). */
  readonly mass: Float64Array;
  /** empty[k]: empty bins in [0, k). */
  readonly empty: Float64Array;
  /** xLogX[k]: sum of c log c over bins [0, k). */
  readonly xLogX: Float64Array;
  readonly logCount: Float64Array;

  constructor(readonly counts: Float64Array) {
    const n = (this.bins = counts.length);
    this.mass = new Float64Array(n + 1);
    this.empty = new Float64Array(n + 1);
    this.xLogX = new Float64Array(n + 1);
    this.logCount = new Float64Array(n);
    for (let k = 0; k < n; k++) {
      const c = counts[k];
      this.logCount[k] = c > 0 ? Math.log(c) : 0;
      this.mass[k + 1] = this.mass[k] + c;
      this.empty[k + 1] = this.empty[k] + (c === 0 ? 1 : 0);
      this.xLogX[k + 1] = this.xLogX[k] + c * this.logCount[k];
    }
    this.total = this.mass[n];
  }
}

/** Per-window scratch for the quantizedBins groups of q, allocated once per search. */
class Groups {
  readonly value: Float64Array;
  readonly pMass: Float64Array;
  readonly pNonZero: Float64Array;
  /** Occurrences of each small count in a window (see sumXLogX); all zero between uses. */
  multiplicity = new Float64Array(0);
  touched = new Int32Array(0);

  constructor(readonly count: number) {
    this.value = new Float64Array(count);
    this.pMass = new Float64Array(count);
    this.pNonZero = new Float64Array(count);
  }

  ensureSmallCounts(limit: number): void {
    if (this.multiplicity.length >= limit) return;
    this.multiplicity = new Float64Array(limit);
    this.touched = new Int32Array(limit);
  }
}

/**
 * KL(p' || q') for the window [start, end) of bins, where p' and q' are p and q smoothed. Smoothing moves mass
 * without changing totals (sum p' = total, sum q' = sum q), so with P = total and Q = sum q:
 *   KL = (1/P) * sum_j p'_j (log p'_j - log q'_j) + log(Q / P)
 * and, q' being one value per group, the sum splits into per-group terms plus sum over non-zero p of
 * (p - t) log(p - t), t being what smoothing takes off each non-zero p.
 */
function windowDivergence(s: BinSums, g: Groups, start: number, end: number): number {
  const { counts, mass, empty, total } = s;
  const len = end - start;
  const left = mass[start];
  const right = total - mass[end];
  // p is the window's counts with the tails added to its first and last bins; tails can fill an empty bin.
  const first = counts[start] + left;
  const last = counts[end - 1] + right;
  const firstFilled = counts[start] === 0 && first > 0 ? 1 : 0;
  const lastFilled = counts[end - 1] === 0 && last > 0 ? 1 : 0;
  const pZeros = empty[end] - empty[start] - firstFilled - lastFilled;
  const pNonZeros = len - pZeros;

  const merged = Math.floor(len / g.count);
  const grouped = merged * g.count;
  const lastInGroups = len - 1 < grouped;
  let qZeros = len - grouped; // leftover bins: q = 0 there
  let qSum = 0;
  for (let k = 0; k < g.count; k++) {
    const a = start + k * merged;
    const b = a + merged;
    const holdsLast = lastInGroups && k === g.count - 1;
    const nonZero = merged - (empty[b] - empty[a]) + (k === 0 ? firstFilled : 0) + (holdsLast ? lastFilled : 0);
    let sliced = mass[b] - mass[a]; // q is built from the counts without the tails
    if (k === g.count - 1) sliced += mass[end] - mass[start + grouped];
    const value = nonZero > 0 ? Math.trunc(sliced / nonZero) : 0;
    g.value[k] = value;
    g.pNonZero[k] = nonZero;
    g.pMass[k] = mass[b] - mass[a] + (k === 0 ? left : 0) + (holdsLast ? right : 0);
    if (value === 0) qZeros += merged;
    qSum += value * merged;
  }
  const qNonZeros = len - qZeros;
  if (pNonZeros === 0 || qNonZeros === 0) return Infinity; // ORT: smoothing fails, divergence infinite
  const pTake = (EPS * pZeros) / pNonZeros;
  const qTake = (EPS * qZeros) / qNonZeros;

  let acc = sumXLogX(s, g, start, end, first, last, pTake);
  for (let k = 0; k < g.count; k++) {
    const logQ = g.value[k] === 0 ? LOG_EPS : Math.log(g.value[k] - qTake);
    acc -= logQ * (g.pMass[k] - pTake * g.pNonZero[k]);
    acc += (merged - g.pNonZero[k]) * EPS * (LOG_EPS - logQ);
  }
  if (grouped < len) {
    // Leftover bins, the window's last among them: q' = eps, so empty p bins add eps * (log eps - log eps) = 0.
    const leftoverMass = mass[end] - mass[start + grouped] + right;
    const leftoverNonZero = len - grouped - (empty[end] - empty[start + grouped]) + lastFilled;
    acc -= LOG_EPS * (leftoverMass - pTake * leftoverNonZero);
  }
  return acc / total + Math.log(qSum / total);
}

/** Sum of (p - t) log(p - t) over the window's non-zero p (all whole numbers). */
function sumXLogX(s: BinSums, g: Groups, start: number, end: number, first: number, last: number, t: number): number {
  const { counts, logCount, xLogX } = s;
  const xlx = (c: number): number => (c > 0 ? (c - t) * Math.log(c - t) : 0);
  if (t === 0) return xLogX[end - 1] - xLogX[start + 1] + xlx(first) + xlx(last);
  // log(c - t) = log c + log(1 - u), u = t/c: for u <= 1e-3 five terms of the series leave an error below
  // u^6/6 < 2e-19. Smaller counts are whole numbers below 1000 t, few and repeated: one logarithm per value.
  const small = Math.ceil(1000 * t);
  g.ensureSmallCounts(small);
  const { multiplicity, touched } = g;
  let distinct = 0;
  let acc = 0;
  for (let k = start + 1; k < end - 1; k++) {
    const c = counts[k];
    if (c === 0) continue;
    if (c < small) {
      if (multiplicity[c]++ === 0) touched[distinct++] = c;
      continue;
    }
    const u = t / c;
    acc += (c - t) * (logCount[k] - u * (1 + u * (1 / 2 + u * (1 / 3 + u * (1 / 4 + u / 5)))));
  }
  for (let d = 0; d < distinct; d++) {
    const c = touched[d];
    acc += multiplicity[c] * xlx(c);
    multiplicity[c] = 0;
  }
  return acc + xlx(first) + xlx(last);
}
