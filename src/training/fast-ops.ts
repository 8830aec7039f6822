// Operator overrides for training speed on the wasm backend. tfjs-backend-wasm runs a 2-D x 2-D matMul through
// XNNPACK but a batched [B, T, K] x [K, N] one through a much slower generic loop (about 8x slower for the
// projections of the sample decoders, measured in bench/tf-throughput.ts). The MatMul here folds the leading
// axes of A into one when B is a matrix, which is the same product; everything else is the default registry.
import * as tf from '@tensorflow/tfjs-core';
import { defaultRegistry, op, OpRegistry } from '../runtime/tf/index.js';

function flatMatMul(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  if (b.rank !== 2 || a.rank <= 2) {
    // 1-D operands and batched B: numpy.matmul as the default op does it.
    const a2 = a.rank === 1 ? tf.reshape(a, [1, a.shape[0]]) : a;
    const b2 = b.rank === 1 ? tf.reshape(b, [b.shape[0], 1]) : b;
    let y = tf.matMul(a2, b2);
    if (b.rank === 1) y = tf.squeeze(y, [y.rank - 1]);
    if (a.rank === 1) y = tf.squeeze(y, [y.rank - (b.rank === 1 ? 1 : 2)]);
    return y;
  }
  const k = a.shape[a.rank - 1];
  const lead = a.shape.slice(0, -1);
  const y = tf.matMul(tf.reshape(a, [-1, k]), b);
  return tf.reshape(y, [...lead, b.shape[1] as number]);
}

/** The default registry with MatMul folded to a 2-D product where B is a matrix. */
export function fastTrainingRegistry(): OpRegistry {
  const defs = defaultRegistry()
    .entries()
    .filter((d) => !(d.domain === '' && d.opType === 'MatMul'));
  return new OpRegistry(defs).add(
    op('MatMul', (inputs) => {
      const [a, b] = inputs;
      if (!a || !b) throw new Error('MatMul needs two inputs');
      if (a.rank === 0 || b.rank === 0) throw new Error('MatMul operands must have at least one dimension');
      return flatMatMul(a, b);
    }),
  );
}
