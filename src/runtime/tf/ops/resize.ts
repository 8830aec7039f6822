// Resize (and the older Upsample) as separable interpolation: for each axis whose size or sampling changes,
// every output position reads a few input positions ("taps") with weights — 1 tap for nearest, 2 for linear,
// 4 for cubic — computed on the host from ONNX's coordinate transformation formulas. Each axis is then gathers
// and a weighted sum, which follows the spec's formulas exactly for every mode and is differentiable (tfjs's
// own resize kernels implement only a few coordinate conventions).
import * as tf from '@tensorflow/tfjs-core';
import { attrFloat, attrFloats, attrInt, attrInts, attrString } from '../../../onnx/attributes.js';
import type { NodeProto } from '../../../onnx/types.js';
import { op, type OpContext, type OpDef, type OpInputs } from '../registry.js';
import { input, ints, normalizeAxes, OpError } from './util.js';

interface ResizeOptions {
  mode: 'nearest' | 'linear' | 'cubic';
  coordinates: string;
  /** 'simple' is opset < 11 (and Upsample): floor when upsampling, ceil when downsampling. */
  nearestMode: string;
  cubicA: number;
  excludeOutside: boolean;
  extrapolationValue: number;
}

/** Per output position: the input indices read and their weights; `outside` marks positions that extrapolate. */
interface Taps {
  indices: number[][];
  weights: number[][];
  outside: boolean[];
}

function sourceCoordinate(x: number, scale: number, inSize: number, outSize: number, roi: [number, number], how: string): number {
  switch (how) {
    case 'half_pixel':
      return (x + 0.5) / scale - 0.5;
    case 'half_pixel_symmetric': {
      const adjustment = outSize / (scale * inSize);
      return (inSize / 2) * (1 - adjustment) + (x + 0.5) / scale - 0.5;
    }
    case 'pytorch_half_pixel':
      return outSize > 1 ? (x + 0.5) / scale - 0.5 : 0;
    case 'align_corners':
      return outSize === 1 ? 0 : (x * (inSize - 1)) / (outSize - 1);
    case 'asymmetric':
      return x / scale;
    case 'tf_half_pixel_for_nn':
      return (x + 0.5) / scale;
    case 'tf_crop_and_resize':
      return outSize > 1 ? roi[0] * (inSize - 1) + (x * (roi[1] - roi[0]) * (inSize - 1)) / (outSize - 1) : 0.5 * (roi[0] + roi[1]) * (inSize - 1);
    default:
      throw new OpError(`unknown coordinate_transformation_mode '${how}'`);
  }
}

function nearestIndex(x: number, mode: string, downsampling: boolean): number {
  switch (mode) {
    case 'round_prefer_floor':
      return x - Math.floor(x) === 0.5 ? Math.floor(x) : Math.round(x);
    case 'round_prefer_ceil':
      return Math.round(x);
    case 'floor':
      return Math.floor(x);
    case 'ceil':
      return Math.ceil(x);
    case 'simple':
      return downsampling ? Math.ceil(x) : Math.trunc(x);
    default:
      throw new OpError(`unknown nearest_mode '${mode}'`);
  }
}

function cubicCoefficients(s: number, a: number): number[] {
  const far = (t: number) => ((a * t - 5 * a) * t + 8 * a) * t - 4 * a;
  const near = (t: number) => ((a + 2) * t - (a + 3)) * t * t + 1;
  return [far(s + 1), near(s), near(1 - s), far(2 - s)];
}

