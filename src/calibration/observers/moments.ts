// Mean, standard deviation and kurtosis from streamed central moments. Each chunk's moments are taken about the
// chunk's own mean (two passes over values already in cache, no cancellation), then combined with the running
// state by the pairwise formulas of Chan, Golub & LeVeque (mean, M2) and Pébay 2008 (M3, M4), which are exact in
// exact arithmetic and numerically stable in float64. The same combination merges two states.
import type { Chunk } from './chunk.js';
import type { Observer } from './observer.js';

/** Count, mean and the sums of squared, cubed and fourth-power deviations from the mean. */
export interface MomentsState {
  count: number;
  mean: number;
  m2: number;
  m3: number;
  m4: number;
}

export interface Moments {
  count: number;
  /** NaN when nothing was observed. */
  mean: number;
  /** Population variance (divided by count, as numpy's var and ONNX Runtime's calibrators do). */
  variance: number;
  std: number;
  /** Pearson kurtosis m4 / m2^2 (3 for a normal distribution); NaN when the variance is 0. */
  kurtosis: number;
}

export const momentsObserver: Observer<MomentsState, Moments> = {
  init: () => ({ count: 0, mean: 0, m2: 0, m3: 0, m4: 0 }),
  update(state: MomentsState, chunk: Chunk): void {
    const { count, sum } = chunk.scan;
    if (count === 0) return;
    const part = centralMoments(chunk.data, sum / count);
    Object.assign(state, combineMoments(state, part));
  },
  merge: (a, b) => combineMoments(a, b),
  finalize({ count, mean, m2, m4 }: MomentsState): Moments {
    if (count === 0) return { count, mean: NaN, variance: NaN, std: NaN, kurtosis: NaN };
    const variance = m2 / count;
    return { count, mean, variance, std: Math.sqrt(variance), kurtosis: m2 > 0 ? (count * m4) / (m2 * m2) : NaN };
  },
};

/** Moments of one block of values about its known mean. */
function centralMoments(data: Float32Array, mean: number): MomentsState {
  const n = data.length;
  // Two sets of accumulators, for the same reason as in scanValues: shorter dependency chains.
  let a2 = 0, a3 = 0, a4 = 0, b2 = 0, b3 = 0, b4 = 0; // prettier-ignore
  let i = 0;
  for (; i + 1 < n; i += 2) {
    const d = data[i] - mean;
    const e = data[i + 1] - mean;
    const d2 = d * d;
    const e2 = e * e;
    a2 += d2;
    a3 += d2 * d;
    a4 += d2 * d2;
    b2 += e2;
    b3 += e2 * e;
    b4 += e2 * e2;
  }
  if (i < n) {
    const d = data[i] - mean;
    const d2 = d * d;
    a2 += d2;
    a3 += d2 * d;
    a4 += d2 * d2;
  }
  return { count: n, mean, m2: a2 + b2, m3: a3 + b3, m4: a4 + b4 };
}

/** The moments of the union of two disjoint sets of values. */
export function combineMoments(a: MomentsState, b: MomentsState): MomentsState {
  if (b.count === 0) return { ...a };
  if (a.count === 0) return { ...b };
  const na = a.count;
  const nb = b.count;
  const n = na + nb;
  const delta = b.mean - a.mean;
  const delta2 = delta * delta;
  const mean = a.mean + (delta * nb) / n;
  const m2 = a.m2 + b.m2 + (delta2 * na * nb) / n;
  const m3 = a.m3 + b.m3 + (delta2 * delta * na * nb * (na - nb)) / (n * n) + (3 * delta * (na * b.m2 - nb * a.m2)) / n;
  const m4 =
    a.m4 +
    b.m4 +
    (delta2 * delta2 * na * nb * (na * na - na * nb + nb * nb)) / (n * n * n) +
    (6 * delta2 * (na * na * b.m2 + nb * nb * a.m2)) / (n * n) +
    (4 * delta * (na * b.m3 - nb * a.m3)) / n;
  return { count: n, mean, m2, m3, m4 };
}
