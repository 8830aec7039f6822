// An independent, deliberately plain re-implementation of ONNX Runtime's entropy calibration, for tests only.
// Written from the algorithm's description (ORT calibrate.py, HistogramCollector.get_entropy_threshold), not
// from src/calibration: plain arrays, slice and reduce, one histogram built directly from all the values, no
// prefix sums, no streaming, no shortcuts in the logarithms. Slow, and meant to be obviously right.

const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);

/** Histogram of `values` over [-range, range] in `bins` equal bins, the last bin closed (numpy's convention). */
export function oracleHistogram(values: ArrayLike<number>, bins: number, range: number): { counts: number[]; edges: number[] } {
  const width = (2 * range) / bins;
  const counts = new Array<number>(bins).fill(0);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v < -range || v > range) throw new Error(`value ${v} outside [-${range}, ${range}]`);
    counts[Math.min(bins - 1, Math.floor((v + range) / width))] += 1;
  }
  const edges = Array.from({ length: bins + 1 }, (_, k) => -range + k * width);
  return { counts, edges };
}

/** ORT's smooth_distribution: zeros become eps, the same total taken evenly off the non-zeros; null if all zero. */
function smooth(p: readonly number[], eps = 0.0001): number[] | null {
  const zeros = p.filter((x) => x === 0).length;
  const nonZeros = p.length - zeros;
  if (nonZeros === 0) return null;
  const take = (eps * zeros) / nonZeros;
  return p.map((x) => (x === 0 ? eps : x - take));
}

/** scipy.stats.entropy(p, q): both normalised, sum of p log(p / q). */
function klDivergence(p: readonly number[], q: readonly number[]): number {
  const sp = sum(p);
  const sq = sum(q);
  let kl = 0;
  for (let i = 0; i < p.length; i++) kl += (p[i] / sp) * Math.log(p[i] / sp / (q[i] / sq));
  return kl;
}

/** The KL-optimal [low, high] for a histogram whose zero is the edge between its two middle bins. */
export function oracleEntropyThreshold(
  counts: readonly number[],
  edges: readonly number[],
  quantizedBins: number,
  min: number,
  max: number,
): { low: number; high: number } {
  const bins = counts.length;
  const zeroBin = Math.floor(bins / 2);
  const halfQuantized = Math.floor(quantizedBins / 2);
  const candidates: { low: number; high: number; kl: number }[] = [];
  for (let i = halfQuantized; i <= zeroBin; i++) {
    const start = zeroBin - i;
    const end = Math.min(zeroBin + i + 1, bins);
    const sliced = counts.slice(start, end);

    // p: the window, with whatever lies outside it added to its outermost bins.
    const p = [...sliced];
    p[0] += sum(counts.slice(0, start));
    p[p.length - 1] += sum(counts.slice(end));

    // q: the window (without the outside) merged into quantizedBins groups, the remainder joining the last group.
    const perGroup = Math.floor(sliced.length / quantizedBins);
    const groupTotals: number[] = [];
    for (let g = 0; g < quantizedBins; g++) groupTotals.push(sum(sliced.slice(g * perGroup, (g + 1) * perGroup)));
    groupTotals[quantizedBins - 1] += sum(sliced.slice(quantizedBins * perGroup));

    // ...then spread back over each group's bins, by the group's count of non-zero p, as an integer (ORT's q is an
    // int64 array); the remainder bins keep 0.
    const q = new Array<number>(p.length).fill(0);
    for (let g = 0; g < quantizedBins; g++) {
      const inGroup = p.slice(g * perGroup, (g + 1) * perGroup);
      const nonZero = inGroup.filter((x) => x !== 0).length;
      if (nonZero === 0) continue;
      for (let j = g * perGroup; j < (g + 1) * perGroup; j++) q[j] = Math.trunc(groupTotals[g] / nonZero);
    }

    const ps = smooth(p);
    const qs = smooth(q);
    candidates.push({ low: edges[start], high: edges[end], kl: ps && qs ? klDivergence(ps, qs) : Infinity });
  }
  let best = candidates[0];
  for (const c of candidates) if (c.kl < best.kl) best = c;
  return { low: Math.max(best.low, min), high: Math.min(best.high, max) };
}
