// Matrix products, type casts and the softmax family.
import * as tf from '@tensorflow/tfjs-core';
import { attrFloat, attrInt } from '../../../onnx/attributes.js';
import { DataType, type NodeProto } from '../../../onnx/types.js';
import { tfTypeOf } from '../dtypes.js';
import { op, type OpDef, type OpFn } from '../registry.js';
import { alongLastAxis, input, int, matMul, normalizeAxis, OpError, product } from './util.js';

/**
 * numpy.matmul: 1-D operands gain a unit axis that is dropped again; batch dimensions broadcast. A batched A
 * times a matrix B is folded to one 2-D product: the same result, and on wasm it takes XNNPACK's fast path
 * instead of a generic batched loop (about 8x slower for a decoder's projections, bench/tf-throughput.ts).
 */
function matmul(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  if (a.rank === 0 || b.rank === 0) throw new OpError('MatMul operands must have at least one dimension');
  if (b.rank === 2 && a.rank > 2) {
    const y = tf.matMul(tf.reshape(a, [-1, a.shape[a.rank - 1]]), b);
    return tf.reshape(y, [...a.shape.slice(0, -1), b.shape[1] as number]);
  }
  const a2 = a.rank === 1 ? tf.reshape(a, [1, a.shape[0]]) : a;
  const b2 = b.rank === 1 ? tf.reshape(b, [b.shape[0], 1]) : b;
  let y = tf.matMul(a2, b2);
  if (b.rank === 1) y = tf.squeeze(y, [y.rank - 1]);
  if (a.rank === 1) y = tf.squeeze(y, [y.rank - (b.rank === 1 ? 1 : 2)]);
  return y;
}

function gemm(inputs: readonly (tf.Tensor | undefined)[], node: NodeProto): tf.Tensor {
  const a = input(inputs, 0, 'A');
  const b = input(inputs, 1, 'B');
  const alpha = attrFloat(node, 'alpha', 1);
  const beta = attrFloat(node, 'beta', 1);
  let y = matMul(a, b, attrInt(node, 'transA', 0) === 1, attrInt(node, 'transB', 0) === 1);
  if (alpha !== 1) y = tf.mul(y, alpha);
  const c = inputs[2];
  if (c && beta !== 0) y = tf.add(y, beta === 1 ? c : tf.mul(c, beta));
  return y;
}

// Integer types narrower than 32 bits wrap around on a cast, as C's conversions do.
const WRAP_BITS: ReadonlyMap<number, { bits: number; signed: boolean }> = new Map([
  [DataType.INT8, { bits: 8, signed: true }],
  [DataType.UINT8, { bits: 8, signed: false }],
  [DataType.INT16, { bits: 16, signed: true }],
  [DataType.UINT16, { bits: 16, signed: false }],
]);

/** Float to integer truncates toward zero; to bool tests for non-zero (tf.cast does both). */
export function castTo(x: tf.Tensor, to: number): tf.Tensor {
  const type = tfTypeOf(to);
  if (!type) throw new OpError(`cannot cast to element type ${to}`);
  let y = x.dtype === type ? tf.clone(x) : tf.cast(x, type);
  const wrap = WRAP_BITS.get(to);
  if (wrap) {
    const span = 2 ** wrap.bits;
    const offset = wrap.signed ? span / 2 : 0;
    y = tf.sub(tf.mod(tf.add(y, int(offset)), int(span)), int(offset));
  }
  return y;
}

function castUnsupported(node: NodeProto): string | undefined {
  const to = attrInt(node, 'to', 0);
  return tfTypeOf(to) ? undefined : `Cast to element type ${DataType[to] ?? to}`;
}

/**
 * Softmax-like ops: before opset 13 the input is viewed as a 2-D matrix split at `axis` (default 1) and
 * normalised over the second dimension; from 13 on they work along one axis (default -1).
 */
function softmaxOps(name: string, alongLast: (x: tf.Tensor) => tf.Tensor, differentiable: boolean): OpDef[] {
  const coerced: OpFn = (inputs, node) => {
    const x = input(inputs, 0, 'input');
    const axis = normalizeAxis(attrInt(node, 'axis', 1), x.rank);
    const rows = product(x.shape.slice(0, axis));
    return tf.reshape(alongLast(tf.reshape(x, [rows, product(x.shape.slice(axis))])), x.shape);
  };
  const perAxis: OpFn = (inputs, node) => {
    const x = input(inputs, 0, 'input');
    return alongLastAxis(x, normalizeAxis(attrInt(node, 'axis', -1), x.rank), alongLast);
  };
  return [op(name, coerced, { until: 12, differentiable }), op(name, perAxis, { since: 13, differentiable })];
}

/** One-hot of the first maximum along the last axis. */
function hardmax(x: tf.Tensor): tf.Tensor {
  const n = x.shape[x.rank - 1];
  return tf.cast(tf.oneHot(tf.argMax(x, -1), n), x.dtype);
}

export const MATH_OPS: OpDef[] = [
  op('MatMul', (inputs) => matmul(input(inputs, 0, 'A'), input(inputs, 1, 'B'))),
  op('Gemm', gemm),
  op('Cast', (inputs, node) => castTo(input(inputs, 0, 'input'), attrInt(node, 'to')), { differentiable: true, unsupported: castUnsupported }),
  op('CastLike', (inputs) => {
    const x = input(inputs, 0, 'input');
    const like = input(inputs, 1, 'target_type');
    return x.dtype === like.dtype ? tf.clone(x) : tf.cast(x, like.dtype);
  }, { since: 15 }),
  ...softmaxOps('Softmax', (x) => tf.softmax(x), true),
  ...softmaxOps('LogSoftmax', (x) => tf.logSoftmax(x), true),
  ...softmaxOps('Hardmax', hardmax, false),
];