function axisTaps(inSize: number, outSize: number, scale: number, roi: [number, number], o: ResizeOptions): Taps {
  const taps: Taps = { indices: [], weights: [], outside: [] };
  const clampIndex = (i: number) => Math.min(Math.max(i, 0), inSize - 1);
  for (let x = 0; x < outSize; x++) {
    const src = sourceCoordinate(x, scale, inSize, outSize, roi, o.coordinates);
    taps.outside.push(o.coordinates === 'tf_crop_and_resize' && (src < 0 || src > inSize - 1));
    if (o.mode === 'nearest') {
      taps.indices.push([clampIndex(nearestIndex(src, o.nearestMode, scale < 1))]);
      taps.weights.push([1]);
    } else if (o.mode === 'linear') {
      const c = Math.min(Math.max(src, 0), inSize - 1);
      const lo = Math.floor(c);
      taps.indices.push([lo, Math.min(lo + 1, inSize - 1)]);
      taps.weights.push([1 - (c - lo), c - lo]);
    } else {
      const base = Math.floor(src);
      const positions = [base - 1, base, base + 1, base + 2];
      let weights = cubicCoefficients(src - base, o.cubicA);
      if (o.excludeOutside) {
        weights = weights.map((w, k) => (positions[k] < 0 || positions[k] >= inSize ? 0 : w));
        const total = weights.reduce((s, w) => s + w, 0);
        weights = weights.map((w) => w / total);
      }
      taps.indices.push(positions.map(clampIndex));
      taps.weights.push(weights);
    }
  }
  return taps;
}

/** Whether every output position reads exactly its own input position (the axis needs no work). */
function isIdentity(t: Taps, inSize: number): boolean {
  if (t.indices.length !== inSize || t.outside.some(Boolean)) return false;
  return t.indices.every((idx, x) => {
    let own = 0;
    for (let k = 0; k < idx.length; k++) {
      if (idx[k] === x) own += t.weights[x][k];
      else if (Math.abs(t.weights[x][k]) > 1e-9) return false;
    }
    return Math.abs(own - 1) < 1e-6;
  });
}

/** Interpolates along one axis: sum over taps of gather(x, indices_k) * weights_k, then extrapolation. */
function resizeAxis(x: tf.Tensor, axis: number, taps: Taps, extrapolationValue: number): tf.Tensor {
  const out = taps.indices.length;
  const along = (values: number[]) => tf.reshape(tf.tensor1d(values), x.shape.map((_, a) => (a === axis ? out : 1)));
  let y: tf.Tensor | undefined;
  for (let k = 0; k < taps.indices[0].length; k++) {
    const gathered = tf.gather(x, tf.tensor1d(taps.indices.map((idx) => idx[k]), 'int32'), axis);
    const term = taps.weights.every((w) => w[k] === 1) ? gathered : tf.mul(gathered, along(taps.weights.map((w) => w[k])));
    y = y ? tf.add(y, term) : term;
  }
  if (taps.outside.some(Boolean)) {
    const outside = along(taps.outside.map((o) => (o ? 1 : 0)));
    y = tf.add(tf.mul(y!, tf.sub(1, outside)), tf.mul(outside, extrapolationValue));
  }
  return y!;
}

/** Output sizes and per-axis scales from `sizes` (with keep_aspect_ratio_policy) or `scales`. */
function targetGeometry(x: tf.Tensor, axes: number[], scales: number[] | undefined, sizes: number[] | undefined, policy: string) {
  const scale = new Array<number>(x.rank).fill(1);
  const outSizes = [...x.shape];
  if (sizes && sizes.length) {
    if (sizes.length !== axes.length) throw new OpError(`sizes has ${sizes.length} values for ${axes.length} axes`);
    const ratios = axes.map((a, i) => sizes[i] / x.shape[a]);
    const common = policy === 'not_larger' ? Math.min(...ratios) : policy === 'not_smaller' ? Math.max(...ratios) : undefined;
    axes.forEach((a, i) => {
      scale[a] = common ?? ratios[i];
      outSizes[a] = common === undefined ? sizes[i] : Math.round(common * x.shape[a]);
    });
  } else if (scales && scales.length) {
    if (scales.length !== axes.length) throw new OpError(`scales has ${scales.length} values for ${axes.length} axes`);
    axes.forEach((a, i) => {
      scale[a] = scales[i];
      outSizes[a] = Math.floor(x.shape[a] * scales[i]);
    });
  } else {
    throw new OpError('neither scales nor sizes is given');
  }
  return { scale, outSizes };
}

