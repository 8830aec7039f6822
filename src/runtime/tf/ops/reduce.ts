// Reductions. Every Reduce* op is one reducer function plus the shared axis handling: axes come from the `axes`
// attribute up to one opset and from the second input after it (opset 13 for ReduceSum, 18 for the rest),
// with `noop_with_empty_axes` deciding what an empty axes input means.
import * as tf from '@tensorflow/tfjs-core';
import { attrInt, attrInts } from '../../../onnx/attributes.js';
import type { NodeProto } from '../../../onnx/types.js';
import { op, type OpDef, type OpInputs } from '../registry.js';
import { input, int, ints, isFloat, normalizeAxes, normalizeAxis } from './util.js';

type Reducer = (x: tf.Tensor, axes: number[], keepDims: boolean) => tf.Tensor;

const sumOfSquares: Reducer = (x, axes, keep) => tf.sum(tf.square(x), axes, keep);

/** [op type, reducer, first opset that takes axes as an input, differentiable]. */
const REDUCERS: [string, Reducer, number, boolean][] = [
  ['ReduceSum', (x, axes, keep) => tf.sum(x, axes, keep), 13, true],
  ['ReduceMean', (x, axes, keep) => keepType(x, tf.mean(x, axes, keep)), 18, true],
  ['ReduceMax', (x, axes, keep) => tf.max(x, axes, keep), 18, true],
  ['ReduceMin', (x, axes, keep) => tf.min(x, axes, keep), 18, true],
  ['ReduceProd', (x, axes, keep) => tf.prod(x, axes, keep), 18, true],
  ['ReduceL1', (x, axes, keep) => tf.sum(tf.abs(x), axes, keep), 18, true],
  ['ReduceL2', (x, axes, keep) => keepType(x, tf.sqrt(sumOfSquares(tf.cast(x, 'float32'), axes, keep))), 18, true],
  ['ReduceSumSquare', sumOfSquares, 18, true],
  ['ReduceLogSum', (x, axes, keep) => tf.log(tf.sum(x, axes, keep)), 18, true],
  ['ReduceLogSumExp', (x, axes, keep) => tf.logSumExp(x, axes, keep), 18, true],
];

/** An integer input gives an integer result (tfjs's mean and sqrt return float32). */
function keepType(x: tf.Tensor, result: tf.Tensor): tf.Tensor {
  return isFloat(x) ? result : tf.cast(tf.floor(result), x.dtype);
}

/** The axes to reduce, or undefined for "leave the tensor as it is" (noop_with_empty_axes). */
function reductionAxes(x: tf.Tensor, node: NodeProto, inputs: OpInputs, axesFromInput: boolean): number[] | undefined {
  const axes = axesFromInput ? (inputs[1] ? ints(inputs[1]) : []) : attrInts(node, 'axes', []);
  if (axes.length > 0) return normalizeAxes(axes, x.rank);
  if (axesFromInput && attrInt(node, 'noop_with_empty_axes', 0) === 1) return undefined;
  return [...Array(x.rank).keys()];
}

function reduceOps([name, reducer, axesInputSince, differentiable]: [string, Reducer, number, boolean]): OpDef[] {
  const run = (axesFromInput: boolean) => (inputs: OpInputs, node: NodeProto) => {
    const x = input(inputs, 0, 'data');
    const axes = reductionAxes(x, node, inputs, axesFromInput);
    if (axes === undefined) return tf.clone(x);
    return reducer(x, axes, attrInt(node, 'keepdims', 1) === 1);
  };
  return [
    op(name, run(false), { until: axesInputSince - 1, differentiable }),
    op(name, run(true), { since: axesInputSince, differentiable }),
  ];
}

/** ArgMax/ArgMin; ties go to the first index unless `select_last_index`, which searches the reversed axis. */
function argExtreme(name: string, find: (x: tf.Tensor, axis: number) => tf.Tensor): OpDef {
  return op(
    name,
    (inputs, node) => {
      const x = input(inputs, 0, 'data');
      const axis = normalizeAxis(attrInt(node, 'axis', 0), x.rank);
      const last = attrInt(node, 'select_last_index', 0) === 1;
      let index = last ? tf.sub(int(x.shape[axis] - 1), find(tf.reverse(x, axis), axis)) : find(x, axis);
      if (attrInt(node, 'keepdims', 1) === 1) index = tf.expandDims(index, axis);
      return index;
    },
    { differentiable: false },
  );
}

export const REDUCE_OPS: OpDef[] = [...REDUCERS.flatMap(reduceOps), argExtreme('ArgMax', tf.argMax), argExtreme('ArgMin', tf.argMin)];
