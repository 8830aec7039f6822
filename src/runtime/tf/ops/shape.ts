// Ops that move data without arithmetic: reshaping, transposing, joining, splitting, slicing, indexing and
// padding. Shape-like inputs (target shapes, axes, starts/ends, pads, repeats) are read on the host, so chains
// such as Shape -> Gather -> Concat -> Reshape work on whatever dimensions the feeds have.
//
// Several ops moved attributes to inputs across opsets (Split's `split`, Slice's `starts`/`ends`, Squeeze's and
// Unsqueeze's `axes`, Pad's `pads`); as a node carries one or the other, each of those is one entry that looks
// for the attribute first.
import * as tf from '@tensorflow/tfjs-core';
import { attrFloat, attrInt, attrInts, attrString, findAttr } from '../../../onnx/attributes.js';
import type { NodeProto } from '../../../onnx/types.js';
import { op, type OpDef, type OpInputs } from '../registry.js';
import { broadcastShapes, broadcastTo, input, int, ints, normalizeAxes, normalizeAxis, OpError, product, scalar } from './util.js';

/** Target shape of Reshape: 0 copies the input's dimension (unless allowzero), -1 is inferred. */
export function reshapeTarget(inShape: readonly number[], shape: readonly number[], allowZero: boolean): number[] {
  const out = shape.map((d, i) => (d === 0 && !allowZero ? inShape[i] : d));
  if (out.some((d) => d === undefined || d < -1)) throw new OpError(`cannot reshape [${inShape.join(', ')}] to [${shape.join(', ')}]`);
  const unknown = out.indexOf(-1);
  if (unknown >= 0) {
    if (out.lastIndexOf(-1) !== unknown) throw new OpError(`shape [${shape.join(', ')}] has more than one -1`);
    const known = product(out.filter((_, i) => i !== unknown));
    out[unknown] = known === 0 ? 0 : product(inShape) / known;
  }
  if (product(out) !== product(inShape) || !out.every(Number.isInteger)) {
    throw new OpError(`cannot reshape [${inShape.join(', ')}] (${product(inShape)} elements) to [${shape.join(', ')}]`);
  }
  return out;
}

/** Indices in [0, dim), with negative ones counted from the end (floor-mod does both). */
function wrapIndices(indices: tf.Tensor, dim: number): tf.Tensor {
  const i = indices.dtype === 'int32' ? indices : tf.cast(indices, 'int32');
  return dim > 0 ? tf.mod(i, int(dim)) : i;
}

function gather(inputs: OpInputs, node: NodeProto): tf.Tensor {
  const x = input(inputs, 0, 'data');
  const axis = normalizeAxis(attrInt(node, 'axis', 0), x.rank);
  return tf.gather(x, wrapIndices(input(inputs, 1, 'indices'), x.shape[axis]), axis);
}

/** Row-major strides of a shape. */
function strides(shape: readonly number[]): number[] {
  const out = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    out[i] = s;
    s *= shape[i];
  }
  return out;
}

/** 0..n-1 laid along `axis` of a tensor of rank `rank` (size 1 elsewhere), to broadcast as a coordinate. */
function coordinate(n: number, axis: number, rank: number): tf.Tensor {
  const shape = new Array<number>(rank).fill(1);
  shape[axis] = n;
  return tf.reshape(tf.range(0, n, 1, 'int32'), shape);
}

/**
 * GatherElements as one gather from the flattened data: each output element's flat index combines its own
 * coordinates with the index it reads along `axis`. tfjs's gather has a gradient, gatherND has none.
 */
function gatherElements(inputs: OpInputs, node: NodeProto): tf.Tensor {
  const x = input(inputs, 0, 'data');
  const indices = input(inputs, 1, 'indices');
  const axis = normalizeAxis(attrInt(node, 'axis', 0), x.rank);
  const xStrides = strides(x.shape);
  let flat = tf.mul(wrapIndices(indices, x.shape[axis]), int(xStrides[axis]));
  for (let d = 0; d < x.rank; d++) {
    if (d !== axis) flat = tf.add(flat, tf.mul(coordinate(indices.shape[d], d, indices.rank), int(xStrides[d])));
  }
  return tf.gather(tf.reshape(x, [-1]), flat);
}

/** GatherND (batch_dims 0): the last axis of `indices` addresses the leading dimensions of the data. */
function gatherND(inputs: OpInputs): tf.Tensor {
  const x = input(inputs, 0, 'data');
  const indices = input(inputs, 1, 'indices');
  const depth = indices.shape[indices.rank - 1];
  const lead = x.shape.slice(0, depth);
  const rest = x.shape.slice(depth);
  const leadStrides = strides(lead);
  const parts = tf.unstack(tf.cast(indices, 'int32'), indices.rank - 1);
  const flat = parts.reduce((acc: tf.Tensor, idx, j) => tf.add(acc, tf.mul(wrapIndices(idx, lead[j]), int(leadStrides[j]))), tf.zeros(indices.shape.slice(0, -1), 'int32'));
  return tf.gather(tf.reshape(x, [product(lead), ...rest]), flat);
}

