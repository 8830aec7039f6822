// GPTQ (Frantar, Ashkboos, Hoefler, Alistarh 2022, "GPTQ: Accurate Post-Training Quantization for Generative
// Pre-trained Transformers") for one 2-D weight or Conv weight, as pure functions: given H = XᵀX of the layer's input (K x K,
// K the reduction width), the columns along K are quantized one at a time and each column's rounding error is
// spread over the columns not yet quantized through the upper Cholesky factor of H⁻¹, which minimises
// tr((W - Q) H (W - Q)ᵀ) greedily. Follows the reference code (gptq.py): damping by a fraction of the mean
// diagonal, dead inputs (zero diagonal) zeroed, optional activation order, lazy updates in blocks of 128 columns.
//
// The grid is exactly the planned format's (quantizers.ts's spec and arithmetic), so the result is a `Quantized`
// the rewriters store as they are: per tensor and per channel, scales come from the weight before any update (as
// the reference's find_params(W)); per block, a block's scales come from its columns as updated when GPTQ reaches
// it (the reference's groupsize). With activation order the blocks of the stored format are runs of consecutive
// *original* columns that GPTQ visits out of order, so their scales are fixed from the weight before any update
// (the reference's static_groups).
//
// A Conv weight [O, C/group, k1, ...] is the 2-D problem [O, K] (K = C/group x kernel size, its stored layout)
// over the input's im2col patches (calibration/conv-hessian.ts), one Hessian per group: the output channels of
// group g read only group g's patches, so each group's rows run the column loop with their own factor, on one grid.
// A block of a blocked Conv format runs along C/group at one kernel tap, so its columns are kernel-size apart.
//
// Everything is float64; K is at most a few thousand here, so a plain O(K³) Cholesky is enough.
import { dequantize, quantizeValue, saturationRange, scaleZeroPoint, type QuantSpec, type Quantized } from './quantizers.js';
import { roundToNearest, type SolveRequest, type WeightSolver } from './solvers.js';
import { QuantizationError } from './schemes.js';

export interface GptqOptions {
  /** Damping as a fraction of the mean diagonal of H (default 0.01). */
  percdamp?: number;
  /** Visit columns by decreasing H diagonal (the reference's act_order / desc_act); default false. */
  actOrder?: boolean;
  /** Columns per lazy batch update (default 128); does not change the result beyond rounding. */
  blockColumns?: number;
  /** How many times the damping doubles before giving up on a Hessian that is not positive definite (default 12). */
  maxDampingSteps?: number;
}

export interface GptqResult {
  q: Quantized;
  /** The fraction of the mean diagonal that made H positive definite (>= percdamp), and its absolute value. */
  percdamp: number;
  damping: number;
  /** Inputs whose diagonal was zero (never active in calibration): their weights were zeroed, as the reference does. */
  deadInputs: number;
}

/** A weight as GPTQ sees it: `rows` output channels by `cols` = K inputs, row-major float64. */
export interface RowMajor {
  rows: number;
  cols: number;
  data: Float64Array;
}

export const DEFAULT_PERCDAMP = 0.01;
const DEFAULT_BLOCK = 128;
const DEFAULT_DAMPING_STEPS = 12;

/** The weight with output channels as rows and the reduction axis as columns, whatever its stored layout. */
export function toRows(values: ArrayLike<number>, dims: readonly number[], reductionAxis: number): RowMajor {
  if (dims.length !== 2) throw new RangeError(`GPTQ takes 2-D weights, got [${dims.join(', ')}]`);
  const r = reductionAxis < 0 ? reductionAxis + 2 : reductionAxis;
  const cols = dims[r];
  const rows = dims[1 - r];
  const data = new Float64Array(rows * cols);
  for (let n = 0; n < rows; n++) for (let k = 0; k < cols; k++) data[n * cols + k] = values[r === 1 ? n * cols + k : k * rows + n];
  return { rows, cols, data };
}

