// Element-wise ops: one table of unary functions, one of broadcasting binary functions, the variadic
// Max/Min/Sum/Mean, and the activations that take attributes. tfjs broadcasts binary ops with numpy's rules,
// which are ONNX's multidirectional broadcasting.
import * as tf from '@tensorflow/tfjs-core';
import { attrFloat, attrInt, attrString, findAttr } from '../../../onnx/attributes.js';
import type { NodeProto } from '../../../onnx/types.js';
import { op, type OpDef, type OpFn, type OpOptions } from '../registry.js';
import { broadcastShapes, input, int, isFloat, OpError, scalar, toFloat } from './util.js';

type Unary = (x: tf.Tensor) => tf.Tensor;
type Binary = (a: tf.Tensor, b: tf.Tensor) => tf.Tensor;

const PIECEWISE_CONSTANT: OpOptions = { differentiable: false };

const UNARY: [string, Unary, OpOptions?][] = [
  ['Abs', tf.abs],
  ['Neg', tf.neg],
  ['Exp', tf.exp],
  ['Log', tf.log],
  ['Sqrt', tf.sqrt],
  ['Reciprocal', (x) => tf.reciprocal(toFloat(x))],
  ['Tanh', tf.tanh],
  ['Sigmoid', tf.sigmoid],
  ['Sin', tf.sin, { since: 7 }],
  ['Cos', tf.cos, { since: 7 }],
  ['Tan', tf.tan, { since: 7 }],
  ['Asin', tf.asin, { since: 7 }],
  ['Acos', tf.acos, { since: 7 }],
  ['Atan', tf.atan, { since: 7 }],
  ['Sinh', tf.sinh, { since: 9 }],
  ['Cosh', tf.cosh, { since: 9 }],
  ['Asinh', tf.asinh, { since: 9 }],
  ['Acosh', tf.acosh, { since: 9 }],
  ['Atanh', tf.atanh, { since: 9 }],
  ['Erf', tf.erf, { since: 9 }],
  ['Relu', tf.relu],
  ['Softplus', tf.softplus],
  ['Softsign', (x) => tf.div(x, tf.add(tf.abs(x), 1))],
  // Mish (opset 18): x * tanh(softplus(x)).
  ['Mish', (x) => tf.mul(x, tf.tanh(tf.softplus(x))), { since: 18 }],
  ['Floor', tf.floor, PIECEWISE_CONSTANT],
  ['Ceil', tf.ceil, PIECEWISE_CONSTANT],
  // tfjs rounds half to even, as ONNX's Round does.
  ['Round', tf.round, { since: 11, differentiable: false }],
  ['Sign', tf.sign, { since: 9, differentiable: false }],
];

/** Integer division truncates toward zero in ONNX (C semantics); tfjs's integer div floors. */
function divide(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  if (isFloat(a) || isFloat(b)) return tf.div(toFloat(a), toFloat(b));
  const floored = tf.floorDiv(a, b);
  const inexact = tf.notEqual(tf.sub(a, tf.mul(floored, b)), 0);
  const signsDiffer = tf.notEqual(tf.less(a, 0), tf.less(b, 0));
  return tf.where(tf.logicalAnd(inexact, signsDiffer), tf.add(floored, int(1)), floored);
}

/** The result has the base's type; an integer base with a float exponent is computed in float and truncated. */
function power(base: tf.Tensor, exponent: tf.Tensor): tf.Tensor {
  // x^2 (RMSNorm, variance) is the common case: a square is cheaper and has the simpler gradient.
  if (exponent.size === 1 && isFloat(base) && scalar(exponent) === 2) {
    return tf.reshape(tf.square(base), broadcastShapes(base.shape, exponent.shape));
  }
  if (isFloat(base)) return tf.pow(base, toFloat(exponent));
  if (!isFloat(exponent)) return tf.pow(base, exponent);
  return tf.cast(tf.pow(toFloat(base), exponent), base.dtype);
}

