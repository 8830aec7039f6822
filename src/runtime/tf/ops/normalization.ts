// Normalisation ops. LayerNormalization and its RMS variant share `normalize` (contrib.ts reuses it for the
// com.microsoft fused forms); BatchNormalization covers inference and training mode.
import * as tf from '@tensorflow/tfjs-core';
import { attrFloat, attrInt, attrInts } from '../../../onnx/attributes.js';
import type { NodeProto } from '../../../onnx/types.js';
import { op, type OpDef, type OpInputs } from '../registry.js';
import { input, normalizeAxes, normalizeAxis } from './util.js';

export interface Normalized {
  y: tf.Tensor;
  /** Per-row mean (zeros for RMS normalisation), kept dims. */
  mean: tf.Tensor;
  /** 1 / sqrt(variance + epsilon) per row (for RMS: of the mean square), kept dims. */
  invStdDev: tf.Tensor;
}

/**
 * Normalises x over the axes from `axis` to the last, then scales (and shifts when `bias` is given). `center`
 * false is RMS normalisation (SimplifiedLayerNormalization: no mean subtraction).
 */
export function normalize(x: tf.Tensor, axis: number, epsilon: number, scale: tf.Tensor, bias: tf.Tensor | undefined, center: boolean): Normalized {
  const axes = [...Array(x.rank - axis).keys()].map((i) => axis + i);
  const mean = center ? tf.mean(x, axes, true) : tf.zeros(x.shape.map((d, i) => (i < axis ? d : 1)));
  const centered = center ? tf.sub(x, mean) : x;
  const invStdDev = tf.rsqrt(tf.add(tf.mean(tf.square(centered), axes, true), epsilon));
  let y = tf.mul(tf.mul(centered, invStdDev), scale);
  if (bias) y = tf.add(y, bias);
  return { y, mean, invStdDev };
}

function layerNormalization(inputs: OpInputs, node: NodeProto): tf.Tensor[] {
  const x = input(inputs, 0, 'X');
  const axis = normalizeAxis(attrInt(node, 'axis', -1), x.rank);
  const n = normalize(x, axis, attrFloat(node, 'epsilon', 1e-5), input(inputs, 1, 'Scale'), inputs[2], true);
  return [n.y, n.mean, n.invStdDev];
}

/** ONNX Runtime's SimplifiedLayerNormalization (RMSNorm), which it registers in the default domain. */
function simplifiedLayerNormalization(inputs: OpInputs, node: NodeProto): tf.Tensor[] {
  const x = input(inputs, 0, 'X');
  const axis = normalizeAxis(attrInt(node, 'axis', -1), x.rank);
  const n = normalize(x, axis, attrFloat(node, 'epsilon', 1e-5), input(inputs, 1, 'scale'), undefined, false);
  return [n.y, n.invStdDev];
}

/** Channel parameters [C] as [1, C, 1, ...] to broadcast over an NC... tensor. */
function perChannel(t: tf.Tensor, rank: number): tf.Tensor {
  return tf.reshape(t, [1, t.size, ...new Array(Math.max(rank - 2, 0)).fill(1)]);
}

/**
 * Inference uses the running statistics; training mode (opset 14+) normalises with the batch's own and also
 * returns the updated running mean and variance.
 */
function batchNormalization(inputs: OpInputs, node: NodeProto): tf.Tensor[] {
  const x = input(inputs, 0, 'X');
  const channel = (i: number, name: string) => perChannel(input(inputs, i, name), x.rank);
  const [scale, bias, runningMean, runningVar] = [channel(1, 'scale'), channel(2, 'B'), channel(3, 'input_mean'), channel(4, 'input_var')];
  const epsilon = attrFloat(node, 'epsilon', 1e-5);
  const training = attrInt(node, 'training_mode', 0) === 1;
  const axes = [0, ...[...Array(Math.max(x.rank - 2, 0)).keys()].map((i) => i + 2)];
  const mean = training ? tf.mean(x, axes, true) : runningMean;
  const variance = training ? tf.mean(tf.square(tf.sub(x, mean)), axes, true) : runningVar;
  const y = tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, epsilon))), scale), bias);
  if (!training) return [y];
  const momentum = attrFloat(node, 'momentum', 0.9);
  const update = (running: tf.Tensor, batch: tf.Tensor) => tf.reshape(tf.add(tf.mul(running, momentum), tf.mul(batch, 1 - momentum)), [-1]);
  return [y, update(runningMean, mean), update(runningVar, variance)];
}

function instanceNormalization(inputs: OpInputs, node: NodeProto): tf.Tensor {
  const x = input(inputs, 0, 'input');
  const axes = [...Array(x.rank - 2).keys()].map((i) => i + 2);
  const mean = tf.mean(x, axes, true);
  const centered = tf.sub(x, mean);
  const invStd = tf.rsqrt(tf.add(tf.mean(tf.square(centered), axes, true), attrFloat(node, 'epsilon', 1e-5)));
  return tf.add(tf.mul(tf.mul(centered, invStd), perChannel(input(inputs, 1, 'scale'), x.rank)), perChannel(input(inputs, 2, 'B'), x.rank));
}

function meanVarianceNormalization(inputs: OpInputs, node: NodeProto): tf.Tensor {
  const x = input(inputs, 0, 'X');
  const axes = normalizeAxes(attrInts(node, 'axes', [0, 2, 3]), x.rank);
  const centered = tf.sub(x, tf.mean(x, axes, true));
  // The ONNX function body adds 1e-9 to the standard deviation.
  return tf.div(centered, tf.add(tf.sqrt(tf.mean(tf.square(centered), axes, true)), 1e-9));
}

export const NORMALIZATION_OPS: OpDef[] = [
  op('LayerNormalization', layerNormalization, { since: 17 }),
  op('SimplifiedLayerNormalization', simplifiedLayerNormalization),
  op('BatchNormalization', batchNormalization, {
    unsupported: (node, opset) => {
      if (opset < 9 && attrInt(node, 'spatial', 1) !== 1) return 'per-activation statistics (spatial=0)';
      return opset < 14 && node.output.filter((o) => o !== '').length > 1 ? 'training outputs of BatchNormalization before opset 14' : undefined;
    },
  }),
  op('InstanceNormalization', instanceNormalization, { since: 6 }),
  op('MeanVarianceNormalization', meanVarianceNormalization, { since: 9 }),
];
