// One layer's AdaQuant problem in row form, in TensorFlow.js: the captured input rows (MatMul/Gemm) or images
// (Conv) and their float targets as tensors, the quantized forward with straight-through rounding over the shared
// parameters (parameters.ts), and the exact error of a finished candidate on every sample. The loss is the output
// MSE over the mean squared target, so Adam's epsilon means the same thing on every layer. The Gram form
// (gram-problem.ts) is the same loss on XᵀX; only the row form can quantize the input (input-scale tuning).
import * as tf from '@tensorflow/tfjs-core';
import { makeNode } from '../../onnx/builder.js';
import { defaultRegistry } from '../../runtime/tf/ops/index.js';
import { dequantize, type Quantized } from '../quantizers.js';
import { LayerParameters, roundSte, type ActivationQuant, type AdaquantProblem, type Candidate, type ProblemShape } from './parameters.js';

export type { ActivationQuant, AdaquantProblem, Candidate, LearningRates, ProblemShape, WorkLayout } from './parameters.js';
export { workLayout } from './parameters.js';

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
  | {
      /** MatMul/Gemm on its input's second moments (gram-problem.ts): every calibration row at K² cost. */
      kind: 'gram';
      /** Mean x xᵀ over the rows, K x K row-major. */
      h: Float64Array | Float32Array;
      /** Mean x over the rows (length K). */
      mean: Float64Array | Float32Array;
      /** Rows the means are over. */
      rows: number;
    }
) & {
  /** The node's float bias, one per output channel (Gemm C of shape [N], Conv B); tuned when given. */
  bias?: Float32Array;
  /** The input's quantization in a static scheme; its scale is tuned when given (row forms only). */
  activation?: ActivationQuant;
};

export type RowInputs = Extract<LayerInputs, { kind: 'matmul' | 'conv' }>;

const CONV_REGISTRY = defaultRegistry();
// Rows per chunk when evaluating a candidate on every captured row, so memory stays bounded.
const EVAL_CHUNK = 4096;

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

/** The row form: the loss on (mini-batches of) captured samples. */
export class LayerProblem implements AdaquantProblem {
  readonly count: number;
  readonly minibatches = true;
  readonly params: LayerParameters;
  /** Mean squared target, the loss's normaliser. */
  readonly meanSquare: number;
  private readonly x: tf.Tensor;
  private readonly target: tf.Tensor;
  private readonly layer: (x: tf.Tensor, w: tf.Tensor, bias: tf.Tensor | undefined) => tf.Tensor;

  constructor(
    private readonly shape: ProblemShape,
    weight: Float32Array,
    rtn: Quantized,
    private readonly inputs: RowInputs,
    codeMin: number,
    codeMax: number,
  ) {
    const { dims } = shape;
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
    this.target = tf.tidy(() => this.layer(this.x, tf.tensor(weight, [...dims]), inputs.bias ? tf.tensor1d(inputs.bias) : undefined));
    const ms = tf.tidy(() => tf.mean(tf.square(this.target)).dataSync()[0]);
    // All-zero targets: any normaliser will do. NaN or infinity is kept for the caller to report.
    this.meanSquare = ms === 0 ? 1 : ms;
    this.params = new LayerParameters({ shape, weight, rtn, codeMin, codeMax, rms: Math.sqrt(this.meanSquare), bias: inputs.bias, activation: inputs.activation });
  }

  /** Fake-quantized input with the scale the parameters give (straight-through rounding). */
  private quantizedInput(x: tf.Tensor): tf.Tensor {
    const a = this.inputs.activation;
    if (!a) return x;
    const scale = this.params.inputScale()!;
    const codes = tf.clipByValue(tf.add(roundSte(tf.div(x, scale)), a.zeroPoint), a.qmin, a.qmax);
    return tf.mul(tf.sub(codes, a.zeroPoint), scale);
  }

  loss(batch?: tf.Tensor1D): tf.Scalar {
    const x = batch ? tf.gather(this.x, batch) : this.x;
    const y = batch ? tf.gather(this.target, batch) : this.target;
    const out = this.layer(this.quantizedInput(x), this.params.quantizedWeight(), this.params.biasNow());
    return tf.div(tf.mean(tf.squaredDifference(out, y)), this.meanSquare) as tf.Scalar;
  }

  /**
   * Mean squared output error of a candidate on every captured sample, with the weight dequantized by
   * quantizers.ts (the values the written model holds), not by the training graph.
   */
  error(c: Candidate): number {
    const w = tf.tensor(dequantize(c.q), [...this.shape.dims]);
    const bias = c.bias ? tf.tensor1d(c.bias) : this.params.bias0;
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
    for (const t of [this.x, this.target]) t.dispose();
    this.params.dispose();
  }
}