/** Width K of the weight's reduction: a 2-D weight's reduction axis, a Conv's C/group x kernel size. */
export function reductionWidth(dims: readonly number[], reductionAxis: number): number {
  if (dims.length === 2) return dims[reductionAxis < 0 ? reductionAxis + 2 : reductionAxis];
  return dims.slice(1).reduce((a, b) => a * b, 1);
}

/**
 * Any weight GPTQ takes, as rows x K: a 2-D MatMul/Gemm weight (toRows), or a Conv weight [O, C/group, k1, ...],
 * whose stored layout already is [O, K].
 */
export function weightRows(values: ArrayLike<number>, dims: readonly number[], reductionAxis: number): RowMajor {
  if (dims.length === 2) return toRows(values, dims, reductionAxis);
  if (dims.length < 3 || reductionAxis !== 1) {
    throw new RangeError(`GPTQ takes 2-D weights and Conv weights [O, C/group, k1, ...] reducing over axis 1, got [${dims.join(', ')}] reducing over axis ${reductionAxis}`);
  }
  return { rows: dims[0], cols: reductionWidth(dims, reductionAxis), data: Float64Array.from(values) };
}

/**
 * Upper Cholesky factor U of H⁻¹ (H⁻¹ = UᵀU), H damped by `damping` on the diagonal; null when the damped H is
 * not positive definite. Row i of U is what the reference's Hinv[i, i:] holds.
 */
export function inverseCholeskyUpper(h: Float64Array, k: number, damping: number): Float64Array | null {
  // With P the reversal permutation and P H P = L Lᵀ, H⁻¹ = (P L⁻¹ P)ᵀ (P L⁻¹ P) and P L⁻¹ P is upper triangular
  // with a positive diagonal: the factor wanted, from one Cholesky and one triangular inverse (instead of the
  // reference's Cholesky, inverse and second Cholesky).
  const a = new Float64Array(k * k);
  for (let i = 0; i < k; i++) for (let j = 0; j <= i; j++) a[i * k + j] = h[(k - 1 - i) * k + (k - 1 - j)];
  for (let i = 0; i < k; i++) a[i * k + i] += damping;
  if (!choleskyLower(a, k)) return null;
  // X = L⁻¹ row by row: X[i,:] = (e_i - sum over p < i of L[i,p] X[p,:]) / L[i,i], contiguous rows.
  const x = new Float64Array(k * k);
  for (let i = 0; i < k; i++) {
    const row = i * k;
    x[row + i] = 1;
    for (let p = 0; p < i; p++) {
      const l = a[row + p];
      if (l === 0) continue;
      const src = p * k;
      for (let j = 0; j <= p; j++) x[row + j] -= l * x[src + j];
    }
    const d = a[row + i];
    for (let j = 0; j <= i; j++) x[row + j] /= d;
  }
  const u = new Float64Array(k * k);
  for (let i = 0; i < k; i++) for (let j = i; j < k; j++) u[i * k + j] = x[(k - 1 - i) * k + (k - 1 - j)];
  return u;
}

/** In-place lower Cholesky factor of a symmetric matrix (upper triangle left as garbage); false if not positive definite. */
function choleskyLower(a: Float64Array, k: number): boolean {
  for (let j = 0; j < k; j++) {
    let d = a[j * k + j];
    for (let p = 0; p < j; p++) d -= a[j * k + p] * a[j * k + p];
    if (!(d > 0) || !Number.isFinite(d)) return false;
    const l = Math.sqrt(d);
    a[j * k + j] = l;
    for (let i = j + 1; i < k; i++) {
      let s = a[i * k + j];
      for (let p = 0; p < j; p++) s -= a[i * k + p] * a[j * k + p];
      a[i * k + j] = s / l;
    }
  }
  return true;
}

/** Column order: by decreasing diagonal (ties by index, so the order is deterministic), or as stored. */
export function columnOrder(h: Float64Array, k: number, actOrder: boolean): Int32Array {
  const order = Int32Array.from({ length: k }, (_, i) => i);
  if (actOrder) order.sort((a, b) => h[b * k + b] - h[a * k + a] || a - b);
  return order;
}

