// Helpers the gradient definitions share.
import * as tf from '@tensorflow/tfjs-core';

/** A gradient function with its inputs typed for the common single-output case. */
export type Grad = (dy: tf.Tensor, saved: tf.Tensor[], attrs: tf.NamedAttrMap) => Record<string, () => tf.Tensor>;

/** A GradConfig for a single-output kernel. */
export function gradient(kernelName: string, save: { inputs?: string[]; output?: boolean; allInputs?: boolean }, grad: Grad): tf.GradConfig {
  return {
    kernelName,
    ...(save.inputs ? { inputsToSave: save.inputs } : {}),
    ...(save.allInputs ? { saveAllInputs: true } : {}),
    ...(save.output ? { outputsToSave: [true] } : {}),
    gradFunc: (dy, saved, attrs) => grad(dy as tf.Tensor, saved, attrs),
  };
}

/** Runs a kernel by name: the backprop kernels (Conv2DBackpropFilter...) have no public op. */
export function runKernel(name: string, inputs: tf.NamedTensorMap, attrs: tf.NamedAttrMap = {}): tf.Tensor {
  return tf.engine().runKernel<tf.Tensor>(name, inputs, attrs);
}

/** The gradient of a broadcast operand: summed over the axes broadcasting stretched, in its own shape. */
export function unbroadcast(grad: tf.Tensor, shape: readonly number[]): tf.Tensor {
  const lead = grad.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < grad.rank; i++) if (i < lead || (shape[i - lead] === 1 && grad.shape[i] !== 1)) axes.push(i);
  return tf.reshape(axes.length ? tf.sum(grad, axes) : grad, [...shape]);
}

/** Axes a reduction kernel reduced, from its `axis` attribute (a number, a list, or absent for all). */
export function reducedAxes(axis: tf.NamedAttrMap[string], rank: number): number[] {
  if (axis === undefined || axis === null) return [...Array(rank).keys()];
  const list = Array.isArray(axis) ? (axis as number[]) : [axis as number];
  return (list.length ? list : [...Array(rank).keys()]).map((a) => (a < 0 ? a + rank : a));
}

/** A reduction's output (or its gradient) with the reduced axes put back as size 1, ready to broadcast. */
export function keepReducedDims(t: tf.Tensor, inputShape: readonly number[], axes: readonly number[]): tf.Tensor {
  return tf.reshape(t, inputShape.map((d, i) => (axes.includes(i) ? 1 : d)));
}
