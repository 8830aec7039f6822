// Ops that make tensors from attributes or from a shape: Constant, ConstantOfShape, Range, EyeLike, and the
// index-pattern ops Trilu and CumSum.
import * as tf from '@tensorflow/tfjs-core';
import { attrFloat, attrFloats, attrInt, attrInts, attrTensor, findAttr } from '../../../onnx/attributes.js';
import { tensorValues } from '../../../onnx/tensor.js';
import type { NodeProto } from '../../../onnx/types.js';
import { toTfTensor } from '../dtypes.js';
import { castTo } from './math.js';
import { op, type OpDef, type OpInputs } from '../registry.js';
import { input, ints, normalizeAxis, OpError, scalar } from './util.js';

const CONSTANT_FIELDS = ['value', 'value_float', 'value_floats', 'value_int', 'value_ints'];

/** The tensor a Constant node holds (integers narrowed to int32, see dtypes.ts). */
export function constantValue(node: NodeProto): tf.Tensor {
  if (findAttr(node, 'value')) return toTfTensor(tensorValues(attrTensor(node, 'value')!), 'clamp', 'Constant value');
  if (findAttr(node, 'value_float')) return tf.scalar(attrFloat(node, 'value_float'), 'float32');
  if (findAttr(node, 'value_floats')) return tf.tensor1d(attrFloats(node, 'value_floats'), 'float32');
  if (findAttr(node, 'value_int')) return tf.scalar(clampInt(attrInt(node, 'value_int')), 'int32');
  if (findAttr(node, 'value_ints')) return tf.tensor1d(attrInts(node, 'value_ints').map(clampInt), 'int32');
  throw new OpError('Constant has no value attribute this executor reads');
}

function clampInt(v: number): number {
  return Math.min(Math.max(v, -2147483648), 2147483647);
}

function constantOfShape(inputs: OpInputs, node: NodeProto): tf.Tensor {
  const shape = ints(input(inputs, 0, 'input'));
  const valueProto = attrTensor(node, 'value');
  if (!valueProto) return tf.zeros(shape, 'float32');
  const value = toTfTensor(tensorValues(valueProto), 'clamp', 'ConstantOfShape value');
  try {
    return tf.fill(shape, scalar(value), value.dtype);
  } finally {
    value.dispose();
  }
}

/** Elements above (upper) or below (lower) diagonal k of the last two axes are kept; the rest become zero. */
function trilu(inputs: OpInputs, node: NodeProto): tf.Tensor {
  const x = input(inputs, 0, 'input');
  const k = inputs[1] ? scalar(inputs[1]) : 0;
  const upper = attrInt(node, 'upper', 1) === 1;
  const [rows, cols] = x.shape.slice(-2);
  const offset = tf.sub(tf.reshape(tf.range(0, cols, 1, 'int32'), [1, cols]), tf.reshape(tf.range(0, rows, 1, 'int32'), [rows, 1]));
  const keep = upper ? tf.greaterEqual(offset, k) : tf.lessEqual(offset, k);
  return tf.where(keep, x, tf.zerosLike(x));
}

function cumsum(inputs: OpInputs, node: NodeProto): tf.Tensor {
  const x = input(inputs, 0, 'x');
  const axis = normalizeAxis(scalar(input(inputs, 1, 'axis')), x.rank);
  return tf.cumsum(x, axis, attrInt(node, 'exclusive', 0) === 1, attrInt(node, 'reverse', 0) === 1);
}

function eyeLike(inputs: OpInputs, node: NodeProto): tf.Tensor {
  const x = input(inputs, 0, 'input');
  const [rows, cols] = x.shape;
  const k = attrInt(node, 'k', 0);
  const eye = tf.equal(tf.sub(tf.reshape(tf.range(0, cols, 1, 'int32'), [1, cols]), tf.reshape(tf.range(0, rows, 1, 'int32'), [rows, 1])), k);
  return findAttr(node, 'dtype') ? castTo(eye, attrInt(node, 'dtype')) : tf.cast(eye, x.dtype);
}

export const GENERATOR_OPS: OpDef[] = [
  op('Constant', (_inputs, node) => constantValue(node), {
    differentiable: false,
    unsupported: (node) => (CONSTANT_FIELDS.some((f) => findAttr(node, f)) ? undefined : 'a Constant holding strings or a sparse tensor'),
  }),
  op('ConstantOfShape', constantOfShape, { since: 9, differentiable: false }),
  op('Range', (inputs) => {
    const start = input(inputs, 0, 'start');
    return tf.range(scalar(start), scalar(input(inputs, 1, 'limit')), scalar(input(inputs, 2, 'delta')), start.dtype === 'int32' ? 'int32' : 'float32');
  }, { since: 11, differentiable: false }),
  op('EyeLike', eyeLike, { since: 9, differentiable: false }),
  op('Trilu', trilu, { since: 14 }),
  op('CumSum', cumsum, { since: 11 }),
];
