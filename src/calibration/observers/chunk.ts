// One batch's values of one tensor, as observers see them. The facts several observers need (count, min, max,
// sum) come from one scan that runs at most once per chunk, however many observers ask.

export interface ChunkScan {
  count: number;
  /** +Infinity for an empty chunk. */
  min: number;
  /** -Infinity for an empty chunk. */
  max: number;
  /** Sum in float64; not finite exactly when some value is NaN or infinite (float32 values cannot overflow it). */
  sum: number;
  /** Every value is finite. */
  finite: boolean;
}

export class Chunk {
  private scanned?: ChunkScan;

  /**
   * `channels` is the size of the tensor's last axis (values are row-major, so channel c is every element whose
   * index is c modulo `channels`); by default the whole chunk is one row.
   */
  constructor(
    readonly data: Float32Array,
    readonly channels: number = Math.max(1, data.length),
  ) {
    if (!Number.isInteger(channels) || channels < 1 || data.length % channels !== 0) {
      throw new RangeError(`a chunk of ${data.length} values cannot have ${channels} channels`);
    }
  }

  get scan(): ChunkScan {
    return (this.scanned ??= scanValues(this.data));
  }

  /** Records a scan a fused pass computed on the way (onePass), so that asking for it later costs nothing. */
  recordScan(scan: ChunkScan): void {
    this.scanned ??= scan;
  }

  /** Largest magnitude; 0 for an empty chunk. */
  get absMax(): number {
    const { min, max, count } = this.scan;
    return count === 0 ? 0 : Math.max(-min, max);
  }
}

/** Count, min, max and sum in one pass. */
export function scanValues(data: Float32Array): ChunkScan {
  const n = data.length;
  let min = Infinity;
  let max = -Infinity;
  // Two running sums: one float64 add chain is latency-bound, two halve the wait.
  let even = 0;
  let odd = 0;
  let i = 0;
  for (; i + 1 < n; i += 2) {
    const a = data[i];
    const b = data[i + 1];
    if (a < min) min = a;
    if (a > max) max = a;
    if (b < min) min = b;
    if (b > max) max = b;
    even += a;
    odd += b;
  }
  if (i < n) {
    const a = data[i];
    if (a < min) min = a;
    if (a > max) max = a;
    even += a;
  }
  const sum = even + odd;
  return { count: n, min, max, sum, finite: Number.isFinite(sum) };
}

/** Index of the first NaN or infinite value, or -1. Only for the error path: the scan already says whether. */
export function firstNonFinite(data: Float32Array): number {
  for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i])) return i;
  return -1;
}
