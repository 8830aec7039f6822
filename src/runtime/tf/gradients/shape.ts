// Gradients of kernels that only move data: each undoes the movement on the output gradient (reshape back,
// transpose back, pad what was sliced, slice what was padded, sum what was tiled or gathered twice).
import * as tf from '@tensorflow/tfjs-core';
import { inversePermutation } from '../ops/util.js';
import { gradient } from './common.js';

/** Gather's gradient: scatter-add the output gradient into the gathered positions (UnsortedSegmentSum). */
function gatherGradient(x: tf.Tensor, indices: tf.Tensor, dy: tf.Tensor, axis: number): tf.Tensor {
  const outer = x.shape.slice(0, axis);
  const inner = x.shape.slice(axis + 1);
  // dy is outer + indices.shape + inner: bring the gathered positions to the front, one row per index.
  const rows = tf.reshape(dy, [...outer, indices.size, ...inner]);
  const perm = [outer.length, ...outer.map((_, i) => i), ...inner.map((_, i) => outer.length + 1 + i)];
  const summed = tf.unsortedSegmentSum(tf.transpose(rows, perm), tf.reshape(indices, [indices.size]), x.shape[axis]);
  return tf.transpose(summed, inversePermutation(perm));
}

/** Tile's gradient: view dy as [reps0, size0, reps1, size1, ...] and sum over the repetitions. */
function tileGradient(x: tf.Tensor, dy: tf.Tensor, reps: number[]): tf.Tensor {
  const split = x.shape.flatMap((d, i) => [reps[i], d]);
  return tf.reshape(tf.sum(tf.reshape(dy, split), reps.map((_, i) => 2 * i)), x.shape);
}

export const SHAPE_GRADIENTS: tf.GradConfig[] = [
  gradient('Reshape', { inputs: ['x'] }, (dy, [x]) => ({ x: () => tf.reshape(dy, x.shape) })),
  gradient('ExpandDims', { inputs: ['input'] }, (dy, [x]) => ({ input: () => tf.reshape(dy, x.shape) })),
  gradient('Transpose', {}, (dy, _saved, attrs) => ({ x: () => tf.transpose(dy, inversePermutation(attrs.perm as number[])) })),
  gradient('Reverse', {}, (dy, _saved, attrs) => ({ x: () => tf.reverse(dy, attrs.dims as number[]) })),
  gradient('Slice', { inputs: ['x'] }, (dy, [x], attrs) => {
    const begin = attrs.begin as number[];
    return { x: () => tf.pad(dy, x.shape.map((d, i) => [begin[i], d - begin[i] - dy.shape[i]] as [number, number])) };
  }),
  gradient('PadV2', { inputs: ['x'] }, (dy, [x], attrs) => ({
    x: () => tf.slice(dy, (attrs.paddings as [number, number][]).map((p) => p[0]), x.shape),
  })),
  gradient('Tile', { inputs: ['x'] }, (dy, [x], attrs) => ({ x: () => tileGradient(x, dy, attrs.reps as number[]) })),
  gradient('GatherV2', { inputs: ['x', 'indices'] }, (dy, [x, indices], attrs) => {
    const axis = (attrs.axis as number) < 0 ? (attrs.axis as number) + x.rank : (attrs.axis as number);
    return { x: () => gatherGradient(x, indices, dy, axis), indices: () => tf.zerosLike(indices) };
  }),
  {
    kernelName: 'Concat',
    saveAllInputs: true,
    gradFunc: (dy, saved, attrs) => {
      const axis = (attrs.axis as number) < 0 ? (attrs.axis as number) + saved[0].rank : (attrs.axis as number);
      const parts = tf.split(dy as tf.Tensor, saved.map((t) => t.shape[axis]), axis);
      return Object.fromEntries(parts.map((p, i) => [i, () => p]));
    },
  },
  {
    // Outputs nobody used arrive as zeros, so the pieces always join back to x's shape.
    kernelName: 'SplitV',
    gradFunc: (dy, _saved, attrs) => ({ x: () => tf.concat(dy as tf.Tensor[], attrs.axis as number) }),
  },
  {
    kernelName: 'Pack',
    saveAllInputs: true,
    gradFunc: (dy, saved, attrs) => Object.fromEntries(tf.unstack(dy as tf.Tensor, attrs.axis as number).map((t, i) => [i, () => t])),
  },
  { kernelName: 'Unpack', gradFunc: (dy, _saved, attrs) => ({ value: () => tf.stack(dy as tf.Tensor[], attrs.axis as number) }) },
  gradient('SpaceToBatchND', {}, (dy, _saved, attrs) => ({
    x: () => tf.batchToSpaceND(dy, attrs.blockShape as number[], attrs.paddings as number[][]),
  })),
  gradient('BatchToSpaceND', {}, (dy, _saved, attrs) => ({
    x: () => tf.spaceToBatchND(dy, attrs.blockShape as number[], attrs.crops as number[][]),
  })),
];