/**
 * The grid GPTQ rounds to: per (row, original column), the group's scale and zero point, and which groups are
 * fixed before the loop. Mirrors quantizers.ts's layout for 2-D and Conv weights (weightRows's rows x K view).
 */
export class Grid {
  readonly spec: Required<QuantSpec>;
  readonly groups: number;
  readonly paramDims: number[];
  readonly scales: Float32Array;
  readonly zeroPoints: Int16Array;
  private readonly set: Uint8Array;
  readonly blockSize: number;
  private readonly blocks: number;
  /** Columns between neighbours along the reduction axis: 1, or a Conv's kernel size. */
  private readonly taps: number;

  constructor(
    readonly dims: readonly number[],
    spec: Required<QuantSpec>,
    private readonly reductionAxis: number,
  ) {
    const g = spec.granularity;
    const rank = dims.length;
    const norm = (axis: number): number => (axis < 0 ? axis + rank : axis);
    const r = norm(reductionAxis);
    if (rank !== 2 && r !== 1) throw new RangeError(`GPTQ: a ${rank}-D weight must reduce over axis 1, got axis ${reductionAxis}`);
    // 2-D: output channels on the other axis; a Conv weight: axis 0, with the kernel taps after the reduction axis.
    const out = rank === 2 ? 1 - r : 0;
    this.reductionAxis = r;
    this.taps = rank === 2 ? 1 : dims.slice(2).reduce((a, b) => a * b, 1);
    if (g.kind === 'tensor') {
      this.spec = spec;
      this.groups = 1;
      this.paramDims = [];
      this.blockSize = 0;
      this.blocks = 0;
    } else if (g.kind === 'channel') {
      if (norm(g.axis) !== out) throw new RangeError(`GPTQ: per-channel scales must run along the output channels (axis ${out}), got axis ${g.axis}`);
      this.spec = { ...spec, granularity: { kind: 'channel', axis: out } };
      this.groups = dims[out];
      this.paramDims = [dims[out]];
      this.blockSize = 0;
      this.blocks = 0;
    } else {
      if (norm(g.axis) !== r) throw new RangeError(`GPTQ: blocks must run along the reduction axis ${r}, got axis ${g.axis}`);
      this.spec = { ...spec, granularity: { kind: 'block', axis: r, blockSize: g.blockSize } };
      this.blockSize = g.blockSize;
      this.blocks = Math.ceil(dims[r] / g.blockSize);
      this.groups = this.blocks * dims[out] * this.taps;
      this.paramDims = [...dims];
      this.paramDims[r] = this.blocks;
    }
    this.scales = new Float32Array(this.groups);
    this.zeroPoints = new Int16Array(this.groups);
    this.set = new Uint8Array(this.groups);
  }

  /** Group of output row n, original column k. */
  group(n: number, k: number): number {
    const g = this.spec.granularity;
    if (g.kind === 'tensor') return 0;
    if (g.kind === 'channel') return n;
    const b = Math.floor(Math.floor(k / this.taps) / this.blockSize);
    return this.reductionAxis === 0 ? b * this.dims[1] + n : (n * this.blocks + b) * this.taps + (k % this.taps);
  }

  /** Whether original column k is the first of its block (blocked formats). */
  startsBlock(k: number): boolean {
    return Math.floor(k / this.taps) % this.blockSize === 0;
  }

  isSet(group: number): boolean {
    return this.set[group] === 1;
  }

  /** Fixes a group's scale and zero point from the min and max of the values it covers. */
  fit(group: number, min: number, max: number): void {
    const p = scaleZeroPoint(min, max, this.spec);
    this.scales[group] = p.scale;
    this.zeroPoints[group] = p.zeroPoint;
    this.set[group] = 1;
  }

  code(x: number, group: number): number {
    return quantizeValue(x, this.scales[group], this.zeroPoints[group], this.spec);
  }

  value(code: number, group: number): number {
    return Math.fround((code - this.zeroPoints[group]) * this.scales[group]);
  }

