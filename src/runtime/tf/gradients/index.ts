// Gradient definitions for the tfjs kernels the executor's ops use.
//
// Why they are here: tfjs-core's Node bundle registers no gradients at all — tfjs ships them in the
// `@tensorflow/tfjs` union package (which tfjs-node pulls in), not in tfjs-core. Without them every tf.grad
// fails with "gradient function not found". Registration fills only the kernels that have no gradient yet, so
// when the union package is present its own definitions stay in place.
import * as tf from '@tensorflow/tfjs-core';
import { ELEMENTWISE_GRADIENTS } from './elementwise.js';
import { NN_GRADIENTS } from './nn.js';
import { REDUCE_GRADIENTS } from './reduce.js';
import { SHAPE_GRADIENTS } from './shape.js';

export const GRADIENTS: readonly tf.GradConfig[] = [...ELEMENTWISE_GRADIENTS, ...REDUCE_GRADIENTS, ...SHAPE_GRADIENTS, ...NN_GRADIENTS];

/** Registers every gradient that tfjs does not already have; returns the kernel names it registered. */
export function registerGradients(): string[] {
  const added: string[] = [];
  for (const config of GRADIENTS) {
    if (tf.getGradient(config.kernelName)) continue;
    tf.registerGradient(config);
    added.push(config.kernelName);
  }
  return added;
}
