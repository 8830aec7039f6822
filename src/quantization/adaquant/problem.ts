// One layer's AdaQuant problem in TensorFlow.js: the captured inputs and float targets as tensors, the trainable
// parameters, the quantized forward with straight-through rounding, and the exact error of a finished candidate.
//
// Parameterisation (scale-free, so one set of learning rates fits layers of any magnitude):
//   v   per weight element, the weight in units of its group's starting scale s0 (W' = v * s0);
//   l   per group, the log of the scale's change (s = s0 * exp(l): the sign of a MatMulNBits scale is kept);
//   b   per output channel, the bias change in units of the targets' RMS (bias = b0 + rms * b);
//   lx  the log change of the input activation scale (static schemes).
// W'/s = v * exp(-l), so the codes are clamp(round(v * exp(-l)) + zp, qmin, qmax), dequantized as
// (code - zp) * s0 * exp(l). Zero points stay RTN's (integers in the spec's convention); the loss is the output
// MSE over the mean squared target, so Adam's epsilon means the same thing on every layer.
import * as tf from '@tensorflow/tfjs-core';
import { makeNode } from '../../onnx/builder.js';
import { defaultRegistry } from '../../runtime/tf/ops/index.js';
import { dequantize, type Granularity, type Quantized } from '../quantizers.js';

/** How the layer's input is quantized in a static scheme (per tensor), as the QDQ writer would store it. */
export interface ActivationQuant {
  scale: number;
  zeroPoint: number;
  qmin: number;
  qmax: number;
}

/** ONNX Conv attributes (defaults as in the operator: unit strides and dilations, no padding, one group). */
export interface ConvAttributes {
  strides?: number[];
  /** [begin..., end...] as ONNX lists them. */
  pads?: number[];
  dilations?: number[];
  group?: number;
  autoPad?: 'NOTSET' | 'SAME_UPPER' | 'SAME_LOWER' | 'VALID';
}

/** What the layer reads on the calibration set. */
export type LayerInputs = (
  | {
      kind: 'matmul';
      /** The activation as a row matrix [rows, K] (every token of every sample). */
      x: Float32Array;
      rows: number;
    }
  | {
      kind: 'conv';
      /** The NCHW (or NCW, NCDHW) input batch. */
      x: Float32Array;
      dims: readonly number[];
      conv: ConvAttributes;
    }
) & {
  /** The node's float bias, one per output channel (Gemm C of shape [N], Conv B); tuned when given. */
  bias?: Float32Array;
  /** The input's quantization in a static scheme; its scale is tuned when given. */
  activation?: ActivationQuant;
};

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

const CONV_REGISTRY = defaultRegistry();
// Rows per chunk when evaluating a candidate on every captured row, so memory stays bounded.
const EVAL_CHUNK = 4096;

/** round() forward, identity backward: the straight-through estimator. */
const roundSte = tf.customGrad(((x: tf.Tensor) => ({ value: tf.round(x), gradFunc: (dy: tf.Tensor) => dy })) as unknown as Parameters<typeof tf.customGrad>[0]) as (
  x: tf.Tensor,
) => tf.Tensor;

function convNode(a: ConvAttributes, spatial: number) {
  const attrs: Record<string, number[] | number | string> = {
    strides: a.strides ?? new Array(spatial).fill(1),
    dilations: a.dilations ?? new Array(spatial).fill(1),
    group: a.group ?? 1,
  };
  if (a.autoPad && a.autoPad !== 'NOTSET') attrs.auto_pad = a.autoPad;
  else attrs.pads = a.pads ?? new Array(2 * spatial).fill(0);
  return makeNode('Conv', ['X', 'W', 'B'], ['Y'], attrs);
}

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

export class LayerProblem {
  readonly count: number;
  private readonly x: tf.Tensor;
  private readonly target: tf.Tensor;
  private readonly layer: (x: tf.Tensor, w: tf.Tensor, bias: tf.Tensor | undefined) => tf.Tensor;
  private readonly layout: WorkLayout;
  private readonly s0: tf.Tensor;
  private readonly zp: tf.Tensor;
  private readonly bias0?: tf.Tensor1D;
  private readonly rms: number;
  /** Mean squared target, the loss's normaliser. */
  readonly meanSquare: number;
  readonly v: tf.Variable;
  readonly l: tf.Variable;
  readonly b?: tf.Variable;
  readonly lx?: tf.Variable;

