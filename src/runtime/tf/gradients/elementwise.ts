// Gradients of element-wise kernels. Unary ones are a table of derivatives (dx = dy * f'(x), written with x
// or with the saved output y where that is cheaper); binary ones reduce each operand's gradient over the axes
// broadcasting stretched.
import * as tf from '@tensorflow/tfjs-core';
import { gradient, unbroadcast } from './common.js';

type Derivative = (x: tf.Tensor, y: tf.Tensor) => tf.Tensor;

const oneMinusSquare = (t: tf.Tensor) => tf.sub(1, tf.square(t));
const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);

/** [kernel, f'(x) in terms of x and y = f(x), needs y]. */
const UNARY: [string, Derivative, boolean][] = [
  ['Neg', (x) => tf.fill(x.shape, -1), false],
  ['Exp', (_x, y) => y, true],
  ['Expm1', (x) => tf.exp(x), false],
  ['Log', (x) => tf.reciprocal(x), false],
  ['Log1p', (x) => tf.reciprocal(tf.add(x, 1)), false],
  ['Sqrt', (_x, y) => tf.div(0.5, y), true],
  ['Rsqrt', (_x, y) => tf.mul(-0.5, tf.pow(y, 3)), true],
  ['Reciprocal', (_x, y) => tf.neg(tf.square(y)), true],
  ['Square', (x) => tf.mul(x, 2), false],
  ['Tanh', (_x, y) => oneMinusSquare(y), true],
  ['Sigmoid', (_x, y) => tf.mul(y, tf.sub(1, y)), true],
  ['Softplus', (x) => tf.sigmoid(x), false],
  ['Sin', (x) => tf.cos(x), false],
  ['Cos', (x) => tf.neg(tf.sin(x)), false],
  ['Tan', (x) => tf.reciprocal(tf.square(tf.cos(x))), false],
  ['Asin', (x) => tf.rsqrt(oneMinusSquare(x)), false],
  ['Acos', (x) => tf.neg(tf.rsqrt(oneMinusSquare(x))), false],
  ['Atan', (x) => tf.reciprocal(tf.add(tf.square(x), 1)), false],
  ['Sinh', (x) => tf.cosh(x), false],
  ['Cosh', (x) => tf.sinh(x), false],
  ['Asinh', (x) => tf.rsqrt(tf.add(tf.square(x), 1)), false],
  ['Acosh', (x) => tf.rsqrt(tf.sub(tf.square(x), 1)), false],
  ['Atanh', (x) => tf.reciprocal(oneMinusSquare(x)), false],
  ['Erf', (x) => tf.mul(TWO_OVER_SQRT_PI, tf.exp(tf.neg(tf.square(x)))), false],
  ['Abs', (x) => tf.sign(x), false],
  ['Relu', (x) => tf.cast(tf.greater(x, 0), 'float32'), false],
  ['Relu6', (x) => tf.cast(tf.logicalAnd(tf.greater(x, 0), tf.less(x, 6)), 'float32'), false],
  ['Elu', (_x, y) => tf.where(tf.greater(y, 0), tf.onesLike(y), tf.add(y, 1)), true],
];

/** Piecewise-constant kernels: their derivative is zero wherever it exists. */
const ZERO = ['Floor', 'Ceil', 'Round', 'Sign', 'Step', 'OnesLike', 'ZerosLike'];

/**
 * Kernels with boolean or integer results: no gradient flows through them, but the tape still visits them when
 * a condition is computed from a differentiated value (Where(x < 0, ...)), so they need explicit zeros.
 */
const NO_GRADIENT_BINARY = ['Equal', 'NotEqual', 'Less', 'LessEqual', 'Greater', 'GreaterEqual', 'LogicalAnd', 'LogicalOr', 'LogicalXor', 'FloorDiv'];
const NO_GRADIENT_UNARY = ['LogicalNot', 'IsNan', 'IsInf', 'IsFinite', 'ArgMax', 'ArgMin'];

/** Value-preserving kernels: the gradient passes through. */
const PASS_THROUGH = ['Identity', 'Cast'];

const unary = ([kernel, derivative, usesOutput]: [string, Derivative, boolean]): tf.GradConfig =>
  gradient(kernel, { inputs: ['x'], output: usesOutput }, (dy, [x, y]) => ({ x: () => tf.mul(dy, derivative(x, y)) }));

