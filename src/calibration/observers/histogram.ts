// A streaming histogram of signed values with a fixed number of bins, so its memory does not depend on how much
// data passes through. One histogram serves the magnitude percentiles, the sigma-outlier count and the entropy
// (KL-optimal) threshold.
//
// The bins split [-range, range] evenly, so zero is the edge between the two middle bins, as in ONNX Runtime's
// HistogramCollector. ORT keeps the bin width and adds bins when a value falls outside (memory grows with the
// range ratio); here the range doubles instead and neighbouring bins merge pairwise, which is exact: every old
// bin lies inside one new bin. The range is always a power of two (at least the largest |x| seen), which makes
// any two histograms of the same bin count align after doubling the narrower one, so merging is exact too and
// the result does not depend on how the data was chunked.
//
// Resolution: the bin width is w = 2 * range / bins, with range < 2 * max|x| (for max|x| above 2^-126), so
// w < 4 * max|x| / bins: max|x| / 512 for the default 2048 bins. Bin edges are exact (range and w are powers of
// two when bins is); a value closer to an edge than ~2^-42 bin widths rounds onto it, so a tiny negative value
// next to zero counts in the bin just above zero.
import type { Chunk } from './chunk.js';
import type { Observer } from './observer.js';

export interface HistogramState {
  /** Number of bins; even, so that zero is a bin edge. */
  bins: number;
  /** Bins cover [-range, range]; a power of two. */
  range: number;
  /** counts[k] = values in [-range + k*w, -range + (k+1)*w), the last bin closed. Float64: exact past 2^32. */
  counts: Float64Array;
}

export const DEFAULT_HISTOGRAM_BINS = 2048;

/** Range of a histogram that has seen only zeros: the smallest normal float32, so any later value grows it. */
const SMALLEST_RANGE = 2 ** -126;

export function histogramObserver(bins = DEFAULT_HISTOGRAM_BINS): Observer<HistogramState, HistogramState> {
  if (!Number.isInteger(bins) || bins < 2 || bins % 2 !== 0) throw new RangeError(`histogram bins must be an even integer >= 2, not ${bins}`);
  return {
    init: () => ({ bins, range: SMALLEST_RANGE, counts: new Float64Array(bins) }),
    update(state: HistogramState, chunk: Chunk): void {
      if (chunk.data.length === 0) return;
      growRange(state, chunk.absMax);
      addValues(state, chunk.data);
    },
    merge(a, b) {
      if (a.bins !== b.bins) throw new RangeError(`cannot merge histograms of ${a.bins} and ${b.bins} bins`);
      const out = copyHistogram(a);
      growRange(out, b.range);
      const other = copyHistogram(b);
      growRange(other, out.range);
      for (let k = 0; k < out.bins; k++) out.counts[k] += other.counts[k];
      return out;
    },
    finalize: copyHistogram,
  };
}

export function copyHistogram(h: HistogramState): HistogramState {
  return { bins: h.bins, range: h.range, counts: Float64Array.from(h.counts) };
}

/** Bins every value; all must lie within [-range, range]. */
function addValues(h: HistogramState, data: Float32Array): void {
  const counts = h.counts;
  const scale = h.bins / (2 * h.range); // precomputed: one multiply and one add per value
  const half = h.bins / 2;
  const last = h.bins - 1;
  for (let i = 0; i < data.length; i++) {
    const k = (data[i] * scale + half) | 0; // >= 0 since data[i] >= -range, so | 0 floors
    counts[k > last ? last : k]++; // only x == range lands on `bins`
  }
}

/**
 * Adds integer counts binned at the histogram's current range (as onePass bins them) and zeroes them, reading
 * only bins from..to (inclusive), where the caller knows every count lies.
 */
export function foldCounts(h: HistogramState, counts: Int32Array, from: number, to: number): void {
  const target = h.counts;
  for (let k = from; k <= to; k++) {
    target[k] += counts[k];
    counts[k] = 0;
  }
}

/** Widens the histogram until it covers [-absMax, absMax], merging bins pairwise at each doubling. */
export function growRange(h: HistogramState, absMax: number): void {
  if (absMax <= h.range) return;
  const target = powerOfTwoAtLeast(absMax);
  // After log2(bins) doublings every count sits in one of the two middle bins, where further doublings keep it.
  const enough = Math.ceil(Math.log2(h.bins));
  const half = h.bins / 2;
  for (let done = 0; h.range < target && done < enough; done++) {
    const old = Float64Array.from(h.counts);
    h.counts.fill(0);
    // In old bin widths counted from the new left edge (-2 * range), old bin i spans [half + i, half + i + 1)
    // and new bin j spans [2j, 2j + 2): each old bin lies in new bin (half + i) >> 1.
    for (let i = 0; i < h.bins; i++) h.counts[(half + i) >> 1] += old[i];
    h.range *= 2;
  }
  h.range = target;
}

/** The smallest power of two >= x (x > 0), at least the smallest normal float32. */
export function powerOfTwoAtLeast(x: number): number {
  if (!(x > 0) || !Number.isFinite(x)) throw new RangeError(`no power of two bounds ${x}`);
  let p = 2 ** Math.ceil(Math.log2(x));
  if (p < x) p *= 2; // log2 rounding, either way
  else if (p / 2 >= x) p /= 2;
  return Math.max(p, SMALLEST_RANGE);
}

export function binWidth(h: HistogramState): number {
  return (2 * h.range) / h.bins;
}

/** The bins + 1 edges, from -range to range. */
export function binEdges(h: HistogramState): Float64Array {
  const w = binWidth(h);
  return Float64Array.from({ length: h.bins + 1 }, (_, k) => -h.range + k * w);
}

export function totalCount(h: HistogramState): number {
  let n = 0;
  for (let k = 0; k < h.bins; k++) n += h.counts[k];
  return n;
}

/**
 * The p-th percentile of |x| (nearest rank: the smallest v with at least ceil(p * n / 100) values |x| <= v),
 * reported as the upper edge of the |x| bin that holds it: never below the exact value, at most one bin width
 * above it. `absMax`, the exact largest magnitude when known, caps the answer. NaN for an empty histogram.
 */
export function absPercentile(h: HistogramState, percentile: number, absMax = Infinity): number {
  if (!(percentile >= 0 && percentile <= 100)) throw new RangeError(`a percentile lies in [0, 100], not ${percentile}`);
  const total = totalCount(h);
  if (total === 0) return NaN;
  const rank = Math.max(1, Math.ceil((percentile * total) / 100));
  const half = h.bins / 2;
  const w = binWidth(h);
  let seen = 0;
  // |x| bin k folds signed bin half + k, [kw, (k+1)w), with its mirror half - 1 - k, [-(k+1)w, -kw).
  for (let k = 0; k < half; k++) {
    seen += h.counts[half + k] + h.counts[half - 1 - k];
    if (seen >= rank) return Math.min((k + 1) * w, absMax);
  }
  return Math.min(h.range, absMax);
}

/** Bounds on how many values lie outside [low, high]: bins wholly outside, plus the bins a bound cuts through. */
export function countOutside(h: HistogramState, low: number, high: number): { lower: number; upper: number } {
  const w = binWidth(h);
  let lower = 0;
  let cut = 0;
  for (let k = 0; k < h.bins; k++) {
    const c = h.counts[k];
    if (c === 0) continue;
    const a = -h.range + k * w;
    const b = a + w;
    if (b <= low || a > high) lower += c;
    else if (a < low || b > high) cut += c;
  }
  return { lower, upper: lower + cut };
}