/** fmod = 0: the result takes the divisor's sign (Python %); fmod = 1: the dividend's (C fmod). */
function modulo(a: tf.Tensor, b: tf.Tensor, node: NodeProto): tf.Tensor {
  if (attrInt(node, 'fmod', 0) === 0) return tf.mod(a, b);
  const truncated = isFloat(a) ? tf.mul(tf.sign(tf.div(a, b)), tf.floor(tf.abs(tf.div(a, b)))) : divide(a, b);
  return tf.sub(a, tf.mul(truncated, b));
}

/**
 * PRelu: slope broadcasts to x from opset 7; before, a 1-D slope holds one value per channel (axis 1), as
 * PyTorch's old exports have it.
 */
const prelu: OpFn = (inputs, _node, ctx) => {
  const x = input(inputs, 0, 'X');
  let slope = input(inputs, 1, 'slope');
  if (ctx.opset < 7 && slope.rank === 1 && x.rank > 2 && slope.size === x.shape[1]) {
    slope = tf.reshape(slope, [slope.size, ...new Array(x.rank - 2).fill(1)]);
  }
  return tf.where(tf.less(x, 0), tf.mul(x, slope), x);
};

/**
 * Before opset 7, binary ops broadcast only with `broadcast=1`, and `axis` says where B's dimensions line up in
 * A (numpy aligns them at the end). B is reshaped so numpy broadcasting lines it up there too.
 */
function legacyAligned(a: tf.Tensor, b: tf.Tensor, node: NodeProto): tf.Tensor {
  if (!findAttr(node, 'axis') || attrInt(node, 'broadcast', 0) !== 1) return b;
  const axis = attrInt(node, 'axis');
  const at = axis < 0 ? axis + a.rank : axis;
  return tf.reshape(b, [...b.shape, ...new Array(Math.max(0, a.rank - at - b.rank)).fill(1)]);
}

const withLegacyAxis =
  (f: Binary) =>
  (a: tf.Tensor, b: tf.Tensor, node: NodeProto): tf.Tensor =>
    f(a, legacyAligned(a, b, node));

const BINARY: [string, (a: tf.Tensor, b: tf.Tensor, node: NodeProto) => tf.Tensor, OpOptions?][] = [
  ['Add', withLegacyAxis((a, b) => tf.add(a, b))],
  ['Sub', withLegacyAxis((a, b) => tf.sub(a, b))],
  ['Mul', withLegacyAxis((a, b) => tf.mul(a, b))],
  ['Div', withLegacyAxis(divide)],
  ['Pow', power],
  ['Mod', modulo, { since: 10, differentiable: false }],
];

const unaryOp = ([name, f, options]: [string, Unary, OpOptions?]): OpDef => op(name, (inputs) => f(input(inputs, 0, 'X')), options);

const binaryOp = ([name, f, options]: [string, (a: tf.Tensor, b: tf.Tensor, node: NodeProto) => tf.Tensor, OpOptions?]): OpDef =>
  op(name, (inputs, node) => f(input(inputs, 0, 'A'), input(inputs, 1, 'B'), node), options);

/** Max/Min/Sum/Mean over any number of broadcasting inputs. */
function variadic(combine: Binary, finish: (acc: tf.Tensor, count: number) => tf.Tensor = (acc) => acc): OpFn {
  return (inputs) => {
    const present = inputs.filter((t): t is tf.Tensor => t !== undefined);
    if (present.length === 0) throw new OpError('needs at least one input');
    return finish(present.slice(1).reduce(combine, present[0]), present.length);
  };
}

