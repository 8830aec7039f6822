// Conv and ConvTranspose over 1-D to 3-D inputs. Padding is applied explicitly and dilation by spreading the
// kernel, so the tfjs kernels always run 'valid' and undilated: that sidesteps their limits (no dilation
// together with strides, no dilation in 3-D or transposed convolutions) and keeps the gradients simple.
// Groups run as depthwise convolutions where tfjs has them (2-D, one group per input channel), otherwise
// group by group.
import * as tf from '@tensorflow/tfjs-core';
import { attrInt, attrInts, attrString } from '../../../onnx/attributes.js';
import type { NodeProto } from '../../../onnx/types.js';
import { op, type OpDef, type OpInputs } from '../registry.js';
import { channelsFirst, channelsLast, checkSpatialRank, dilatedExtent, dilateKernel, liftTo2d, padSpatial, slidingWindow, type Window } from './spatial.js';
import { input } from './util.js';

/** One group's convolution, channels-last input and [k..., Cin, Cout] kernel. */
function convValid(x: tf.Tensor, kernel: tf.Tensor, strides: number[]): tf.Tensor {
  if (x.rank === 4) return tf.conv2d(x as tf.Tensor4D, kernel as tf.Tensor4D, strides as [number, number], 'valid');
  return tf.conv3d(x as tf.Tensor5D, kernel as tf.Tensor5D, strides as [number, number, number], 'valid');
}

function conv(inputs: OpInputs, node: NodeProto): tf.Tensor {
  const x = input(inputs, 0, 'X');
  const w = input(inputs, 1, 'W');
  const spatial = x.rank - 2;
  checkSpatialRank(spatial);
  const group = attrInt(node, 'group', 1);
  let window = slidingWindow(node, x.shape.slice(2), w.shape.slice(2));
  let xs = channelsLast(x);
  // W [M, C/group, k...] -> [k..., C/group, M], with the dilation spread into the kernel.
  let kernel = dilateKernel(tf.transpose(w, [...[...Array(spatial).keys()].map((i) => i + 2), 1, 0]), [...Array(spatial).keys()], window.dilations);
  if (spatial === 1) {
    [xs, window] = liftTo2d(xs, window);
    kernel = tf.expandDims(kernel, 0);
  }
  xs = padSpatial(xs, window.before, window.after);
  const inChannels = x.shape[1];
  let y: tf.Tensor;
  if (group === 1) {
    y = convValid(xs, kernel, window.strides);
  } else if (group === inChannels && xs.rank === 4) {
    // Depthwise: output channel c * multiplier + q reads input channel c; tfjs wants [kh, kw, C, multiplier].
    const [kh, kw, , outChannels] = kernel.shape;
    const depthwise = tf.reshape(kernel, [kh, kw, inChannels, outChannels / inChannels]);
    y = tf.depthwiseConv2d(xs as tf.Tensor4D, depthwise as tf.Tensor4D, window.strides as [number, number], 'valid');
  } else {
    const xParts = tf.split(xs, group, xs.rank - 1);
    const kParts = tf.split(kernel, group, kernel.rank - 1);
    y = tf.concat(xParts.map((part, g) => convValid(part, kParts[g], window.strides)), xs.rank - 1);
  }
  if (inputs[2]) y = tf.add(y, inputs[2]);
  if (spatial === 1) y = tf.squeeze(y, [1]);
  return channelsFirst(y);
}

/**
 * ConvTranspose: the full transposed convolution ((in - 1) * stride + dilated kernel per axis), cropped by the
 * pads and extended with zeros for output_padding. With output_shape given, the pads follow from it (ONNX's
 * rule: SAME_UPPER puts the smaller half first, anything else the larger half).
 */
