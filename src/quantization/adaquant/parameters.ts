// AdaQuant's trainable parameters for one layer, shared by both forms of the loss (row form: problem.ts, on
// captured input rows; Gram form: gram-problem.ts, on XᵀX): the quantized weight with straight-through rounding,
// the bias, the input scale, and the finished candidate they stand for.
//
// Parameterisation (scale-free, so one set of learning rates fits layers of any magnitude):
//   v   per weight element, the weight in units of its group's starting scale s0 (W' = v * s0);
//   l   per group, the log of the scale's change (s = s0 * exp(l): the sign of a MatMulNBits scale is kept);
//   b   per output channel, the bias change in units of the targets' RMS (bias = b0 + rms * b);
//   lx  the log change of the input activation scale (static schemes; row form only).
// W'/s = v * exp(-l), so the codes are clamp(round(v * exp(-l)) + zp, qmin, qmax), dequantized as
// (code - zp) * s0 * exp(l). Zero points stay RTN's (integers in the spec's convention).
import * as tf from '@tensorflow/tfjs-core';
import type { Granularity, Quantized } from '../quantizers.js';

/** How the layer's input is quantized in a static scheme (per tensor), as the QDQ writer would store it. */
export interface ActivationQuant {
  scale: number;
  zeroPoint: number;
  qmin: number;
  qmax: number;
}

/** Learning rates per parameter group (0 freezes the group), in the units of the parameterisation above. */
export interface LearningRates {
  weights: number;
  bias: number;
  scales: number;
  activation: number;
}

/** A finished candidate: what would be written. */
export interface Candidate {
  q: Quantized;
  bias?: Float32Array;
  activationScale?: number;
}

export interface ProblemShape {
  dims: readonly number[];
  reductionAxis: number;
  /** Output channels (bias length). */
  outputs: number;
}

/** round() forward, identity backward: the straight-through estimator. */
export const roundSte = tf.customGrad(((x: tf.Tensor) => ({ value: tf.round(x), gradFunc: (dy: tf.Tensor) => dy })) as unknown as Parameters<typeof tf.customGrad>[0]) as (
  x: tf.Tensor,
) => tf.Tensor;

/**
 * Where the weight's groups lie, so per-group parameters broadcast over the weight instead of being gathered per
 * element (a gather's gradient is a segment sum, several times slower): the weight is worked on in `work` shape,
 * its dims with a blocked axis split into [blocks, blockSize] (padded with zeros to whole blocks), and the
 * per-group tensors have shape `param`, 1 wherever the work shape varies within a group. `param` lists the groups
 * in Quantized.scales order (paramDims with a 1 inserted after a blocked axis).
 */
export interface WorkLayout {
  work: number[];
  param: number[];
  /** The blocked axis and the zeros appended to it, when the block size does not divide it. */
  pad?: { axis: number; amount: number };
}

export function workLayout(dims: readonly number[], g: Granularity): WorkLayout {
  if (g.kind === 'tensor') return { work: [...dims], param: dims.map(() => 1) };
  if (g.kind === 'channel') return { work: [...dims], param: dims.map((d, i) => (i === g.axis ? d : 1)) };
  const a = g.axis;
  const blocks = Math.ceil(dims[a] / g.blockSize);
  const amount = blocks * g.blockSize - dims[a];
  return {
    work: [...dims.slice(0, a), blocks, g.blockSize, ...dims.slice(a + 1)],
    param: [...dims.slice(0, a), blocks, 1, ...dims.slice(a + 1)],
    ...(amount > 0 ? { pad: { axis: a, amount } } : {}),
  };
}

export interface ParameterInit {
  shape: ProblemShape;
  weight: Float32Array;
  rtn: Quantized;
  codeMin: number;
  codeMax: number;
  /** RMS of the layer's float output: the bias's unit. */
  rms: number;
  /** The float bias; the bias is tuned when given. */
  bias?: Float32Array;
  /** The input's static quantization; its scale is tuned when given. */
  activation?: ActivationQuant;
}

export class LayerParameters {
  readonly v: tf.Variable;
  readonly l: tf.Variable;
  readonly b?: tf.Variable;
  readonly lx?: tf.Variable;
  readonly bias0?: tf.Tensor1D;
  private readonly layout: WorkLayout;
  private readonly s0: tf.Tensor;
  private readonly zp: tf.Tensor;
  private readonly shape: ProblemShape;
  private readonly rtn: Quantized;
  private readonly codeMin: number;
  private readonly codeMax: number;
  private readonly rms: number;
  private readonly activation?: ActivationQuant;