  /** Fits every group from W (rows x original columns) as it is now: per tensor, per channel, static blocks. */
  fitAll(w: RowMajor): void {
    const mins = new Float64Array(this.groups).fill(Infinity);
    const maxs = new Float64Array(this.groups).fill(-Infinity);
    for (let n = 0; n < w.rows; n++) {
      for (let k = 0; k < w.cols; k++) {
        const g = this.group(n, k);
        const v = w.data[n * w.cols + k];
        if (v < mins[g]) mins[g] = v;
        if (v > maxs[g]) maxs[g] = v;
      }
    }
    for (let g = 0; g < this.groups; g++) this.fit(g, mins[g], maxs[g]);
  }

  /**
   * Fits the block starting at original column k0, for rows [from, to) of a weight `cols` wide, from their
   * current values as `at(row, column)` reads them.
   */
  fitBlock(k0: number, from: number, to: number, cols: number, at: (n: number, k: number) => number): void {
    const k1 = Math.min(k0 + this.blockSize * this.taps, cols);
    for (let n = from; n < to; n++) {
      let min = Infinity;
      let max = -Infinity;
      for (let k = k0; k < k1; k += this.taps) {
        const v = at(n, k);
        if (v < min) min = v;
        if (v > max) max = v;
      }
      this.fit(this.group(n, k0), min, max);
    }
  }

  /** The Quantized of codes given per (row, original column), laid out as the stored weight. */
  toQuantized(codes: Int16Array, rows: number, cols: number): Quantized {
    const out = new Int16Array(rows * cols);
    for (let n = 0; n < rows; n++) {
      for (let k = 0; k < cols; k++) out[this.reductionAxis === 1 ? n * cols + k : k * rows + n] = codes[n * cols + k];
    }
    return { dims: [...this.dims], spec: this.spec, codes: out, scales: this.scales, zeroPoints: this.zeroPoints, paramDims: this.paramDims, ...saturationRange(this.spec) };
  }
}

/**
 * GPTQ on one weight. `h` is XᵀX (K x K, row-major, any positive scale) of the activation the weight multiplies
 * (a Conv: of its im2col patches, one per group), `values`/`dims` the stored weight with `reductionAxis` K; `spec`
 * the planned format's.
 */
export function gptqQuantize(
  values: ArrayLike<number>,
  dims: readonly number[],
  reductionAxis: number,
  spec: Required<QuantSpec>,
  hessian: Float64Array | readonly Float64Array[],
  options: GptqOptions = {},
): GptqResult {
  const k = reductionWidth(dims, reductionAxis);
  const groups = hessian instanceof Float64Array ? [hessian] : hessian;
  return gptqPrepared(values, dims, reductionAxis, spec, groups.map((h) => prepareHessian(h, k, options)), options);
}

/** What GPTQ derives from H alone (shared by every weight reading the same input): dead inputs, order, factor. */
export interface PreparedHessian {
  k: number;
  dead: Uint8Array;
  order: Int32Array;
  u: Float64Array;
  percdamp: number;
  damping: number;
}

export function prepareHessian(hessian: Float64Array, k: number, options: GptqOptions = {}): PreparedHessian {
  if (hessian.length !== k * k) throw new RangeError(`GPTQ: Hessian of ${hessian.length} values for K = ${k}`);
  const h = new Float64Array(hessian);
  const dead = new Uint8Array(k);
  for (let i = 0; i < k; i++) {
    if (h[i * k + i] === 0) {
      dead[i] = 1;
      h[i * k + i] = 1;
    }
  }
  const order = columnOrder(h, k, options.actOrder ?? false);
  const hp = new Float64Array(k * k);
  for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) hp[i * k + j] = h[order[i] * k + order[j]];
  return { k, dead, order, ...dampedInverseFactor(hp, k, options) };
}

/**
 * GPTQ on one weight with H already prepared: one H, or a Conv's one per group (the weight's rows split evenly,
 * in order, among them). With several, the result's damping is the largest any group needed.
 */