function convTranspose(inputs: OpInputs, node: NodeProto): tf.Tensor {
  const x = input(inputs, 0, 'X');
  const w = input(inputs, 1, 'W');
  const spatial = x.rank - 2;
  checkSpatialRank(spatial);
  const group = attrInt(node, 'group', 1);
  const inSizes = x.shape.slice(2);
  const kernelShape = attrInts(node, 'kernel_shape', w.shape.slice(2));
  const window = slidingWindow(node, inSizes, kernelShape);
  const extent = dilatedExtent(kernelShape, window.dilations);
  const outputPadding = attrInts(node, 'output_padding', new Array(spatial).fill(0));
  const full = inSizes.map((n, i) => (n - 1) * window.strides[i] + extent[i]);
  const { before, outSizes } = transposeCrop(node, inSizes, full, window, outputPadding);

  // W [C, M/group, k...] -> [k..., M/group, C] (tfjs's [k..., out, in]).
  let kernel = dilateKernel(tf.transpose(w, [...[...Array(spatial).keys()].map((i) => i + 2), 1, 0]), [...Array(spatial).keys()], window.dilations);
  let xs = channelsLast(x);
  let strides = window.strides;
  let fullSizes = full;
  if (spatial === 1) {
    xs = tf.expandDims(xs, 1);
    kernel = tf.expandDims(kernel, 0);
    strides = [1, ...strides];
    fullSizes = [1, ...full];
  }
  const outPerGroup = kernel.shape[kernel.rank - 2];
  const transposed = (part: tf.Tensor, k: tf.Tensor) => {
    const outShape = [x.shape[0], ...fullSizes, outPerGroup];
    return part.rank === 4
      ? tf.conv2dTranspose(part as tf.Tensor4D, k as tf.Tensor4D, outShape as [number, number, number, number], strides as [number, number], 'valid')
      : tf.conv3dTranspose(part as tf.Tensor5D, k as tf.Tensor5D, outShape as [number, number, number, number, number], strides as [number, number, number], 'valid');
  };
  let y: tf.Tensor;
  if (group === 1) {
    y = transposed(xs, kernel);
  } else {
    const xParts = tf.split(xs, group, xs.rank - 1);
    const kParts = tf.split(kernel, group, kernel.rank - 1);
    y = tf.concat(xParts.map((part, g) => transposed(part, kParts[g])), xs.rank - 1);
  }
  if (spatial === 1) y = tf.squeeze(y, [1]);
  // Crop [before, before + out) per axis; what lies past the full output (output_padding) is zero.
  const kept = outSizes.map((o, i) => Math.max(0, Math.min(o, full[i] - before[i])));
  y = tf.slice(y, [0, ...before, 0], [-1, ...kept, -1]);
  y = padSpatial(y, new Array(spatial).fill(0), outSizes.map((o, i) => o - kept[i]));
  if (inputs[2]) y = tf.add(y, inputs[2]);
  return channelsFirst(y);
}

function transposeCrop(node: NodeProto, inSizes: number[], full: number[], window: Window, outputPadding: number[]) {
  const outputShape = attrInts(node, 'output_shape', []);
  const autoPad = attrString(node, 'auto_pad', 'NOTSET');
  if (outputShape.length === 0 && (autoPad === 'NOTSET' || autoPad === 'VALID')) {
    const before = autoPad === 'VALID' ? inSizes.map(() => 0) : window.before;
    const after = autoPad === 'VALID' ? inSizes.map(() => 0) : window.after;
    return { before, outSizes: full.map((f, i) => f + outputPadding[i] - before[i] - after[i]) };
  }
  const outSizes = outputShape.length ? outputShape.slice(-inSizes.length) : inSizes.map((n, i) => n * window.strides[i]);
  const total = outSizes.map((o, i) => Math.max(0, full[i] + outputPadding[i] - o));
  const before = total.map((t) => (autoPad === 'SAME_UPPER' ? Math.floor(t / 2) : t - Math.floor(t / 2)));
  return { before, outSizes };
}

export const CONV_OPS: OpDef[] = [
  op('Conv', conv, {
    unsupported: (node) => (attrInts(node, 'kernel_shape', []).length > 3 ? 'convolutions over more than 3 spatial axes' : undefined),
  }),
  op('ConvTranspose', convTranspose, {
    unsupported: (node) => (attrInts(node, 'kernel_shape', []).length > 3 ? 'convolutions over more than 3 spatial axes' : undefined),
  }),
];