function binary(kernel: string, da: (dy: tf.Tensor, a: tf.Tensor, b: tf.Tensor) => tf.Tensor, db: (dy: tf.Tensor, a: tf.Tensor, b: tf.Tensor) => tf.Tensor): tf.GradConfig {
  return gradient(kernel, { inputs: ['a', 'b'] }, (dy, [a, b]) => ({
    a: () => unbroadcast(da(dy, a, b), a.shape),
    b: () => unbroadcast(db(dy, a, b), b.shape),
  }));
}

const where = (condition: tf.Tensor, dy: tf.Tensor) => tf.mul(dy, tf.cast(condition, dy.dtype));

export const ELEMENTWISE_GRADIENTS: tf.GradConfig[] = [
  ...UNARY.map(unary),
  ...ZERO.map((k) => gradient(k, { inputs: ['x'] }, (_dy, [x]) => ({ x: () => tf.zerosLike(x) }))),
  ...NO_GRADIENT_UNARY.map((k) => gradient(k, { inputs: ['x'] }, (_dy, [x]) => ({ x: () => tf.zeros(x.shape, 'float32') }))),
  ...NO_GRADIENT_BINARY.map((k) =>
    gradient(k, { inputs: ['a', 'b'] }, (_dy, [a, b]) => ({ a: () => tf.zeros(a.shape, 'float32'), b: () => tf.zeros(b.shape, 'float32') })),
  ),
  ...PASS_THROUGH.map((k) => gradient(k, {}, (dy) => ({ x: () => tf.clone(dy) }))),
  gradient('LeakyRelu', { inputs: ['x'] }, (dy, [x], attrs) => ({
    x: () => tf.mul(dy, tf.where(tf.greater(x, 0), tf.onesLike(x), tf.fill(x.shape, attrs.alpha as number))),
  })),
  gradient('ClipByValue', { inputs: ['x'] }, (dy, [x], attrs) => ({
    x: () => where(tf.logicalAnd(tf.greaterEqual(x, attrs.clipValueMin as number), tf.lessEqual(x, attrs.clipValueMax as number)), dy),
  })),
  gradient('Select', { inputs: ['condition'] }, (dy, [condition]) => ({
    // tfjs insists on a float gradient for every input, even a boolean one.
    condition: () => tf.zeros(condition.shape, 'float32'),
    t: () => where(condition, dy),
    e: () => where(tf.logicalNot(condition), dy),
  })),
  binary('Add', (dy) => dy, (dy) => dy),
  binary('SquaredDifference', (dy, a, b) => tf.mul(dy, tf.mul(tf.sub(a, b), 2)), (dy, a, b) => tf.mul(dy, tf.mul(tf.sub(b, a), 2))),
  {
    // Each summand receives the output gradient (AddN does not broadcast).
    kernelName: 'AddN',
    saveAllInputs: true,
    gradFunc: (dy, saved) => Object.fromEntries(saved.map((_t, i) => [i, () => tf.clone(dy as tf.Tensor)])),
  },
  binary('Sub', (dy) => dy, (dy) => tf.neg(dy)),
  binary('Multiply', (dy, _a, b) => tf.mul(dy, b), (dy, a) => tf.mul(dy, a)),
  // Floor-mod: a - floor(a / b) * b.
  binary('Mod', (dy) => dy, (dy, a, b) => tf.neg(tf.mul(dy, tf.floor(tf.div(a, b))))),
  binary('RealDiv', (dy, _a, b) => tf.div(dy, b), (dy, a, b) => tf.neg(tf.div(tf.mul(dy, a), tf.square(b)))),
  // Ties send the gradient to the first operand, as tfjs's own gradients do.
  binary('Maximum', (dy, a, b) => where(tf.greaterEqual(a, b), dy), (dy, a, b) => where(tf.less(a, b), dy)),
  binary('Minimum', (dy, a, b) => where(tf.lessEqual(a, b), dy), (dy, a, b) => where(tf.greater(a, b), dy)),
  gradient('Pow', { inputs: ['a', 'b'], output: true }, (dy, [a, b, y]) => ({
    a: () => unbroadcast(tf.mul(dy, tf.mul(b, tf.pow(a, tf.sub(b, 1)))), a.shape),
    // d/db a^b = a^b ln a, taken as 0 where a <= 0 (where the real power is not differentiable in b).
    b: () => unbroadcast(tf.mul(dy, tf.mul(y, tf.where(tf.greater(a, 0), tf.log(tf.maximum(a, 1e-30)), tf.zerosLike(a)))), b.shape),
  })),
];