function scatterND(inputs: OpInputs, node: NodeProto): tf.Tensor {
  const data = input(inputs, 0, 'data');
  const indices = tf.cast(input(inputs, 1, 'indices'), 'int32');
  const updates = input(inputs, 2, 'updates');
  if (attrString(node, 'reduction', 'none') === 'add') return tf.add(data, tf.scatterND(indices, updates, data.shape));
  return tf.tensorScatterUpdate(data, indices, updates);
}

/** Per-axis start, element count and step of an ONNX Slice, with the spec's clamping. */
export function sliceRanges(shape: readonly number[], starts: number[], ends: number[], axes: number[], steps: number[]) {
  return axes.map((axis, i) => {
    const dim = shape[axis];
    const step = steps[i] ?? 1;
    if (step === 0) throw new OpError('Slice step cannot be 0');
    const resolve = (v: number) => (v < 0 ? v + dim : v);
    const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), hi);
    const start = step > 0 ? clamp(resolve(starts[i]), 0, dim) : clamp(resolve(starts[i]), 0, dim - 1);
    const end = step > 0 ? clamp(resolve(ends[i]), 0, dim) : clamp(resolve(ends[i]), -1, dim - 1);
    const count = Math.max(0, Math.ceil((end - start) / step));
    return { axis, start, count, step };
  });
}

/**
 * A contiguous slice covering the selected elements, then a gather for the axes with a step other than 1
 * (tfjs's stridedSlice has no gradient, gather does).
 */
function slice(inputs: OpInputs, node: NodeProto): tf.Tensor {
  const x = input(inputs, 0, 'data');
  const fromAttrs = findAttr(node, 'starts') !== undefined;
  const starts = fromAttrs ? attrInts(node, 'starts') : ints(input(inputs, 1, 'starts'));
  const ends = fromAttrs ? attrInts(node, 'ends') : ints(input(inputs, 2, 'ends'));
  const axesGiven = fromAttrs ? attrInts(node, 'axes', []) : inputs[3] ? ints(inputs[3]) : [];
  const axes = normalizeAxes(axesGiven.length ? axesGiven : starts.map((_, i) => i), x.rank);
  const steps = !fromAttrs && inputs[4] ? ints(inputs[4]) : [];
  if (starts.length !== axes.length || ends.length !== axes.length) throw new OpError('starts, ends and axes differ in length');
  const begin = new Array<number>(x.rank).fill(0);
  const size = [...x.shape];
  const strided: { axis: number; count: number; step: number }[] = [];
  for (const r of sliceRanges(x.shape, starts, ends, axes, steps)) {
    const span = r.count === 0 ? 0 : (r.count - 1) * Math.abs(r.step) + 1;
    begin[r.axis] = r.step > 0 ? r.start : r.start - span + 1;
    size[r.axis] = span;
    if (r.step !== 1 && r.count > 0) strided.push(r);
  }
  let y = tf.slice(x, begin, size);
  for (const { axis, count, step } of strided) {
    const first = step > 0 ? 0 : (count - 1) * -step;
    y = tf.gather(y, tf.range(first, first + count * step, step, 'int32'), axis);
  }
  return y;
}

function split(inputs: OpInputs, node: NodeProto): tf.Tensor[] {
  const x = input(inputs, 0, 'input');
  const axis = normalizeAxis(attrInt(node, 'axis', 0), x.rank);
  const dim = x.shape[axis];
  let sizes = findAttr(node, 'split') ? attrInts(node, 'split') : inputs[1] ? ints(inputs[1]) : undefined;
  if (!sizes) {
    // Equal parts; from opset 18 the last one may be smaller (ceil-sized chunks).
    const parts = attrInt(node, 'num_outputs', node.output.length);
    const chunk = Math.ceil(dim / parts);
    sizes = Array.from({ length: parts }, (_, i) => Math.max(0, Math.min(chunk, dim - i * chunk)));
  }
  if (sizes.reduce((a, b) => a + b, 0) !== dim) throw new OpError(`split sizes [${sizes.join(', ')}] do not add up to dimension ${dim}`);
  return tf.split(x, sizes, axis);
}

function axesOf(inputs: OpInputs, node: NodeProto): number[] | undefined {
  if (findAttr(node, 'axes')) return attrInts(node, 'axes');
  return inputs[1] ? ints(inputs[1]) : undefined;
}

