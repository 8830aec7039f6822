// Gradients of matrix products, convolutions and pools. The executor runs convolutions and pools 'valid' and
// undilated (ops/conv.ts, ops/pool.ts), but these follow the kernels' attributes as given.
import * as tf from '@tensorflow/tfjs-core';
import { matMul } from '../ops/util.js';
import { gradient, runKernel, unbroadcast } from './common.js';

/** d(A·B): the four transpose combinations, then summed over broadcast batch dimensions. */
const batchMatMul = gradient('BatchMatMul', { inputs: ['a', 'b'] }, (dy, [a, b], attrs) => {
  const ta = attrs.transposeA as boolean;
  const tb = attrs.transposeB as boolean;
  const da = !ta ? matMul(dy, b, false, !tb) : matMul(b, dy, tb, true);
  const db = !tb ? matMul(a, dy, !ta, false) : matMul(dy, a, true, ta);
  return { a: () => unbroadcast(da, a.shape), b: () => unbroadcast(db, b.shape) };
});

function convAttrs(attrs: tf.NamedAttrMap): tf.NamedAttrMap {
  return { strides: attrs.strides, pad: attrs.pad, dataFormat: attrs.dataFormat ?? 'NHWC', dimRoundingMode: attrs.dimRoundingMode, dilations: attrs.dilations ?? 1 };
}

export const NN_GRADIENTS: tf.GradConfig[] = [
  batchMatMul,
  gradient('Conv2D', { inputs: ['x', 'filter'] }, (dy, [x, filter], attrs) => ({
    x: () => runKernel('Conv2DBackpropInput', { dy, filter }, { ...convAttrs(attrs), inputShape: x.shape }),
    filter: () => runKernel('Conv2DBackpropFilter', { x, dy }, { ...convAttrs(attrs), filterShape: filter.shape }),
  })),
  // The transposed convolution (ConvTranspose): its input is `dy`, and its own gradients are a convolution
  // and a filter gradient with the roles of input and output swapped.
  gradient('Conv2DBackpropInput', { inputs: ['dy', 'filter'] }, (ddx, [dy, filter], attrs) => ({
    dy: () => tf.conv2d(ddx as tf.Tensor4D, filter as tf.Tensor4D, attrs.strides as [number, number], attrs.pad as 'valid'),
    filter: () => runKernel('Conv2DBackpropFilter', { x: ddx, dy }, { ...convAttrs(attrs), filterShape: filter.shape }),
  })),
  gradient('DepthwiseConv2dNative', { inputs: ['x', 'filter'] }, (dy, [x, filter], attrs) => ({
    x: () => runKernel('DepthwiseConv2dNativeBackpropInput', { dy, filter }, { ...convAttrs(attrs), inputShape: x.shape }),
    filter: () => runKernel('DepthwiseConv2dNativeBackpropFilter', { x, dy }, { ...convAttrs(attrs), filterShape: filter.shape }),
  })),
  gradient('Conv3D', { inputs: ['x', 'filter'] }, (dy, [x, filter], attrs) => ({
    x: () => runKernel('Conv3DBackpropInputV2', { dy, filter }, { strides: attrs.strides, pad: attrs.pad, inputShape: x.shape }),
    filter: () => runKernel('Conv3DBackpropFilterV2', { x, dy }, { strides: attrs.strides, pad: attrs.pad, filterShape: filter.shape }),
  })),
  gradient('Conv3DBackpropInputV2', { inputs: ['dy', 'filter'] }, (ddx, [dy, filter], attrs) => ({
    dy: () => tf.conv3d(ddx as tf.Tensor5D, filter as tf.Tensor5D, attrs.strides as [number, number, number], attrs.pad as 'valid'),
    filter: () => runKernel('Conv3DBackpropFilterV2', { x: ddx, dy }, { strides: attrs.strides, pad: attrs.pad, filterShape: filter.shape }),
  })),
  gradient('MaxPool', { inputs: ['x'], output: true }, (dy, [x, y], attrs) => ({
    x: () => runKernel('MaxPoolGrad', { dy, input: x, output: y }, attrs),
  })),
  gradient('AvgPool', { inputs: ['x'] }, (dy, [x], attrs) => ({ x: () => runKernel('AvgPoolGrad', { dy, input: x }, attrs) })),
  gradient('MaxPool3D', { inputs: ['x'] }, (dy, [x], attrs) => ({ x: () => runKernel('MaxPool3DGrad', { dy, input: x }, attrs) })),
  gradient('AvgPool3D', { inputs: ['x'] }, (dy, [x], attrs) => ({ x: () => runKernel('AvgPool3DGrad', { dy, input: x }, attrs) })),
];
