// One MatMul/Gemm layer's AdaQuant problem in Gram form: the loss on the input's second moments instead of its
// rows, so every calibration row counts and a step costs one product of the weight with H (outputs x K²),
// whatever the number of rows. With the float layer on the same inputs as the target, Δ = Q(W') - W (as
// [outputs, K]) and δ = b' - b0, the mean squared output error over the rows is exactly
//   (tr(Δ H Δᵀ) + 2 δᵀ Δ μ + |δ|²) / outputs,   H = mean x xᵀ, μ = mean x,
// normalised like the row form by the mean squared float output (the same expression with W for Δ and b0 for δ).
// The parameters are the row form's (parameters.ts), so full-batch Adam here and mini-batch Adam there differ only
// in the loss. Candidates are scored in float64 from the same H and μ (gptq.ts's layerError plus the bias terms).
// The input cannot be quantized here (its rows are gone): input-scale tuning stays with the row form.
import * as tf from '@tensorflow/tfjs-core';
import { layerError } from '../gptq.js';
import { dequantize, type Quantized } from '../quantizers.js';
import { LayerParameters, type AdaquantProblem, type Candidate, type ProblemShape } from './parameters.js';

export type GramInputs = {
  h: Float64Array | Float32Array;
  mean: Float64Array | Float32Array;
  rows: number;
  bias?: Float32Array;
};

/**
 * Mean over rows and outputs of ((A - B) x + δ)², from H = mean x xᵀ and μ = mean x, in float64; A and B are
 * weights in `dims` reducing over `reductionAxis`, δ one value per output (none: 0).
 */
export function gramError(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  dims: readonly number[],
  reductionAxis: number,
  h: Float64Array,
  mean: ArrayLike<number>,
  delta?: ArrayLike<number>,
): number {
  const quadratic = layerError(a, b, dims, reductionAxis, h);
  if (!delta) return quadratic;
  const outputs = dims[1 - reductionAxis];
  const k = dims[reductionAxis];
  // Element (output n, input i) of a weight in either layout.
  const at = reductionAxis === 0 ? (n: number, i: number) => i * outputs + n : (n: number, i: number) => n * k + i;
  let bias = 0;
  for (let n = 0; n < outputs; n++) {
    let dm = 0;
    for (let i = 0; i < k; i++) dm += (a[at(n, i)] - b[at(n, i)]) * mean[i];
    bias += 2 * delta[n] * dm + delta[n] * delta[n];
  }
  return quadratic + bias / outputs;
}

export class GramProblem implements AdaquantProblem {
  readonly count: number;
  readonly minibatches = false;
  readonly params: LayerParameters;
  readonly meanSquare: number;
  private readonly h64: Float64Array;
  private readonly mean: Float64Array;
  private readonly w: tf.Tensor2D;
  private readonly h: tf.Tensor2D;
  /** μ shaped to multiply Δ in its layout: [1, K] for [K, N], [K, 1] for [N, K]. */
  private readonly mu: tf.Tensor2D;
  /** sum(Δ ⊙ HΔ) with its gradient 2 HΔ from the forward's product: one K² product per step, not two. */
  private readonly quadratic: (d: tf.Tensor) => tf.Scalar;

  constructor(
    private readonly shape: ProblemShape,
    private readonly weight: Float32Array,
    rtn: Quantized,
    inputs: GramInputs,
    codeMin: number,
    codeMax: number,
  ) {
    const { dims, reductionAxis } = shape;
    const k = dims[reductionAxis];
    this.count = inputs.rows;
    this.h64 = inputs.h instanceof Float64Array ? inputs.h : Float64Array.from(inputs.h);
    this.mean = Float64Array.from(inputs.mean);
    const ms = gramError(weight, new Float32Array(weight.length), dims, reductionAxis, this.h64, this.mean, inputs.bias);
    // All-zero outputs: any normaliser will do. NaN or infinity is kept for the caller to report.
    this.meanSquare = ms === 0 ? 1 : ms;
    this.w = tf.tensor2d(weight, [dims[0], dims[1]]);
    this.h = tf.tensor2d(Float32Array.from(this.h64), [k, k]);
    this.mu = reductionAxis === 0 ? tf.tensor2d(Float32Array.from(this.mean), [1, k]) : tf.tensor2d(Float32Array.from(this.mean), [k, 1]);
    const product = reductionAxis === 0 ? (d: tf.Tensor) => tf.matMul(this.h, d as tf.Tensor2D) : (d: tf.Tensor) => tf.matMul(d as tf.Tensor2D, this.h);
    this.quadratic = tf.customGrad(((d: tf.Tensor, save: (ts: tf.Tensor[]) => void) => {
      const hd = product(d);
      save([hd]);
      return { value: tf.sum(tf.mul(d, hd)), gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.mul(saved[0], tf.mul(dy, 2)) };
    }) as unknown as Parameters<typeof tf.customGrad>[0]) as (d: tf.Tensor) => tf.Scalar;
    this.params = new LayerParameters({ shape, weight, rtn, codeMin, codeMax, rms: Math.sqrt(this.meanSquare), bias: inputs.bias });
  }

  /** Over every row: `batch` is not taken (minibatches is false). */
  loss(): tf.Scalar {
    const { reductionAxis, outputs } = this.shape;
    const d = tf.sub(this.params.quantizedWeight(), this.w);
    let total: tf.Tensor = this.quadratic(d);
    const delta = this.params.biasChange();
    if (delta) {
      const dMu = tf.reshape(reductionAxis === 0 ? tf.matMul(this.mu, d as tf.Tensor2D) : tf.matMul(d as tf.Tensor2D, this.mu), [outputs]);
      total = tf.add(total, tf.add(tf.mul(tf.sum(tf.mul(delta, dMu)), 2), tf.sum(tf.square(delta))));
    }
    return tf.div(total, outputs * this.meanSquare) as tf.Scalar;
  }

  /** Exact mean squared output error over every row, in float64, with the weight the written model holds. */
  error(c: Candidate): number {
    const { dims, reductionAxis } = this.shape;
    const b0 = c.bias ? this.params.bias0!.dataSync() : undefined;
    const delta = c.bias && b0 ? Float64Array.from(c.bias, (v, i) => v - b0[i]) : undefined;
    return gramError(dequantize(c.q), this.weight, dims, reductionAxis, this.h64, this.mean, delta);
  }

  dispose(): void {
    for (const t of [this.w, this.h, this.mu]) t.dispose();
    this.params.dispose();
  }
}