/** Activations whose shape depends on attributes. */
const ACTIVATIONS: OpDef[] = [
  op('PRelu', prelu),
  op('LeakyRelu', (inputs, node) => tf.leakyRelu(input(inputs, 0, 'X'), attrFloat(node, 'alpha', 0.01))),
  op('Elu', (inputs, node) => elu(input(inputs, 0, 'X'), attrFloat(node, 'alpha', 1))),
  op('Celu', (inputs, node) => {
    const alpha = attrFloat(node, 'alpha', 1);
    return tf.mul(elu(tf.div(input(inputs, 0, 'X'), alpha), 1), alpha);
  }, { since: 12 }),
  op('Selu', (inputs, node) => {
    const x = input(inputs, 0, 'X');
    return tf.mul(elu(x, attrFloat(node, 'alpha', 1.67326319217681884765625)), attrFloat(node, 'gamma', 1.05070102214813232421875));
  }),
  op('HardSigmoid', (inputs, node) => hardSigmoid(input(inputs, 0, 'X'), attrFloat(node, 'alpha', 0.2), attrFloat(node, 'beta', 0.5))),
  op('HardSwish', (inputs) => {
    const x = input(inputs, 0, 'X');
    return tf.mul(x, hardSigmoid(x, 1 / 6, 0.5));
  }, { since: 14 }),
  op('ThresholdedRelu', (inputs, node) => {
    const x = input(inputs, 0, 'X');
    return tf.where(tf.greater(x, attrFloat(node, 'alpha', 1)), x, tf.zerosLike(x));
  }, { since: 10 }),
  op('Gelu', (inputs, node) => gelu(input(inputs, 0, 'X'), attrString(node, 'approximate', 'none') === 'tanh'), { since: 20 }),
  op('Clip', (inputs, node) => clip(input(inputs, 0, 'input'), attrFloat(node, 'min', -Infinity), attrFloat(node, 'max', Infinity)), { until: 10 }),
  op('Clip', (inputs) => {
    const bound = (t: tf.Tensor | undefined, dflt: number) => (t ? scalar(t) : dflt);
    return clip(input(inputs, 0, 'input'), bound(inputs[1], -Infinity), bound(inputs[2], Infinity));
  }, { since: 11 }),
];

/** Integer tensors clip with maximum/minimum: the wasm ClipByValue kernel reads int32 data as float32. */
function clip(x: tf.Tensor, min: number, max: number): tf.Tensor {
  if (isFloat(x)) return tf.clipByValue(x, min, max);
  let y = x;
  if (min > -Infinity) y = tf.maximum(y, int(Math.ceil(min)));
  if (max < Infinity) y = tf.minimum(y, int(Math.floor(max)));
  return y === x ? tf.clone(x) : y;
}

/** x for x > 0, alpha * (e^x - 1) otherwise; exp of min(x, 0) keeps the unused branch finite for the gradient. */
export function elu(x: tf.Tensor, alpha: number): tf.Tensor {
  return tf.where(tf.greater(x, 0), x, tf.mul(tf.expm1(tf.minimum(x, 0)), alpha));
}

export function hardSigmoid(x: tf.Tensor, alpha: number, beta: number): tf.Tensor {
  return tf.clipByValue(tf.add(tf.mul(x, alpha), beta), 0, 1);
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/** 0.5 x (1 + erf(x / sqrt 2)), or the tanh approximation 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
export function gelu(x: tf.Tensor, tanhApproximation: boolean): tf.Tensor {
  const inner = tanhApproximation
    ? tf.tanh(tf.mul(tf.add(x, tf.mul(tf.mul(tf.square(x), x), 0.044715)), SQRT_2_OVER_PI))
    : tf.erf(tf.mul(x, Math.SQRT1_2));
  return tf.mul(tf.mul(x, 0.5), tf.add(inner, 1));
}

export const ELEMENTWISE_OPS: OpDef[] = [
  ...UNARY.map(unaryOp),
  ...BINARY.map(binaryOp),
  ...ACTIVATIONS,
  op('Max', variadic((a, b) => tf.maximum(a, b))),
  op('Min', variadic((a, b) => tf.minimum(a, b))),
  op('Sum', variadic((a, b) => tf.add(a, b))),
  op('Mean', variadic((a, b) => tf.add(a, b), (acc, n) => tf.div(acc, n))),
];
