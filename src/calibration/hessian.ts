// H = XᵀX of the activations a layer-wise weight solver needs (GPTQ), accumulated while calibration streams the
// set: an ActivationAccumulator (collect.ts) keeping one K x K float64 sum per tensor, K the width the consumer
// reduces over, and the number of rows summed. Memory is K² per tensor, whatever the size of the set. A row is a
// MatMul/Gemm input's last axis; a Gemm reading its input transposed (transA=1) reduces over the first axis of a
// 2-D input, so its columns are the rows.
import { OptionError } from '../errors.js';
import type { ActivationAccumulator } from './collect.js';

export type HessianUnit = 'rows' | 'columns';

export interface HessianRequest {
  tensor: string;
  unit: HessianUnit;
}

export interface Hessian {
  tensor: string;
  unit: HessianUnit;
  /** Width K; `h` is K x K row-major. */
  k: number;
  h: Float64Array;
  /** Σ x over the rows summed (length K): the input's mean times `rows`, for a bias's share of the output error. */
  sum: Float64Array;
  /** Rows (tokens) summed. */
  rows: number;
}

/** XᵀX per requested tensor; give it to collectStatistics as an accumulator. */
export class HessianAccumulator implements ActivationAccumulator {
  readonly targets: readonly string[];
  private readonly byKey = new Map<string, Hessian>();
  private readonly byTensor = new Map<string, Hessian[]>();

  constructor(requests: readonly HessianRequest[]) {
    for (const r of requests) {
      const key = `${r.tensor}\u0000${r.unit}`;
      if (this.byKey.has(key)) continue;
      const entry: Hessian = { tensor: r.tensor, unit: r.unit, k: 0, h: new Float64Array(0), sum: new Float64Array(0), rows: 0 };
      this.byKey.set(key, entry);
      const list = this.byTensor.get(r.tensor) ?? [];
      list.push(entry);
      this.byTensor.set(r.tensor, list);
    }
    this.targets = [...this.byTensor.keys()];
  }

  add(name: string, values: Float32Array, dims: readonly number[]): void {
    for (const e of this.byTensor.get(name) ?? []) accumulate(e, values, dims);
  }

  finish(): void {
    // Only the upper triangle is summed; mirrored once at the end.
    for (const e of this.byKey.values()) {
      for (let i = 0; i < e.k; i++) for (let j = i + 1; j < e.k; j++) e.h[j * e.k + i] = e.h[i * e.k + j];
    }
  }

  /** The Hessian of a tensor read in `unit`, after finish(); undefined when it was not requested or never seen. */
  get(tensor: string, unit: HessianUnit = 'rows'): Hessian | undefined {
    const e = this.byKey.get(`${tensor}\u0000${unit}`);
    return e && e.k > 0 ? e : undefined;
  }
}

const CHUNK = 16;

function accumulate(e: Hessian, values: Float32Array, dims: readonly number[]): void {
  if (dims.length === 0) return;
  let k: number;
  let count: number;
  let at: (u: number, i: number) => number;
  if (e.unit === 'rows') {
    k = dims[dims.length - 1];
    count = k === 0 ? 0 : values.length / k;
    at = (u, i) => u * k + i;
  } else {
    if (dims.length !== 2) throw new OptionError(`Hessian: '${e.tensor}' is ${dims.length}-D; a transposed Gemm input must be 2-D`);
    k = dims[0];
    const m = dims[1];
    count = m;
    at = (u, i) => i * m + u;
  }
  if (count === 0 || k === 0) return;
  if (e.k === 0) {
    e.k = k;
    e.h = new Float64Array(k * k);
    e.sum = new Float64Array(k);
  } else if (e.k !== k) {
    throw new OptionError(`Hessian: '${e.tensor}' changed width from ${e.k} to ${k} between batches`);
  }
  // Rows go in chunks, feature-major, so each pass over the K² sum (megabytes for K ~ 1000) adds CHUNK rows.
  const xt = new Float64Array(k * CHUNK);
  const h = e.h;
  const sum = e.sum;
  for (let u0 = 0; u0 < count; u0 += CHUNK) {
    const n = Math.min(CHUNK, count - u0);
    if (n < CHUNK) xt.fill(0);
    for (let r = 0; r < n; r++) for (let i = 0; i < k; i++) xt[i * CHUNK + r] = values[at(u0 + r, i)];
    for (let i = 0; i < k; i++) for (let r = 0; r < n; r++) sum[i] += xt[i * CHUNK + r];
    for (let i = 0; i < k; i++) {
      const row = i * k;
      const xi = i * CHUNK;
      for (let j = i; j < k; j++) {
        const xj = j * CHUNK;
        let s = 0;
        for (let r = 0; r < CHUNK; r++) s += xt[xi + r] * xt[xj + r];
        h[row + j] += s;
      }
    }
  }
  e.rows += count;
}
