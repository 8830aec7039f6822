// What convolutions and pools share: ONNX lays tensors out channels-first (N, C, D1, D2...) while tfjs's
// kernels want channels-last, ONNX's padding rules (explicit pads or auto_pad), and 1-D inputs that tfjs has no
// kernels for (they run as 2-D with a unit height).
import * as tf from '@tensorflow/tfjs-core';
import { attrInts, attrString } from '../../../onnx/attributes.js';
import type { NodeProto } from '../../../onnx/types.js';
import { OpError } from './util.js';

/** N, C, D1... -> N, D1..., C. */
export function channelsLast(x: tf.Tensor): tf.Tensor {
  return tf.transpose(x, [0, ...[...Array(x.rank - 2).keys()].map((i) => i + 2), 1]);
}

/** N, D1..., C -> N, C, D1... */
export function channelsFirst(x: tf.Tensor): tf.Tensor {
  return tf.transpose(x, [0, x.rank - 1, ...[...Array(x.rank - 2).keys()].map((i) => i + 1)]);
}

export interface Window {
  kernel: number[];
  strides: number[];
  dilations: number[];
  /** Padding before and after each spatial axis. */
  before: number[];
  after: number[];
}

/** Kernel extent once dilated: (k - 1) * d + 1. */
export function dilatedExtent(kernel: readonly number[], dilations: readonly number[]): number[] {
  return kernel.map((k, i) => (k - 1) * dilations[i] + 1);
}

/**
 * The sliding window of a Conv or pool node over `inSizes`: kernel from the weights (or kernel_shape), strides
 * and dilations defaulting to 1, and padding from `pads` or resolved from auto_pad SAME_UPPER/SAME_LOWER/VALID.
 */
export function slidingWindow(node: NodeProto, inSizes: readonly number[], kernel: readonly number[]): Window {
  const n = inSizes.length;
  const strides = attrInts(node, 'strides', new Array(n).fill(1));
  const dilations = attrInts(node, 'dilations', new Array(n).fill(1));
  const pads = attrInts(node, 'pads', new Array(2 * n).fill(0));
  const autoPad = attrString(node, 'auto_pad', 'NOTSET');
  const extent = dilatedExtent(kernel, dilations);
  let before = pads.slice(0, n);
  let after = pads.slice(n);
  if (autoPad === 'VALID') {
    before = new Array(n).fill(0);
    after = new Array(n).fill(0);
  } else if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    const total = inSizes.map((size, i) => Math.max(0, (Math.ceil(size / strides[i]) - 1) * strides[i] + extent[i] - size));
    const small = total.map((t) => Math.floor(t / 2));
    before = autoPad === 'SAME_UPPER' ? small : total.map((t, i) => t - small[i]);
    after = total.map((t, i) => t - before[i]);
  } else if (autoPad !== 'NOTSET') {
    throw new OpError(`unknown auto_pad '${autoPad}'`);
  }
  return { kernel: [...kernel], strides, dilations, before, after };
}

/** Inserts the zeros of a dilated kernel along the given axes, so that the tfjs kernels run undilated. */
export function dilateKernel(w: tf.Tensor, axes: readonly number[], dilations: readonly number[]): tf.Tensor {
  let out = w;
  axes.forEach((axis, i) => {
    const d = dilations[i];
    if (d === 1) return;
    const k = out.shape[axis];
    // [.., k, ..] -> [.., k, 1, ..] padded to [.., k, d, ..] -> [.., k*d, ..] -> keep (k-1)*d+1.
    const expanded = tf.expandDims(out, axis + 1);
    const padding = expanded.shape.map((_, a) => (a === axis + 1 ? [0, d - 1] : [0, 0]) as [number, number]);
    const spread = tf.reshape(tf.pad(expanded, padding), out.shape.map((s, a) => (a === axis ? k * d : s)));
    const begin = out.shape.map(() => 0);
    out = tf.slice(spread, begin, out.shape.map((s, a) => (a === axis ? (k - 1) * d + 1 : s)));
  });
  return out;
}

/** Spatial ranks tfjs has kernels for; 1-D runs as 2-D. */
export function checkSpatialRank(rank: number): void {
  if (rank < 1 || rank > 3) throw new OpError(`${rank}-D spatial inputs are not supported (1-D to 3-D are)`);
}

/** A 1-D channels-last tensor [N, W, C] as [N, 1, W, C] and a window with a unit height. */
export function liftTo2d(x: tf.Tensor, w: Window): [tf.Tensor, Window] {
  const unit = (v: number[], one: number) => [one, ...v];
  return [
    tf.expandDims(x, 1),
    { kernel: unit(w.kernel, 1), strides: unit(w.strides, 1), dilations: unit(w.dilations, 1), before: unit(w.before, 0), after: unit(w.after, 0) },
  ];
}

/** Zero (or `value`) padding of the spatial axes of a channels-last tensor. */
export function padSpatial(x: tf.Tensor, before: readonly number[], after: readonly number[], value = 0): tf.Tensor {
  if (before.every((b) => b === 0) && after.every((a) => a === 0)) return x;
  return tf.pad(x, [[0, 0], ...before.map((b, i) => [b, after[i]] as [number, number]), [0, 0]], value);
}
