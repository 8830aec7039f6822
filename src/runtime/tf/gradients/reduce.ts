// Gradients of reductions, softmax and cumulative sums: the output gradient is broadcast back over the reduced
// axes and weighted by how each input element contributed.
import * as tf from '@tensorflow/tfjs-core';
import { broadcastTo, inversePermutation } from '../ops/util.js';
import { gradient, keepReducedDims, reducedAxes } from './common.js';

/** dy broadcast back to x's shape over the reduced axes. */
function spread(dy: tf.Tensor, x: tf.Tensor, axes: number[]): tf.Tensor {
  return broadcastTo(keepReducedDims(dy, x.shape, axes), [...x.shape]);
}

/** Max and Min send the gradient to every element equal to the extreme (as tfjs does). */
function extreme(kernel: string, axisAttr: string): tf.GradConfig {
  return gradient(kernel, { inputs: ['x'], output: true }, (dy, [x, y], attrs) => {
    const axes = reducedAxes(attrs[axisAttr], x.rank);
    return { x: () => tf.mul(spread(dy, x, axes), tf.cast(tf.equal(x, keepReducedDims(y, x.shape, axes)), dy.dtype)) };
  });
}

/**
 * Prod: each element's gradient is the product of the others, computed without division (zeros allowed) as
 * exclusive cumulative products from both ends along the reduced axes, flattened into one.
 */
function prodGradient(x: tf.Tensor, dy: tf.Tensor, axes: number[]): tf.Tensor {
  const kept = [...Array(x.rank).keys()].filter((a) => !axes.includes(a));
  const perm = [...kept, ...axes];
  const moved = tf.transpose(x, perm);
  const outer = kept.map((a) => x.shape[a]);
  const flat = tf.reshape(moved, [...outer, -1]);
  const last = flat.rank - 1;
  const others = tf.mul(tf.cumprod(flat, last, true, false), tf.cumprod(flat, last, true, true));
  const grad = tf.mul(others, tf.reshape(dy, [...outer, 1]));
  return tf.transpose(tf.reshape(grad, moved.shape), inversePermutation(perm));
}

export const REDUCE_GRADIENTS: tf.GradConfig[] = [
  gradient('Sum', { inputs: ['x'] }, (dy, [x], attrs) => ({ x: () => spread(dy, x, reducedAxes(attrs.axis, x.rank)) })),
  gradient('Mean', { inputs: ['x'] }, (dy, [x], attrs) => {
    const axes = reducedAxes(attrs.axis, x.rank);
    const count = axes.reduce((n, a) => n * x.shape[a], 1);
    return { x: () => tf.div(spread(dy, x, axes), count) };
  }),
  extreme('Max', 'reductionIndices'),
  extreme('Min', 'axis'),
  gradient('Prod', { inputs: ['x'] }, (dy, [x], attrs) => ({ x: () => prodGradient(x, dy, reducedAxes(attrs.axis, x.rank)) })),
  gradient('Softmax', { output: true }, (dy, [y], attrs) => {
    const dim = attrs.dim as number;
    const dyTimesY = tf.mul(dy, y);
    return { logits: () => tf.sub(dyTimesY, tf.mul(tf.sum(dyTimesY, [dim], true), y)) };
  }),
  gradient('Cumsum', {}, (dy, _saved, attrs) => ({
    x: () => tf.cumsum(dy, attrs.axis as number, attrs.exclusive as boolean, !(attrs.reverse as boolean)),
  })),
];