function squeeze(inputs: OpInputs, node: NodeProto): tf.Tensor {
  const x = input(inputs, 0, 'data');
  const axes = axesOf(inputs, node);
  const drop = new Set(axes ? normalizeAxes(axes, x.rank) : x.shape.flatMap((d, i) => (d === 1 ? [i] : [])));
  for (const a of drop) if (x.shape[a] !== 1) throw new OpError(`cannot squeeze axis ${a} of size ${x.shape[a]}`);
  return tf.reshape(x, x.shape.filter((_, i) => !drop.has(i)));
}

function unsqueeze(inputs: OpInputs, node: NodeProto): tf.Tensor {
  const x = input(inputs, 0, 'data');
  const axes = axesOf(inputs, node);
  if (!axes) throw new OpError('axes are required');
  const rank = x.rank + axes.length;
  const inserted = new Set(normalizeAxes(axes, rank));
  const rest = [...x.shape];
  return tf.reshape(x, Array.from({ length: rank }, (_, i) => (inserted.has(i) ? 1 : rest.shift()!)));
}

function expand(inputs: OpInputs): tf.Tensor {
  const x = input(inputs, 0, 'input');
  return broadcastTo(x, broadcastShapes(x.shape, ints(input(inputs, 1, 'shape'))));
}

/** Tile as a broadcast: each repeated axis d is viewed as [1, d], copied to [repeats, d], then merged. */
function tile(inputs: OpInputs): tf.Tensor {
  const x = input(inputs, 0, 'input');
  const repeats = ints(input(inputs, 1, 'repeats'));
  if (repeats.length !== x.rank) throw new OpError(`repeats has ${repeats.length} values for rank ${x.rank}`);
  const split = (d: number, i: number) => (repeats[i] === 1 ? [d] : [1, d]);
  const spread = broadcastTo(tf.reshape(x, x.shape.flatMap(split)), x.shape.flatMap((d, i) => (repeats[i] === 1 ? [d] : [repeats[i], d])));
  return tf.reshape(spread, x.shape.map((d, i) => d * repeats[i]));
}

function flatten(inputs: OpInputs, node: NodeProto): tf.Tensor {
  const x = input(inputs, 0, 'input');
  const axis = attrInt(node, 'axis', 1);
  const at = axis < 0 ? axis + x.rank : axis;
  if (at < 0 || at > x.rank) throw new OpError(`axis ${axis} is out of range for rank ${x.rank}`);
  return tf.reshape(x, [product(x.shape.slice(0, at)), product(x.shape.slice(at))]);
}

function shapeOf(inputs: OpInputs, node: NodeProto): tf.Tensor {
  const x = input(inputs, 0, 'data');
  const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + x.rank : v, 0), x.rank);
  const dims = x.shape.slice(clamp(attrInt(node, 'start', 0)), clamp(attrInt(node, 'end', x.rank)));
  return tf.tensor1d(dims, 'int32');
}

/** Inference-mode Dropout: the identity, with an all-true mask when asked for. */
function dropout(inputs: OpInputs, node: NodeProto): tf.Tensor[] {
  const x = input(inputs, 0, 'data');
  const training = inputs[2] ? scalar(inputs[2]) !== 0 : false;
  const ratio = inputs[1] ? scalar(inputs[1]) : attrFloat(node, 'ratio', 0.5);
  if (training && ratio > 0) throw new OpError('Dropout in training mode draws random numbers, which this executor does not do');
  return [tf.clone(x), tf.cast(tf.onesLike(x), 'bool')];
}

/**
 * Source index along one axis for each output position of a non-constant Pad, for output positions
 * -before .. dim + after - 1 (negative pads crop).
 */
function padIndices(dim: number, before: number, after: number, mode: string): number[] {
  const out: number[] = [];
  for (let i = -before; i < dim + after; i++) {
    if (mode === 'edge') out.push(Math.min(Math.max(i, 0), dim - 1));
    else if (mode === 'wrap') out.push(((i % dim) + dim) % dim);
    else {
      const period = 2 * (dim - 1);
      const m = period === 0 ? 0 : ((i % period) + period) % period;
      out.push(m < dim ? m : period - m);
    }
  }
  return out;
}

