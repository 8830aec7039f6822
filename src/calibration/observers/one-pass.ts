// Every per-value statistic the per-tensor observer keeps, gathered in one pass over a chunk: range, shifted
// power sums for the moments, per-channel |x| maxima, the |x| >= threshold count and the histogram counts.
// Calibration spends most of its time here (a decoder's activations are tens of thousands of values per token),
// and one pass reads each value once where the single-purpose observers read it four times.
//
// The loop is written for V8: no data-dependent branch where values are unpredictable (a mispredicted branch per
// value costs more than the rest of the loop), selects only where the outcome settles (running extremes),
// integer bin counts in a reused scratch array (folded into the float64 histogram once per chunk), no allocation.

export interface OnePassSums {
  count: number;
  /** +Infinity / -Infinity for an empty chunk. */
  min: number;
  max: number;
  /** The value the power sums are taken about. */
  shift: number;
  /** Sums of (x - shift)^k for k = 1..4, in float64. */
  s1: number;
  s2: number;
  s3: number;
  s4: number;
  /** Values with |x| >= threshold. */
  atLeast: number;
  /** Every value is finite. A float32 value cannot overflow (x - shift)^4 in float64, so s4 says it exactly. */
  finite: boolean;
}

export interface OnePassBuffers {
  /** Receives each channel's largest |x|; its first `channels` entries are overwritten. */
  peaks: Float64Array;
  /**
   * Receives the bin counts of the values at bins / (2 * range) bins per unit, centred on zero; must be all zero
   * on entry. A value beyond +-range lands in an end bin or, far beyond (its index wraps in the int32
   * truncation), in any bin: the caller sees it from min and max and discards all counts.
   */
  counts: Int32Array;
}

/** One pass over row-major `data` with `channels` values per row (`data.length` a multiple of it). */
export function onePass(data: Float32Array, channels: number, shift: number, range: number, threshold: number, buffers: OnePassBuffers): OnePassSums {
  const { peaks, counts } = buffers;
  const bins = counts.length;
  const scale = bins / (2 * range);
  const half = bins / 2;
  const last = bins - 1;
  peaks.fill(0, 0, channels);
  let min = Infinity;
  let max = -Infinity;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let s4 = 0;
  let atLeast = 0;
  const n = data.length;
  for (let row = 0, i = 0; row < n; row += channels) {
    for (let c = 0; c < channels; c++, i++) {
      const x = data[i];
      min = x < min ? x : min;
      max = x > max ? x : max;
      const a = Math.abs(x);
      const p = peaks[c];
      peaks[c] = a > p ? a : p;
      atLeast += +(a >= threshold); // not `? 1 : 0`, which V8 compiles to a branch: 5x slower on attention scores
      const d = x - shift;
      const d2 = d * d;
      s1 += d;
      s2 += d2;
      s3 += d2 * d;
      s4 += d2 * d2;
      // Truncation floors here: the operand is >= 0 for every x >= -range.
      const k = (x * scale + half) | 0;
      counts[k < 0 ? 0 : k > last ? last : k]++;
    }
  }
  return { count: n, min, max, shift, s1, s2, s3, s4, atLeast, finite: Number.isFinite(s4) };
}

/** The sums about `shift` turned into the count, mean and central moment sums of the chunk. */
export function centralFromShifted(sums: OnePassSums): { count: number; mean: number; m2: number; m3: number; m4: number } {
  const { count: n, shift, s1, s2, s3, s4 } = sums;
  const d = s1 / n; // mean - shift
  const d2 = d * d;
  return {
    count: n,
    mean: shift + d,
    // Rounding can leave a hair below zero for (near-)constant data; a sum of squares is not negative.
    m2: Math.max(0, s2 - n * d2),
    m3: s3 - 3 * d * s2 + 2 * n * d2 * d,
    m4: Math.max(0, s4 - 4 * d * s3 + 6 * d2 * s2 - 3 * n * d2 * d2),
  };
}
