// Comparisons, boolean logic and Where. Results are bool tensors; only Where passes gradients (to the values
// it selects).
import * as tf from '@tensorflow/tfjs-core';
import { attrInt } from '../../../onnx/attributes.js';
import { op, type OpDef } from '../registry.js';
import { input } from './util.js';

type Compare = (a: tf.Tensor, b: tf.Tensor) => tf.Tensor;

const BOOLEAN: [string, Compare, number][] = [
  ['Equal', (a, b) => tf.equal(a, b), 1],
  ['Less', (a, b) => tf.less(a, b), 1],
  ['Greater', (a, b) => tf.greater(a, b), 1],
  ['LessOrEqual', (a, b) => tf.lessEqual(a, b), 12],
  ['GreaterOrEqual', (a, b) => tf.greaterEqual(a, b), 12],
  ['And', (a, b) => tf.logicalAnd(a, b), 1],
  ['Or', (a, b) => tf.logicalOr(a, b), 1],
  ['Xor', (a, b) => tf.logicalXor(a, b), 1],
];

export const LOGIC_OPS: OpDef[] = [
  ...BOOLEAN.map(([name, f, since]) => op(name, (inputs) => f(input(inputs, 0, 'A'), input(inputs, 1, 'B')), { since, differentiable: false })),
  op('Not', (inputs) => tf.logicalNot(input(inputs, 0, 'X')), { differentiable: false }),
  op('IsNaN', (inputs) => tf.isNaN(input(inputs, 0, 'X')), { since: 9, differentiable: false }),
  op('IsInf', (inputs, node) => {
    const x = input(inputs, 0, 'X');
    const negative = attrInt(node, 'detect_negative', 1) === 1;
    const positive = attrInt(node, 'detect_positive', 1) === 1;
    const hits = [positive ? tf.equal(x, Infinity) : undefined, negative ? tf.equal(x, -Infinity) : undefined].filter((t) => t !== undefined);
    return hits.length === 0 ? tf.cast(tf.zerosLike(x), 'bool') : hits.reduce((a, b) => tf.logicalOr(a, b));
  }, { since: 10, differentiable: false }),
  op('Where', (inputs) => {
    const cond = input(inputs, 0, 'condition');
    return tf.where(cond.dtype === 'bool' ? cond : tf.cast(cond, 'bool'), input(inputs, 1, 'X'), input(inputs, 2, 'Y'));
  }, { since: 9 }),
];