function pad(inputs: OpInputs, node: NodeProto): tf.Tensor {
  const x = input(inputs, 0, 'data');
  const mode = attrString(node, 'mode', 'constant');
  const fromAttr = findAttr(node, 'pads') !== undefined || findAttr(node, 'paddings') !== undefined;
  const pads = fromAttr ? attrInts(node, findAttr(node, 'pads') ? 'pads' : 'paddings') : ints(input(inputs, 1, 'pads'));
  const axes = !fromAttr && inputs[3] ? normalizeAxes(ints(inputs[3]), x.rank) : [...Array(x.rank).keys()];
  if (pads.length !== 2 * axes.length) throw new OpError(`pads has ${pads.length} values for ${axes.length} axes`);
  const before = new Array<number>(x.rank).fill(0);
  const after = new Array<number>(x.rank).fill(0);
  axes.forEach((a, i) => {
    before[a] = pads[i];
    after[a] = pads[i + axes.length];
  });
  if (mode === 'constant') {
    const value = fromAttr ? attrFloat(node, 'value', 0) : inputs[2] ? scalar(inputs[2]) : 0;
    // Negative pads crop first; what is left pads with the value.
    const cropped = tf.slice(x, before.map((b) => Math.max(0, -b)), x.shape.map((d, i) => d + Math.min(0, before[i]) + Math.min(0, after[i])));
    return tf.pad(cropped, before.map((b, i) => [Math.max(0, b), Math.max(0, after[i])] as [number, number]), value);
  }
  if (!['reflect', 'edge', 'wrap'].includes(mode)) throw new OpError(`unknown Pad mode '${mode}'`);
  let y = x;
  for (let a = 0; a < x.rank; a++) {
    if (before[a] === 0 && after[a] === 0) continue;
    y = tf.gather(y, tf.tensor1d(padIndices(x.shape[a], before[a], after[a], mode), 'int32'), a);
  }
  return y;
}

/** DepthToSpace / SpaceToDepth as reshape-transpose-reshape; DCR and CRD differ in how depth splits. */
function depthToSpace(inputs: OpInputs, node: NodeProto): tf.Tensor {
  const x = input(inputs, 0, 'input');
  const b = attrInt(node, 'blocksize');
  const [n, c, h, w] = x.shape;
  const crd = attrString(node, 'mode', 'DCR') === 'CRD';
  const blocks = crd ? tf.reshape(x, [n, c / (b * b), b, b, h, w]) : tf.reshape(x, [n, b, b, c / (b * b), h, w]);
  const moved = crd ? tf.transpose(blocks, [0, 1, 4, 2, 5, 3]) : tf.transpose(blocks, [0, 3, 4, 1, 5, 2]);
  return tf.reshape(moved, [n, c / (b * b), h * b, w * b]);
}

function spaceToDepth(inputs: OpInputs, node: NodeProto): tf.Tensor {
  const x = input(inputs, 0, 'input');
  const b = attrInt(node, 'blocksize');
  const [n, c, h, w] = x.shape;
  const blocks = tf.reshape(x, [n, c, h / b, b, w / b, b]);
  return tf.reshape(tf.transpose(blocks, [0, 3, 5, 1, 2, 4]), [n, c * b * b, h / b, w / b]);
}

export const SHAPE_OPS: OpDef[] = [
  op('Reshape', (inputs, node) => {
    const x = input(inputs, 0, 'data');
    return tf.reshape(x, reshapeTarget(x.shape, ints(input(inputs, 1, 'shape')), attrInt(node, 'allowzero', 0) === 1));
  }, { since: 5 }),
  op('Transpose', (inputs, node) => {
    const x = input(inputs, 0, 'data');
    return tf.transpose(x, attrInts(node, 'perm', [...Array(x.rank).keys()].reverse()));
  }),
  op('Concat', (inputs, node) => {
    const parts = inputs.filter((t): t is tf.Tensor => t !== undefined);
    if (parts.length === 0) throw new OpError('needs at least one input');
    const axis = normalizeAxis(attrInt(node, 'axis', 1), parts[0].rank);
    return parts.length === 1 ? tf.clone(parts[0]) : tf.concat(parts, axis);
  }),
  op('Split', split),
  op('Slice', slice),
  op('Squeeze', squeeze),
  op('Unsqueeze', unsqueeze),
  op('Flatten', flatten),
  op('Expand', expand, { since: 8 }),
  op('Tile', tile, { since: 6 }),
  op('Gather', gather),
  op('GatherElements', gatherElements, { since: 11 }),
  op('GatherND', gatherND, {
    since: 11,
    unsupported: (node) => (attrInt(node, 'batch_dims', 0) !== 0 ? 'batch_dims other than 0' : undefined),
  }),
  op('ScatterND', scatterND, {
    since: 11,
    differentiable: false,
    unsupported: (node) => {
      const r = attrString(node, 'reduction', 'none');
      return r === 'none' || r === 'add' ? undefined : `reduction '${r}'`;
    },
  }),
  op('Pad', pad, { since: 2 }),
  op('DepthToSpace', depthToSpace),
  op('SpaceToDepth', spaceToDepth),
  op('Shape', shapeOf, { differentiable: false }),
  op('Size', (inputs) => tf.scalar(input(inputs, 0, 'data').size, 'int32'), { differentiable: false }),
  op('Identity', (inputs) => tf.clone(input(inputs, 0, 'input'))),
  op('Dropout', dropout, { since: 7 }),
];
