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
  const small = new SmallCounts(h.counts);

  let best = Infinity;
  let bestStart = zero - halfQuantized;
  let bestEnd = Math.min(zero + halfQuantized + 1, bins);
  for (let i = halfQuantized; i <= zero; i++) {
    const start = zero - i;
    const end = Math.min(zero + i + 1, bins);
    const divergence = windowDivergence(sums, groups, small, start, end);
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

/** Counts below this are summed exactly, one logarithm per distinct count; larger ones by a series (sumXLogX). */
const SERIES_FROM = 64;

/**
 * Prefix sums over the bins, so that a window's or a group's mass, empty-bin count and the smoothed sum of
 * c log c over its large counts (sumXLogX) cost O(1) rather than O(bins): the search looks at ~bins/2 windows of
 * up to `bins` bins each.
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
  /** Over bins [0, k) with c >= SERIES_FROM: their number, sum of c log c, of log c and of c^-1 .. c^-4. */
  readonly large: { n: Float64Array; xLogX: Float64Array; log: Float64Array; inverse: Float64Array[] };

  constructor(readonly counts: Float64Array) {
    const n = (this.bins = counts.length);
    const prefix = () => new Float64Array(n + 1);
    this.mass = prefix();
    this.empty = prefix();
    this.xLogX = prefix();
    this.large = { n: prefix(), xLogX: prefix(), log: prefix(), inverse: [prefix(), prefix(), prefix(), prefix()] };
    const { large } = this;
    for (let k = 0; k < n; k++) {
      const c = counts[k];
      const log = c > 0 ? Math.log(c) : 0;
      this.mass[k + 1] = this.mass[k] + c;
      this.empty[k + 1] = this.empty[k] + (c === 0 ? 1 : 0);
      this.xLogX[k + 1] = this.xLogX[k] + c * log;
      const isLarge = c >= SERIES_FROM;
      large.n[k + 1] = large.n[k] + (isLarge ? 1 : 0);
      large.xLogX[k + 1] = large.xLogX[k] + (isLarge ? c * log : 0);
      large.log[k + 1] = large.log[k] + (isLarge ? log : 0);
      for (let j = 0; j < 4; j++) large.inverse[j][k + 1] = large.inverse[j][k] + (isLarge ? c ** -(j + 1) : 0);
    }
    this.total = this.mass[n];
  }
}

/**
 * How many bins of a range hold each small count (0 < c < SERIES_FROM). The search's windows are nested, each one
 * bin wider on each side, so the range only grows and each bin is added once per search.
 */
class SmallCounts {
  readonly bins = new Float64Array(SERIES_FROM);
  private a = 0;
  private b = 0;

  constructor(private readonly counts: Float64Array) {}

  /** Makes the tracked range [a, b) (rebuilding it when that is not a widening). */
  cover(a: number, b: number): void {
    if (a > this.a || b < this.b || this.a === this.b) {
      this.bins.fill(0);
      this.a = this.b = a;
    }
    while (this.a > a) this.add(--this.a);
    while (this.b < b) this.add(this.b++);
  }

  private add(k: number): void {
    const c = this.counts[k];
    if (c > 0 && c < SERIES_FROM) this.bins[c]++;
  }
}

/** Per-window scratch for the quantizedBins groups of q, allocated once per search. */
class Groups {
  readonly value: Float64Array;
  readonly pMass: Float64Array;
  readonly pNonZero: Float64Array;

  constructor(readonly count: number) {
    this.value = new Float64Array(count);
    this.pMass = new Float64Array(count);
    this.pNonZero = new Float64Array(count);
  }
}

/**
 * KL(p' || q') for the window [start, end) of bins, where p' and q' are p and q smoothed. Smoothing moves mass
 * without changing totals (sum p' = total, sum q' = sum q), so with P = total and Q = sum q:
 *   KL = (1/P) * sum_j p'_j (log p'_j - log q'_j) + log(Q / P)
 * and, q' being one value per group, the sum splits into per-group terms plus sum over non-zero p of
 * (p - t) log(p - t), t being what smoothing takes off each non-zero p.
 */
function windowDivergence(s: BinSums, g: Groups, small: SmallCounts, start: number, end: number): number {
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

  let acc = sumXLogX(s, small, start, end, first, last, pTake);
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

/**
 * Sum of (p - t) log(p - t) over the window's non-zero p (all whole numbers), t < 1 being what smoothing takes
 * off each (t = 1e-4 * empty bins / non-empty bins: at most 0.2 with 2048 bins). Bins inside the window (its
 * first and last hold the tails too, and are added apart) split in two:
 * - counts c >= SERIES_FROM, by the Taylor series of (c - t) log(c - t) around t = 0,
 *     c log c - t log c - t + t^2/(2c) + t^3/(6c^2) + t^4/(12c^3) + t^5/(20c^4) + ...
 *   (term k >= 2 is t^k / (k (k-1) c^(k-1))), whose sums over the window come from prefix sums; the first
 *   omitted term, t^6 / (30 c^5), is below 3e-15 per bin for t <= 0.2 (3e-11 for t < 1), far under the
 *   float64 rounding of a sum of c log c over many values;
 * - smaller counts, each distinct value v once: (bins holding v) * (v - t) log(v - t).
 */
function sumXLogX(s: BinSums, small: SmallCounts, start: number, end: number, first: number, last: number, t: number): number {
  const xlx = (c: number): number => (c > 0 ? (c - t) * Math.log(c - t) : 0);
  const [a, b] = [start + 1, end - 1]; // the window's inner bins, [a, b)
  if (b <= a) return xlx(first) + xlx(last);
  if (t === 0) return s.xLogX[b] - s.xLogX[a] + xlx(first) + xlx(last);
  if (t >= 1) {
    // Only with tens of thousands of bins; the series would not converge fast enough for the small counts.
    let acc = 0;
    for (let k = a; k < b; k++) acc += xlx(s.counts[k]);
    return acc + xlx(first) + xlx(last);
  }
  const { large } = s;
  const within = (p: Float64Array) => p[b] - p[a];
  const [i1, i2, i3, i4] = large.inverse.map(within);
  const t2 = t * t;
  let acc = within(large.xLogX) - t * within(large.log) - t * within(large.n) + t2 * (i1 / 2 + t * (i2 / 6 + t * (i3 / 12 + (t * i4) / 20)));
  small.cover(a, b);
  for (let v = 1; v < SERIES_FROM; v++) {
    const bins = small.bins[v];
    if (bins > 0) acc += bins * (v - t) * Math.log(v - t);
  }
  return acc + xlx(first) + xlx(last);
}
