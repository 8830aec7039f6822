// MaxPool, AveragePool and the global pools over 1-D to 3-D inputs. Like convolutions, pools run 'valid' on an
// explicitly padded input. AveragePool divides by the number of cells that count (count_include_pad decides
// whether explicit pads do; the extra cells ceil_mode adds never do), computed by pooling a mask of ones.
import * as tf from '@tensorflow/tfjs-core';
import { attrInt, attrInts } from '../../../onnx/attributes.js';
import type { NodeProto } from '../../../onnx/types.js';
import { op, type OpDef, type OpInputs } from '../registry.js';
import { channelsFirst, channelsLast, checkSpatialRank, dilatedExtent, liftTo2d, padSpatial, slidingWindow, type Window } from './spatial.js';
import { input, OpError } from './util.js';

type PoolKind = 'max' | 'avg';

/**
 * Padding ceil_mode adds after each axis so that a last, partial window exists. As in ONNX Runtime (and
 * PyTorch), a window that would start in the end padding is dropped.
 */
function ceilPadding(inSizes: readonly number[], window: Window, extent: readonly number[]): number[] {
  return inSizes.map((n, i) => {
    const padded = n + window.before[i] + window.after[i];
    let out = Math.ceil((padded - extent[i]) / window.strides[i]) + 1;
    if ((out - 1) * window.strides[i] >= n + window.before[i]) out -= 1;
    return Math.max(0, (out - 1) * window.strides[i] + extent[i] - padded);
  });
}

function poolValid(x: tf.Tensor, kind: PoolKind, w: Window): tf.Tensor {
  if (w.dilations.some((d) => d !== 1)) {
    // tfjs pools dilate only with unit strides: pool at every position, then keep every stride-th one.
    let y = tf.pool(x as tf.Tensor4D, w.kernel as [number, number], kind, 'valid', w.dilations as [number, number], 1);
    w.strides.forEach((s, i) => {
      if (s > 1) y = tf.gather(y, tf.range(0, y.shape[i + 1], s, 'int32'), i + 1);
    });
    return y;
  }
  if (x.rank === 4) {
    const args = [x as tf.Tensor4D, w.kernel as [number, number], w.strides as [number, number], 'valid'] as const;
    return kind === 'max' ? tf.maxPool(...args) : tf.avgPool(...args);
  }
  const args = [x as tf.Tensor5D, w.kernel as [number, number, number], w.strides as [number, number, number], 'valid'] as const;
  return kind === 'max' ? tf.maxPool3d(...args) : tf.avgPool3d(...args);
}

function pool(kind: PoolKind) {
  return (inputs: OpInputs, node: NodeProto): tf.Tensor => {
    const x = input(inputs, 0, 'X');
    const spatial = x.rank - 2;
    checkSpatialRank(spatial);
    const inSizes = x.shape.slice(2);
    let window = slidingWindow(node, inSizes, attrInts(node, 'kernel_shape'));
    const extent = dilatedExtent(window.kernel, window.dilations);
    const extra = attrInt(node, 'ceil_mode', 0) === 1 ? ceilPadding(inSizes, window, extent) : inSizes.map(() => 0);
    // tfjs pools float32 only; integer inputs (uint8 images) pool exactly in float and convert back.
    let xs = channelsLast(x.dtype === 'float32' ? x : tf.cast(x, 'float32'));
    if (spatial === 1) [xs, window] = liftTo2d(xs, window);
    const lifted = (v: number[], one: number) => (spatial === 1 ? [one, ...v] : v);
    const extraAfter = lifted(extra, 0).map((e, i) => e + window.after[i]);
    let y: tf.Tensor;
    if (kind === 'max') {
      y = poolValid(padSpatial(xs, window.before, extraAfter, -Infinity), 'max', window);
    } else {
      y = poolValid(padSpatial(xs, window.before, extraAfter, 0), 'avg', window);
      const countPads = attrInt(node, 'count_include_pad', 0) === 1;
      if (window.before.some((b) => b > 0) || extraAfter.some((a) => a > 0)) {
        // Cells that count are 1: the input, plus the explicit pads when count_include_pad.
        const sizes = xs.shape.slice(1, -1);
        let mask: tf.Tensor = tf.ones([1, ...sizes, 1]);
        if (countPads) mask = padSpatial(mask, window.before, window.after, 1);
        mask = padSpatial(mask, countPads ? window.before.map(() => 0) : window.before, countPads ? lifted(extra, 0) : extraAfter, 0);
        y = tf.div(y, poolValid(mask, 'avg', window));
      }
    }
    if (spatial === 1) y = tf.squeeze(y, [1]);
    y = channelsFirst(y);
    return x.dtype === 'float32' ? y : tf.cast(y, x.dtype);
  };
}

function poolUnsupported(node: NodeProto): string | undefined {
  if (node.output.length > 1 && node.output[1] !== '') return 'the Indices output of MaxPool';
  const dilated = attrInts(node, 'dilations', []).some((d) => d !== 1);
  if (dilated && attrInts(node, 'kernel_shape', []).length === 3) return 'dilated 3-D pooling';
  return undefined;
}

function globalPool(reduce: (x: tf.Tensor, axes: number[]) => tf.Tensor) {
  return (inputs: OpInputs): tf.Tensor => {
    const x = input(inputs, 0, 'X');
    if (x.rank < 3) throw new OpError(`expected an N, C, D1... input, got rank ${x.rank}`);
    return reduce(x, [...Array(x.rank - 2).keys()].map((i) => i + 2));
  };
}

export const POOL_OPS: OpDef[] = [
  op('MaxPool', pool('max'), { unsupported: poolUnsupported }),
  op('AveragePool', pool('avg'), { unsupported: poolUnsupported }),
  op('GlobalAveragePool', globalPool((x, axes) => tf.mean(x, axes, true))),
  op('GlobalMaxPool', globalPool((x, axes) => tf.max(x, axes, true))),
];