export function gptqPrepared(
  values: ArrayLike<number>,
  dims: readonly number[],
  reductionAxis: number,
  spec: Required<QuantSpec>,
  prepared: PreparedHessian | readonly PreparedHessian[],
  options: GptqOptions = {},
): GptqResult {
  const w = weightRows(values, dims, reductionAxis);
  const k = w.cols;
  const groups = Array.isArray(prepared) ? (prepared as readonly PreparedHessian[]) : [prepared as PreparedHessian];
  if (groups.length === 0 || w.rows % groups.length !== 0) throw new RangeError(`GPTQ: ${w.rows} output channels do not split into ${groups.length} Hessian groups`);
  const per = w.rows / groups.length;
  // Dead inputs: never active, so their weights cannot matter on the calibration data; zeroed so they cost nothing.
  let deadInputs = 0;
  for (const [g, p] of groups.entries()) {
    if (p.k !== k) throw new RangeError(`GPTQ: Hessian for K = ${p.k}, weight with K = ${k}`);
    for (let i = 0; i < k; i++) {
      if (!p.dead[i]) continue;
      deadInputs++;
      for (let n = g * per; n < (g + 1) * per; n++) w.data[n * k + i] = 0;
    }
  }
  const grid = new Grid(dims, spec, reductionAxis);
  const actOrder = options.actOrder ?? false;
  const blocked = grid.spec.granularity.kind === 'block';
  if (!blocked || actOrder) grid.fitAll(w);
  const codes = new Int16Array(w.rows * k);
  for (const [g, p] of groups.entries()) {
    gptqColumns(w, g * per, (g + 1) * per, p.u, p.order, grid, codes, blocked && !actOrder, options.blockColumns ?? DEFAULT_BLOCK);
  }
  const most = groups.reduce((a, b) => (b.percdamp > a.percdamp ? b : a));
  return { q: grid.toQuantized(codes, w.rows, k), percdamp: most.percdamp, damping: most.damping, deadInputs };
}

/** Damps H by percdamp x mean diagonal, doubling percdamp until the Cholesky factors exist. */
export function dampedInverseFactor(h: Float64Array, k: number, options: GptqOptions = {}): { u: Float64Array; percdamp: number; damping: number } {
  let mean = 0;
  for (let i = 0; i < k; i++) mean += h[i * k + i];
  mean /= k;
  let percdamp = options.percdamp ?? DEFAULT_PERCDAMP;
  if (!(percdamp > 0)) throw new RangeError(`GPTQ: percdamp must be > 0, got ${percdamp}`);
  const steps = options.maxDampingSteps ?? DEFAULT_DAMPING_STEPS;
  for (let step = 0; step <= steps; step++, percdamp *= 2) {
    const damping = percdamp * mean;
    const u = inverseCholeskyUpper(h, k, damping);
    if (u) return { u, percdamp, damping };
  }
  throw new RangeError(`GPTQ: the Hessian is not positive definite even damped by ${percdamp / 2} of its mean diagonal`);
}

/**
 * The column loop over rows [from, to) of W (rows x K, original column order) visiting columns in `order`, with U
 * the upper factor of the permuted H⁻¹ of the input those rows read. Quantizes in place of `codes`; W is consumed.
 */