  constructor(init: ParameterInit) {
    const { shape, rtn } = init;
    this.shape = shape;
    this.rtn = rtn;
    this.codeMin = init.codeMin;
    this.codeMax = init.codeMax;
    this.rms = init.rms;
    this.activation = init.activation;
    const layout = (this.layout = workLayout(shape.dims, rtn.spec.granularity));
    this.s0 = tf.tensor(rtn.scales, layout.param);
    this.zp = tf.tensor(Float32Array.from(rtn.zeroPoints), layout.param);
    // A group whose scale is 0 (MLAS's symmetric scale of an all-zero group) holds only zeros: v = 0 there.
    this.v = tf.variable(tf.tidy(() => tf.divNoNan(this.toWork(tf.tensor(init.weight, [...shape.dims])), this.s0)), true);
    this.l = tf.variable(tf.zeros(layout.param), true);
    if (init.bias) {
      this.bias0 = tf.tensor1d(init.bias);
      this.b = tf.variable(tf.zeros([shape.outputs]), true);
    }
    if (init.activation) this.lx = tf.variable(tf.scalar(0), true);
  }

  /** The weight's dims -> work shape (blocked axis split, padded to whole blocks). */
  private toWork(t: tf.Tensor): tf.Tensor {
    const { pad, work } = this.layout;
    const padded = pad ? tf.pad(t, t.shape.map((_, i) => (i === pad.axis ? [0, pad.amount] : [0, 0]) as [number, number])) : t;
    return tf.reshape(padded, work);
  }

  /** Work shape -> the weight's dims. */
  private fromWork(t: tf.Tensor): tf.Tensor {
    const { pad } = this.layout;
    const dims = this.shape.dims as number[];
    if (!pad) return tf.reshape(t, dims);
    const padded = dims.map((d, i) => (i === pad.axis ? d + pad.amount : d));
    return tf.slice(tf.reshape(t, padded), dims.map(() => 0), dims);
  }

  /** Codes in work shape: clamp(round(v / exp(l)) + zp), rounding straight-through when `ste`. */
  private codes(ste: boolean): tf.Tensor {
    const u = tf.mul(this.v, tf.exp(tf.neg(this.l)));
    return tf.clipByValue(tf.add(ste ? roundSte(u) : tf.round(u), this.zp), this.codeMin, this.codeMax);
  }

  /** The dequantized weight the parameters give, straight-through in the rounding. */
  quantizedWeight(): tf.Tensor {
    return this.fromWork(tf.mul(tf.sub(this.codes(true), this.zp), tf.mul(this.s0, tf.exp(this.l))));
  }

  /** The bias change from the float bias (b' - b0); undefined when the bias is not tuned. */
  biasChange(): tf.Tensor1D | undefined {
    return this.b ? (tf.mul(this.b, this.rms) as tf.Tensor1D) : undefined;
  }

  /** The bias the parameters give (the float one when it is not tuned); undefined without a bias. */
  biasNow(): tf.Tensor | undefined {
    if (!this.bias0) return undefined;
    const change = this.biasChange();
    return change ? tf.add(this.bias0, change) : this.bias0;
  }

  /** The input scale the parameters give (static schemes). */
  inputScale(): tf.Scalar | undefined {
    return this.lx ? (tf.mul(this.activation!.scale, tf.exp(this.lx)) as tf.Scalar) : undefined;
  }

  /** The trainable variables with their learning rate, those with rate 0 left out. */
  trainable(rates: LearningRates): { variable: tf.Variable; rate: number }[] {
    const all: { variable: tf.Variable | undefined; rate: number }[] = [
      { variable: this.v, rate: rates.weights },
      { variable: this.l, rate: rates.scales },
      { variable: this.b, rate: rates.bias },
      { variable: this.lx, rate: rates.activation },
    ];
    return all.filter((p): p is { variable: tf.Variable; rate: number } => p.variable !== undefined && p.rate > 0);
  }

  /** The codes, scales, bias and input scale the parameters stand for now. */
  candidate(): Candidate {
    const [codes, scales] = tf.tidy(() => [this.fromWork(this.codes(false)).dataSync(), tf.mul(this.s0, tf.exp(this.l)).dataSync()]);
    const q: Quantized = { ...this.rtn, codes: Int16Array.from(codes), scales: Float32Array.from(scales) };
    const out: Candidate = { q };
    if (this.b) out.bias = tf.tidy(() => this.biasNow()!.dataSync() as Float32Array).slice();
    if (this.lx) out.activationScale = tf.tidy(() => this.inputScale()!.dataSync()[0]);
    return out;
  }

  dispose(): void {
    for (const t of [this.s0, this.zp, this.bias0, this.v, this.l, this.b, this.lx]) t?.dispose();
  }
}

/** What adaquantLayer drives: a loss over the parameters, and the exact error of a finished candidate. */
export interface AdaquantProblem {
  readonly params: LayerParameters;
  /** Samples the loss is over (rows or images); the rows summed into XᵀX in the Gram form. */
  readonly count: number;
  /** Whether loss() takes mini-batches of samples; the Gram form is always over every row. */
  readonly minibatches: boolean;
  /** Mean squared float output, the loss's normaliser (1 when it is 0; NaN or infinity kept for the caller). */
  readonly meanSquare: number;
  /** Output MSE over the mean squared target on the samples `batch` (all when undefined); a scalar tensor. */
  loss(batch?: tf.Tensor1D): tf.Scalar;
  /** Mean squared output error of a candidate on every sample, with the weight as the written model holds it. */
  error(c: Candidate): number;
  dispose(): void;
}
