// Every per-value statistic the per-tensor observer keeps, gathered in one pass over a chunk: range, shifted
// power sums for the moments, per-channel |x| maxima, the |x| >= threshold count and the histogram counts.
// Calibration spends most of its time here (a decoder's activations are tens of thousands of values per token),
// so the pass is WebAssembly with SIMD (one-pass.as.ts, built by `npm run build`), which reads each value once
// and runs ~2.5x faster than the same loop in JavaScript; the single-purpose observers stay plain JavaScript
// and are what the tests hold this pass to.
import { readFileSync } from 'node:fs';

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

export interface OnePassResult extends OnePassSums {
  /** Each channel's largest |x|: a view into the kernel's memory, valid until the next pass. */
  peaks: Float32Array;
  /**
   * The values' bin counts at bins / (2 * range) bins per unit, centred on zero: a view into the kernel's memory
   * that the caller must leave all zero before the next pass (foldCounts does). A value beyond +-range lands in
   * an end bin; the caller sees it from min and max.
   */
  counts: Int32Array;
}

// The WebAssembly API Node provides, as far as used here (the project's TypeScript libs declare none of it).
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: object };
};

interface KernelExports {
  memory: { buffer: ArrayBuffer; grow(pages: number): number };
  onePass(data: number, n: number, channels: number, shift: number, range: number, threshold: number, peaks: number, counts: number, bins: number, out: number): void;
}

const PAGE = 65536;
const RESULTS = 7;
/**
 * Values passed to the kernel at a time (whole rows, at least one): the copy into its memory stays in cache for
 * the pass that reads it, and the kernel's memory stays small however large a tensor is.
 */
const SLICE = 1 << 16;

/** The compiled kernel and the layout of its memory: results, peaks, counts, then a slice of values. */
class Kernel {
  private readonly exports: KernelExports;
  private readonly peaksAt = 64;
  private channelsRoom = 0;
  private countsAt = 64;
  private binsRoom = 0;
  private dataAt = 64;

  constructor() {
    const bytes = readFileSync(new URL('./one-pass.wasm', import.meta.url));
    this.exports = new WebAssembly.Instance(new WebAssembly.Module(bytes), {}).exports as unknown as KernelExports;
  }

  run(data: Float32Array, channels: number, shift: number, range: number, threshold: number, bins: number): OnePassResult {
    const rowsPerSlice = Math.max(1, Math.floor(SLICE / channels));
    this.reserve(channels, bins, Math.min(data.length, rowsPerSlice * channels));
    const { memory, onePass } = this.exports;
    const peaks = new Float32Array(memory.buffer, this.peaksAt, channels);
    peaks.fill(0);
    const sums: OnePassSums = { count: data.length, min: Infinity, max: -Infinity, shift, s1: 0, s2: 0, s3: 0, s4: 0, atLeast: 0, finite: true };
    const results = new Float64Array(memory.buffer, 0, RESULTS);
    const slice = new Float32Array(memory.buffer, this.dataAt, Math.min(data.length, rowsPerSlice * channels));
    for (let from = 0; from < data.length; from += rowsPerSlice * channels) {
      const part = data.subarray(from, from + rowsPerSlice * channels);
      slice.set(part);
      onePass(this.dataAt, part.length, channels, shift, range, threshold, this.peaksAt, this.countsAt, bins, 0);
      sums.min = Math.min(sums.min, results[0]);
      sums.max = Math.max(sums.max, results[1]);
      sums.s1 += results[2];
      sums.s2 += results[3];
      sums.s3 += results[4];
      sums.s4 += results[5];
      sums.atLeast += results[6];
    }
    sums.finite = Number.isFinite(sums.s4);
    return { ...sums, peaks, counts: new Int32Array(memory.buffer, this.countsAt, bins) };
  }

  /** Room for the peaks, the counts and a slice; when the counts move, their new place is zeroed. */
  private reserve(channels: number, bins: number, values: number): void {
    const align = (n: number) => Math.ceil(n / 16) * 16;
    if (channels > this.channelsRoom || bins > this.binsRoom) {
      this.channelsRoom = Math.max(channels, this.channelsRoom);
      this.binsRoom = Math.max(bins, this.binsRoom);
      this.countsAt = align(this.peaksAt + 4 * this.channelsRoom);
      this.dataAt = align(this.countsAt + 4 * this.binsRoom);
      this.grow(this.dataAt);
      new Int32Array(this.exports.memory.buffer, this.countsAt, this.binsRoom).fill(0);
    }
    this.grow(this.dataAt + 4 * values);
  }

  private grow(bytes: number): void {
    const memory = this.exports.memory;
    if (bytes > memory.buffer.byteLength) memory.grow(Math.ceil((bytes - memory.buffer.byteLength) / PAGE));
  }
}

let kernel: Kernel | undefined;

/** One pass over row-major `data` with `channels` values per row (`data.length` a multiple of it). */
export function onePass(data: Float32Array, channels: number, shift: number, range: number, threshold: number, bins: number): OnePassResult {
  kernel ??= new Kernel();
  return kernel.run(data, channels, shift, range, threshold, bins);
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
