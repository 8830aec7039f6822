// Ready-made objectives for TfModel.gradients, so common uses need no tfjs code: the mean next-token
// cross-entropy of a language model, a fixed weighting of outputs, and the squared error to a target.
import type * as tf from '@tensorflow/tfjs-core';
import { OnnxCompressError } from '../../errors.js';
import type { Objective, TensorInput } from './interpreter.js';

/** Label value that marks a position as not scored (Hugging Face's convention). */
export const IGNORE_INDEX = -100;

/**
 * Mean cross-entropy of `logits` [batch, seq, vocab] against `targets` [batch, seq] (token ids; IGNORE_INDEX
 * skips a position), as a causal LM's loss with the targets already shifted.
 */
export function crossEntropy(targets: TensorInput, logits = 'logits'): Objective {
  const ids = Array.from(targets.data as ArrayLike<number | bigint>, Number);
  return (outputs, ops) => {
    const x = outputs[logits];
    const vocab = x.shape[x.rank - 1];
    if (ids.length * vocab !== x.size) throw new OnnxCompressError('bad-data', `targets hold ${ids.length} ids for logits of shape [${x.shape.join(', ')}]`);
    const scored = ids.map((id): number => (id === IGNORE_INDEX ? 0 : 1));
    const count = scored.reduce((a, b) => a + b, 0);
    if (count === 0) throw new OnnxCompressError('bad-data', 'every target is IGNORE_INDEX: nothing to score');
    const logProbs = ops.logSoftmax(ops.reshape(x, [ids.length, vocab]) as tf.Tensor2D);
    const picked = ops.mul(logProbs, ops.oneHot(ops.tensor1d(ids.map((id, i) => (scored[i] ? id : 0)), 'int32'), vocab));
    const perPosition = ops.mul(ops.sum(picked, 1), ops.tensor1d(scored));
    return ops.neg(ops.div(ops.sum(perPosition), count));
  };
}

/** sum over outputs of <output, weights>: a random weighting makes a generic scalar probe of every output. */
export function weightedSum(weights: Readonly<Record<string, Float32Array>>): Objective {
  return (outputs, ops) =>
    ops.addN(Object.entries(weights).map(([name, w]) => ops.sum(ops.mul(outputs[name], ops.tensor(w, outputs[name].shape))))) as tf.Tensor;
}

/** Mean squared difference between an output and a target of the same shape. */
export function meanSquaredError(name: string, target: TensorInput): Objective {
  return (outputs, ops) => ops.mean(ops.squaredDifference(outputs[name], ops.tensor(Float32Array.from(target.data as ArrayLike<number>), [...target.dims])));
}