  constructor(
    private readonly shape: ProblemShape,
    weight: Float32Array,
    private readonly rtn: Quantized,
    private readonly inputs: LayerInputs,
    private readonly codeMin: number,
    private readonly codeMax: number,
  ) {
    const { dims } = shape;
    const layout = (this.layout = workLayout(dims, rtn.spec.granularity));
    this.s0 = tf.tensor(rtn.scales, layout.param);
    this.zp = tf.tensor(Float32Array.from(rtn.zeroPoints), layout.param);
    // A group whose scale is 0 (MLAS's symmetric scale of an all-zero group) holds only zeros: v = 0 there.
    this.v = tf.variable(tf.tidy(() => tf.divNoNan(this.toWork(tf.tensor(weight, [...dims])), this.s0)), true);
    this.l = tf.variable(tf.zeros(layout.param), true);
    if (inputs.kind === 'matmul') {
      const k = dims[shape.reductionAxis];
      this.count = inputs.rows;
      this.x = tf.tensor2d(inputs.x, [inputs.rows, k]);
      const transposeB = shape.reductionAxis === 1;
      this.layer = (x, w, bias) => {
        const y = tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D, false, transposeB);
        return bias ? tf.add(y, bias) : y;
      };
    } else {
      this.count = inputs.dims[0];
      this.x = tf.tensor(inputs.x, [...inputs.dims]);
      const node = convNode(inputs.conv, inputs.dims.length - 2);
      const conv = CONV_REGISTRY.resolve('', 'Conv', 11)!;
      this.layer = (x, w, bias) => conv.run([x, w, bias], node, { opset: 11 }) as tf.Tensor;
    }
    if (inputs.bias) this.bias0 = tf.tensor1d(inputs.bias);
    this.target = tf.tidy(() => this.layer(this.x, tf.tensor(weight, [...dims]), this.bias0));
    const ms = tf.tidy(() => tf.mean(tf.square(this.target)).dataSync()[0]);
    // All-zero targets: any normaliser will do. NaN or infinity is kept for the caller to report.
    this.meanSquare = ms === 0 ? 1 : ms;
    this.rms = Math.sqrt(this.meanSquare);
    if (inputs.bias) this.b = tf.variable(tf.zeros([shape.outputs]), true);
    if (inputs.activation) this.lx = tf.variable(tf.scalar(0), true);
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
  private quantizedWeight(): tf.Tensor {
    return this.fromWork(tf.mul(tf.sub(this.codes(true), this.zp), tf.mul(this.s0, tf.exp(this.l))));
  }

  private biasNow(): tf.Tensor | undefined {
    if (!this.bias0) return undefined;
    return this.b ? tf.add(this.bias0, tf.mul(this.b, this.rms)) : this.bias0;
  }

  /** Fake-quantized input with the scale the parameters give (straight-through rounding). */
  private quantizedInput(x: tf.Tensor): tf.Tensor {
    const a = this.inputs.activation;
    if (!a) return x;
    const scale = tf.mul(a.scale, tf.exp(this.lx!));
    const codes = tf.clipByValue(tf.add(roundSte(tf.div(x, scale)), a.zeroPoint), a.qmin, a.qmax);
    return tf.mul(tf.sub(codes, a.zeroPoint), scale);
  }

  /** Normalised loss on the samples (rows or images) `batch` (all when undefined); a scalar tensor. */
  loss(batch?: tf.Tensor1D): tf.Scalar {
    const x = batch ? tf.gather(this.x, batch) : this.x;
    const y = batch ? tf.gather(this.target, batch) : this.target;
    const out = this.layer(this.quantizedInput(x), this.quantizedWeight(), this.biasNow());
    return tf.div(tf.mean(tf.squaredDifference(out, y)), this.meanSquare) as tf.Scalar;
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
    const [codes, scales] = tf.tidy(() => {
      return [this.fromWork(this.codes(false)).dataSync(), tf.mul(this.s0, tf.exp(this.l)).dataSync()];
    });
    const q: Quantized = { ...this.rtn, codes: Int16Array.from(codes), scales: Float32Array.from(scales) };
    const out: Candidate = { q };
    if (this.b) out.bias = tf.tidy(() => this.biasNow()!.dataSync() as Float32Array).slice();
    if (this.lx) out.activationScale = tf.tidy(() => tf.mul(this.inputs.activation!.scale, tf.exp(this.lx!)).dataSync()[0]);
    return out;
  }

  /**
   * Mean squared output error of a candidate on every captured sample, with the weight dequantized by
   * quantizers.ts (the values the written model holds), not by the training graph.
   */
  error(c: Candidate): number {
    const w = tf.tensor(dequantize(c.q), [...this.shape.dims]);
    const bias = c.bias ? tf.tensor1d(c.bias) : this.bias0;
    const a = this.inputs.activation;
    let sum = 0;
    let elements = 0;
    for (let start = 0; start < this.count; start += EVAL_CHUNK) {
      const size = Math.min(EVAL_CHUNK, this.count - start);
      sum += tf.tidy(() => {
        const begin = this.x.shape.map((_, i) => (i === 0 ? start : 0));
        let x = tf.slice(this.x, begin, this.x.shape.map((d, i) => (i === 0 ? size : d)));
        if (a) {
          const s = c.activationScale ?? a.scale;
          x = tf.mul(tf.sub(tf.clipByValue(tf.add(tf.round(tf.div(x, s)), a.zeroPoint), a.qmin, a.qmax), a.zeroPoint), s);
        }
        const y = tf.slice(this.target, this.target.shape.map((_, i) => (i === 0 ? start : 0)), this.target.shape.map((d, i) => (i === 0 ? size : d)));
        const d = tf.squaredDifference(this.layer(x, w, bias), y);
        elements += d.size;
        return tf.sum(d).dataSync()[0];
      });
    }
    w.dispose();
    if (c.bias) bias?.dispose();
    return sum / elements;
  }

  dispose(): void {
    for (const t of [this.x, this.target, this.s0, this.zp, this.bias0, this.v, this.l, this.b, this.lx]) t?.dispose();
  }
}