function gptqColumns(w: RowMajor, from: number, to: number, u: Float64Array, order: Int32Array, grid: Grid, codes: Int16Array, fitBlocks: boolean, blockColumns: number): void {
  const { cols: k } = w;
  const rows = to - from;
  // Work on the permuted copy so lazy updates touch contiguous columns.
  const wp = new Float64Array(rows * k);
  for (let n = 0; n < rows; n++) for (let i = 0; i < k; i++) wp[n * k + i] = w.data[(from + n) * k + order[i]];
  const err = new Float64Array(rows * blockColumns);
  for (let i1 = 0; i1 < k; i1 += blockColumns) {
    const i2 = Math.min(i1 + blockColumns, k);
    const count = i2 - i1;
    for (let i = i1; i < i2; i++) {
      const col = order[i];
      if (fitBlocks && grid.startsBlock(col)) {
        // The block's scales come from its columns as updated so far (without act order, i === col); a column past
        // this lazy batch (a Conv block spans kernel-size x block columns) adds the batch's pending updates.
        const current = (n: number, j: number): number => {
          let v = wp[(n - from) * k + j];
          if (j >= i2) for (let t = 0; t < i - i1; t++) v -= err[(n - from) * blockColumns + t] * u[(i1 + t) * k + j];
          return v;
        };
        grid.fitBlock(col, from, to, k, current);
      }
      const d = u[i * k + i];
      for (let n = 0; n < rows; n++) {
        const x = wp[n * k + i];
        const g = grid.group(from + n, col);
        const c = grid.code(x, g);
        codes[(from + n) * k + col] = c;
        const e = (x - grid.value(c, g)) / d;
        err[n * blockColumns + (i - i1)] = e;
        const row = n * k;
        for (let j = i + 1; j < i2; j++) wp[row + j] -= e * u[i * k + j];
      }
    }
    // Lazy batch: the block's errors reach the columns after it in one pass.
    if (i2 < k) {
      for (let n = 0; n < rows; n++) {
        const row = n * k;
        for (let t = 0; t < count; t++) {
          const e = err[n * blockColumns + t];
          if (e === 0) continue;
          const urow = (i1 + t) * k;
          for (let j = i2; j < k; j++) wp[row + j] -= e * u[urow + j];
        }
      }
    }
  }
}

/**
 * tr((W - Q) H (W - Q)ᵀ) / rows: the layer's output error on the calibration inputs, per output channel. A Conv
 * with several groups takes one H per group, each for its share of the rows.
 */
export function layerError(w: ArrayLike<number>, q: ArrayLike<number>, dims: readonly number[], reductionAxis: number, hessian: Float64Array | readonly Float64Array[]): number {
  const a = weightRows(w, dims, reductionAxis);
  const b = weightRows(q, dims, reductionAxis);
  const k = a.cols;
  const groups = hessian instanceof Float64Array ? [hessian] : hessian;
  const per = a.rows / groups.length;
  const d = new Float64Array(k);
  let total = 0;
  for (let n = 0; n < a.rows; n++) {
    const h = groups[Math.floor(n / per)];
    for (let i = 0; i < k; i++) d[i] = a.data[n * k + i] - b.data[n * k + i];
    for (let i = 0; i < k; i++) {
      if (d[i] === 0) continue;
      let s = 0;
      const row = i * k;
      for (let j = 0; j < k; j++) s += h[row + j] * d[j];
      total += d[i] * s;
    }
  }
  return total / a.rows;
}

// --- the solver -------------------------------------------------------------------------------------------

/** What a Hessian source gives the solver (calibration/hessian.ts's Hessian). */
export interface LayerHessian {
  k: number;
  h: Float64Array;
  /** Rows (tokens) summed into h. */
  rows: number;
}

/** A weight's Hessians: one, or a Conv's one per group (conv-hessian.ts). */
export type WeightHessians = LayerHessian | readonly LayerHessian[];

/** The weight's Hessians as a list of groups, or why they do not fit it (a one-line reason). */
export function hessiansFor(r: Pick<SolveRequest, 'dims' | 'reductionAxis' | 'activation'>, found: WeightHessians | undefined): readonly LayerHessian[] | string {
  const { dims } = r;
  if (dims.length !== 2 && !(dims.length >= 3 && r.reductionAxis === 1)) return `GPTQ takes 2-D MatMul/Gemm weights and Conv weights; this one is ${dims.length}-D`;
  const groups = found === undefined ? [] : Array.isArray(found) ? (found as readonly LayerHessian[]) : [found as LayerHessian];
  if (groups.length === 0) return `no Hessian for its input ${r.activation ?? '(none)'}`;
  const k = reductionWidth(dims, r.reductionAxis);
  const wide = groups.find((h) => h.k !== k);
  if (wide) return `Hessian of ${r.activation} is ${wide.k} wide, the weight reduces over ${k}`;
  const rows = dims.length === 2 ? dims[1 - ((r.reductionAxis + 2) % 2)] : dims[0];
  if (rows % groups.length !== 0) return `${rows} output channels do not split into ${groups.length} Hessian groups`;
  return groups;
}