function floats(t: tf.Tensor | undefined): number[] | undefined {
  return t && t.size > 0 ? Array.from(t.dataSync() as ArrayLike<number>) : undefined;
}

function interpolate(x: tf.Tensor, scale: number[], outSizes: number[], roi: number[] | undefined, axes: number[], o: ResizeOptions): tf.Tensor {
  let y = x;
  for (const a of axes) {
    const i = axes.indexOf(a);
    const box: [number, number] = roi ? [roi[i], roi[i + axes.length]] : [0, 1];
    const taps = axisTaps(x.shape[a], outSizes[a], scale[a], box, o);
    if (!isIdentity(taps, x.shape[a])) y = resizeAxis(y, a, taps, o.extrapolationValue);
  }
  if (y === x) return tf.clone(x);
  return y.dtype === x.dtype ? y : tf.cast(tf.round(y), x.dtype);
}

function resize(inputs: OpInputs, node: NodeProto, ctx: OpContext): tf.Tensor {
  const x = input(inputs, 0, 'X');
  const modern = ctx.opset >= 11;
  const axes = normalizeAxes(attrInts(node, 'axes', [...Array(x.rank).keys()]), x.rank);
  const scales = floats(modern ? inputs[2] : inputs[1]);
  const sizes = modern && inputs[3] && inputs[3].size > 0 ? ints(inputs[3]) : undefined;
  const { scale, outSizes } = targetGeometry(x, axes, scales, sizes, attrString(node, 'keep_aspect_ratio_policy', 'stretch'));
  const options: ResizeOptions = {
    mode: attrString(node, 'mode', 'nearest') as ResizeOptions['mode'],
    coordinates: modern ? attrString(node, 'coordinate_transformation_mode', 'half_pixel') : 'asymmetric',
    nearestMode: modern ? attrString(node, 'nearest_mode', 'round_prefer_floor') : 'simple',
    cubicA: attrFloat(node, 'cubic_coeff_a', -0.75),
    excludeOutside: attrInt(node, 'exclude_outside', 0) === 1,
    extrapolationValue: attrFloat(node, 'extrapolation_value', 0),
  };
  // roi lists starts then ends, for `axes` (opset 18) or for every axis.
  const roi = modern ? floats(inputs[1]) : undefined;
  if (roi && roi.length === 2 * x.rank && axes.length !== x.rank) return interpolate(x, scale, outSizes, roi, [...Array(x.rank).keys()], options);
  if (roi && roi.length !== 2 * axes.length) throw new OpError(`roi has ${roi.length} values for ${axes.length} axes`);
  return interpolate(x, scale, outSizes, roi, axes, options);
}

function upsample(inputs: OpInputs, node: NodeProto, ctx: OpContext): tf.Tensor {
  const x = input(inputs, 0, 'X');
  const scales = ctx.opset >= 9 ? floats(input(inputs, 1, 'scales'))! : attrFloats(node, 'scales');
  const axes = [...Array(x.rank).keys()];
  const { scale, outSizes } = targetGeometry(x, axes, scales, undefined, 'stretch');
  const mode = attrString(node, 'mode', 'nearest');
  const options: ResizeOptions = {
    mode: mode === 'bilinear' ? 'linear' : (mode as ResizeOptions['mode']),
    coordinates: 'asymmetric',
    nearestMode: 'simple',
    cubicA: -0.75,
    excludeOutside: false,
    extrapolationValue: 0,
  };
  return interpolate(x, scale, outSizes, undefined, axes, options);
}

function resizeUnsupported(node: NodeProto): string | undefined {
  if (attrInt(node, 'antialias', 0) !== 0) return 'antialiased Resize';
  const mode = attrString(node, 'mode', 'nearest');
  return ['nearest', 'linear', 'cubic'].includes(mode) ? undefined : `Resize mode '${mode}'`;
}

export const RESIZE_OPS: OpDef[] = [
  op('Resize', resize, { since: 10, unsupported: resizeUnsupported }),
  op('Upsample', upsample, { since: 7, until: 9 }),
];
