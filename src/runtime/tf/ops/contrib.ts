// ONNX Runtime's com.microsoft fused ops that transformer exports contain after ORT's optimizer has run
// (optimum's "O2"+ levels): skip-connection layer norms and the GELU variants. Semantics follow ORT's contrib
// op schemas (onnxruntime/core/graph/contrib_ops). ORT's SimplifiedLayerNormalization (RMSNorm) is not here:
// ORT registers it in the default domain, so it lives in normalization.ts.
import * as tf from '@tensorflow/tfjs-core';
import { attrFloat } from '../../../onnx/attributes.js';
import type { NodeProto } from '../../../onnx/types.js';
import { op, type OpDef, type OpInputs } from '../registry.js';
import { gelu } from './elementwise.js';
import { normalize } from './normalization.js';
import { input } from './util.js';

const MS = { domain: 'com.microsoft' };

/**
 * SkipLayerNormalization / SkipSimplifiedLayerNormalization: normalise input + skip (+ bias) over the last axis.
 * Outputs: output, mean (unused by ORT's kernels for the simplified form), inv_std_var, input_skip_bias_sum.
 */
function skipNormalization(center: boolean) {
  return (inputs: OpInputs, node: NodeProto): tf.Tensor[] => {
    const x = input(inputs, 0, 'input');
    const gamma = input(inputs, 2, 'gamma');
    const beta = center ? inputs[3] : undefined;
    const bias = center ? inputs[4] : inputs[3];
    let sum = tf.add(x, input(inputs, 1, 'skip'));
    if (bias) sum = tf.add(sum, bias);
    const n = normalize(sum, x.rank - 1, attrFloat(node, 'epsilon', 1e-12), gamma, beta, center);
    return [n.y, n.mean, n.invStdDev, sum];
  };
}

function fastGelu(inputs: OpInputs): tf.Tensor {
  const x = input(inputs, 0, 'X');
  return gelu(inputs[1] ? tf.add(x, inputs[1]) : x, true);
}

export const CONTRIB_OPS: OpDef[] = [
  op('SkipLayerNormalization', skipNormalization(true), MS),
  op('SkipSimplifiedLayerNormalization', skipNormalization(false), MS),
  op('Gelu', (inputs) => gelu(input(inputs, 0, 'X'), false), MS),
  op('BiasGelu', (inputs) => gelu(tf.add(input(inputs, 0, 'A'), input(inputs, 1, 'B')), false), MS),
  op('FastGelu', fastGelu, MS),
  op('QuickGelu', (inputs, node) => {
    const x = input(inputs, 0, 'X');
    return tf.mul(x, tf.sigmoid(tf.mul(x, attrFloat(node, 'alpha', 1.702))));
  }, MS),
];
