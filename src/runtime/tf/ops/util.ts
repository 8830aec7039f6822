// Small helpers the op files share: reading the host-side values of shape-like inputs, axis normalisation and
// the checks that turn a malformed node into a one-line error.
import * as tf from '@tensorflow/tfjs-core';
import { OnnxCompressError } from '../../../errors.js';
import type { OpInputs } from '../registry.js';

/** An error in a node's inputs or attributes; the interpreter prefixes the model and node. */
export class OpError extends OnnxCompressError {
  constructor(message: string) {
    super('bad-model', message);
  }
}

/** The i-th input, which the op cannot do without. */
export function input(inputs: OpInputs, i: number, name: string): tf.Tensor {
  const t = inputs[i];
  if (!t) throw new OpError(`input ${i} (${name}) is required`);
  return t;
}

/**
 * The values of a small integer tensor (a shape, axes, pads, repeats) on the host. Shape arithmetic reads them
 * synchronously because the next op's attributes depend on them; they are a handful of elements.
 */
export function ints(t: tf.Tensor): number[] {
  return Array.from(t.dataSync() as ArrayLike<number>, Number);
}

/** A scalar's value on the host (Clip bounds, ConstantOfShape-like fill values). */
export function scalar(t: tf.Tensor): number {
  if (t.size !== 1) throw new OpError(`expected a single value, got shape [${t.shape.join(', ')}]`);
  return Number(t.dataSync()[0]);
}

/** ONNX allows negative axes counted from the end. */
export function normalizeAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= Math.max(rank, 1)) throw new OpError(`axis ${axis} is out of range for rank ${rank}`);
  return a;
}

export function normalizeAxes(axes: readonly number[], rank: number): number[] {
  const out = axes.map((a) => normalizeAxis(a, rank));
  if (new Set(out).size !== out.length) throw new OpError(`axes [${axes.join(', ')}] repeat an axis`);
  return out;
}

export function product(dims: readonly number[]): number {
  return dims.reduce((p, d) => p * d, 1);
}

/** The inverse of a permutation, to transpose back. */
export function inversePermutation(perm: readonly number[]): number[] {
  const inv = new Array<number>(perm.length);
  perm.forEach((p, i) => (inv[p] = i));
  return inv;
}

/** The permutation that moves `axis` to the end, keeping the other axes in order. */
export function axisToLast(axis: number, rank: number): number[] {
  const perm = [...Array(rank).keys()].filter((a) => a !== axis);
  perm.push(axis);
  return perm;
}

/** Applies `f` along `axis` by moving that axis last (tfjs ops such as softmax work on the last axis only). */
export function alongLastAxis(x: tf.Tensor, axis: number, f: (t: tf.Tensor) => tf.Tensor): tf.Tensor {
  if (axis === x.rank - 1) return f(x);
  const perm = axisToLast(axis, x.rank);
  return tf.transpose(f(tf.transpose(x, perm)), inversePermutation(perm));
}

/** Numpy broadcasting of two shapes. */
export function broadcastShapes(a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new OpError(`shapes [${a.join(', ')}] and [${b.join(', ')}] cannot be broadcast`);
    out.push(da === 1 ? db : da);
  }
  return out;
}

/**
 * An int32 scalar. A plain number operand is float32 to tfjs, and mixing it into integer arithmetic would
 * silently turn the result into float32.
 */
export function int(value: number): tf.Tensor {
  return tf.scalar(value, 'int32');
}

/** Integer tensors stay integer, everything else is computed in float32. */
export function isFloat(t: tf.Tensor): boolean {
  return t.dtype === 'float32';
}

export function toFloat(t: tf.Tensor): tf.Tensor {
  return t.dtype === 'float32' ? t : tf.cast(t, 'float32');
}

/** t with its last two axes swapped (a batch of matrices transposed). */
export function transposeLastTwo(t: tf.Tensor): tf.Tensor {
  const perm = [...Array(t.rank).keys()];
  [perm[t.rank - 2], perm[t.rank - 1]] = [perm[t.rank - 1], perm[t.rank - 2]];
  return tf.transpose(t, perm);
}

/**
 * op(a) x op(b) with explicit transposes: wasm's matrix product is several times slower with its transpose
 * flags set than a transpose followed by a plain product (7 ms against 0.7 ms for a 64x128 by 64x384 weight
 * gradient).
 */
export function matMul(a: tf.Tensor, b: tf.Tensor, transposeA = false, transposeB = false): tf.Tensor {
  return tf.matMul(transposeA ? transposeLastTwo(a) : a, transposeB ? transposeLastTwo(b) : b);
}

/** XNNPACK, behind wasm's binary kernels, broadcasts tensors of at most 6 dimensions. */
const NATIVE_BROADCAST_RANK = 6;

/**
 * x broadcast to `shape` as a real copy. Adding zeros of the target shape runs wasm's native broadcasting
 * kernel, where tf.broadcastTo and tf.tile go through a far slower generic Tile kernel (over 20x on a KV cache).
 */
export function broadcastTo(x: tf.Tensor, shape: number[]): tf.Tensor {
  if (x.shape.length === shape.length && x.shape.every((d, i) => d === shape[i])) return tf.clone(x);
  if (shape.length > NATIVE_BROADCAST_RANK) return tf.broadcastTo(x, shape);
  if (x.dtype === 'bool') return tf.logicalOr(x, tf.zeros(shape, 'bool'));
  return tf.add(x, tf.zeros(shape, x.dtype));
}