/** One weight GPTQ solved (or handed to round-to-nearest, with the reason). */
export interface GptqLayerRecord {
  node: string;
  weight: string;
  activation?: string;
  solver: 'gptq' | 'rtn';
  reason?: string;
  k?: number;
  tokens?: number;
  percdamp?: number;
  damping?: number;
  deadInputs?: number;
  /** A Conv's groups (one Hessian each), when more than one. */
  groups?: number;
  /** tr((W - Q) H (W - Q)ᵀ) / rows with the undamped H, for round-to-nearest and for GPTQ's codes. */
  errorRtn?: number;
  errorGptq?: number;
  seconds?: number;
}

export interface GptqSolver extends WeightSolver {
  readonly records: GptqLayerRecord[];
}

/** The factorised Hessian, or a one-line error naming the node and its input when there is none to be had. */
function preparedOrSay(h: LayerHessian, k: number, r: SolveRequest, options: GptqOptions): PreparedHessian {
  const where = `node ${r.node}: GPTQ: the Hessian of its input '${r.activation}'`;
  if (!h.h.every(Number.isFinite)) throw new QuantizationError(`${where} holds NaN or infinity: the calibration set drives that activation out of float range`, 'bad-data');
  try {
    return prepareHessian(h.h, k, options);
  } catch (e) {
    if (e instanceof RangeError) throw new QuantizationError(`${where} cannot be factorised: ${e.message.replace(/^GPTQ: /, '')}`, 'bad-data');
    throw e;
  }
}

/**
 * The 'gptq' weight solver over Hessians found by the activation tensor a node reads and the node (a Conv's are
 * its own, over its patches, per group). A weight without one (an embedding, a node whose input was not captured)
 * or neither 2-D nor a Conv's is rounded to nearest, and its record says why.
 */
export function gptqSolver(hessians: (activation: string, node: string) => WeightHessians | undefined, options: GptqOptions = {}): GptqSolver {
  const records: GptqLayerRecord[] = [];
  // Weights reading the same input (q/k/v, gate/up) share one factorisation.
  const factors = new Map<LayerHessian, PreparedHessian>();
  const rtn = (r: SolveRequest, reason: string): Quantized => {
    records.push({ node: r.node, weight: r.weight, ...(r.activation ? { activation: r.activation } : {}), solver: 'rtn', reason });
    return roundToNearest.solve(r);
  };
  return {
    name: 'gptq',
    records,
    solve(r) {
      const groups = hessiansFor(r, r.activation !== undefined ? hessians(r.activation, r.node) : undefined);
      if (typeof groups === 'string') return rtn(r, groups);
      const k = groups[0].k;
      const t = performance.now();
      const prepared = groups.map((h) => {
        let p = factors.get(h);
        if (!p) factors.set(h, (p = preparedOrSay(h, k, r, options)));
        return p;
      });
      const res = gptqPrepared(r.values, r.dims, r.reductionAxis, r.spec, prepared, options);
      const seconds = (performance.now() - t) / 1000;
      const base = roundToNearest.solve(r);
      records.push({
        node: r.node,
        weight: r.weight,
        activation: r.activation!,
        solver: 'gptq',
        k,
        tokens: groups[0].rows,
        percdamp: res.percdamp,
        damping: res.damping,
        deadInputs: res.deadInputs,
        ...(groups.length > 1 ? { groups: groups.length } : {}),
        errorRtn: layerError(r.values, dequantize(base), r.dims, r.reductionAxis, groups.map((h) => h.h)),
        errorGptq: layerError(r.values, dequantize(res.q), r.dims, r.reductionAxis, groups.map((h) => h.h)),
        seconds,
      });
      return res.q;
    },
  };
}
