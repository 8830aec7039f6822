// Reading the small integer constants that shapes are built from: initializers and Constant nodes, and the shape
// vectors exporters assemble from them (torch writes Concat(Unsqueeze(Gather(Shape(x))), Constant, ...)), with
// where each static element lives so that surgery can rewrite it.
import { findAttr } from '../onnx/attributes.js';
import type { GraphIndex } from '../onnx/graph.js';
import type { OnnxModel } from '../onnx/model.js';
import { tensorValues } from '../onnx/tensor.js';
import type { NodeProto, TensorProto } from '../onnx/types.js';

/** The tensor behind a value when it is an initializer or the output of a Constant node holding a tensor. */
export function constantTensor(model: OnnxModel, index: GraphIndex, value: string): TensorProto | undefined {
  const init = index.initializer(value);
  if (init) return index.graphInput(value) ? undefined : init; // an overridable input is not a constant
  const node = index.producer(value);
  if (node?.opType !== 'Constant') return undefined;
  return findAttr(node, 'value')?.t;
}

/** The numbers a constant value holds (any numeric type, int64 as number), or undefined when it is not constant. */
export function constantNumbers(model: OnnxModel, index: GraphIndex, value: string): number[] | undefined {
  const t = constantTensor(model, index, value);
  if (t) {
    const data = tensorValues(t, model.rawBytes(t)).data;
    if (typeof data[0] === 'string') return undefined;
    return Array.from(data as ArrayLike<number | bigint | boolean>, (v) => Number(v));
  }
  const node = index.producer(value);
  if (node?.opType !== 'Constant') return undefined;
  for (const a of node.attribute) {
    if (a.name === 'value_int') return [Number(a.i ?? 0n)];
    if (a.name === 'value_ints') return a.ints.map(Number);
    if (a.name === 'value_float') return [a.f ?? 0];
    if (a.name === 'value_floats') return [...a.floats];
  }
  return undefined;
}

/** One static element of a shape vector: its value and the constant (read by `node`) that holds it. */
export interface ConstantElement {
  value: number;
  node: NodeProto;
  holder: string;
  position: number;
}

/** A shape vector element: static (with where it is stored) or computed at run time. */
export type ShapeElement = ConstantElement | null;

/**
 * A shape vector as far as it is known: `elements` in order (null where computed at run time), or undefined when
 * its length is unknown; `factors` are constants multiplied into computed elements (torch's `kv_heads * n_rep`).
 */
export interface ShapeVector {
  elements?: ShapeElement[];
  factors: ConstantElement[];
}

const PASS = new Set(['Cast', 'Identity']);

/** Resolves the shape vector `value` (a Reshape's shape, an Expand's, Tile's repeats) read by `reader`. */
export function shapeVector(model: OnnxModel, index: GraphIndex, value: string, reader: NodeProto): ShapeVector {
  const factors: ConstantElement[] = [];
  const scalar = (v: string, by: NodeProto, depth: number): ShapeElement => {
    const c = constantNumbers(model, index, v);
    if (c?.length === 1) return { value: c[0], node: by, holder: v, position: 0 };
    const p = index.producer(v);
    if (p && depth < 8) {
      if (PASS.has(p.opType ?? '') || p.opType === 'Squeeze' || p.opType === 'Unsqueeze') return scalar(p.input[0], p, depth + 1);
      if (p.opType === 'Mul') {
        for (const [i, other] of [
          [0, 1],
          [1, 0],
        ]) {
          const k = constantNumbers(model, index, p.input[i]);
          if (k?.length === 1) {
            factors.push({ value: k[0], node: p, holder: p.input[i], position: 0 });
            scalar(p.input[other], p, depth + 1);
          }
        }
      }
    }
    return null;
  };
  const vector = (v: string, by: NodeProto, depth: number): ShapeElement[] | undefined => {
    const c = constantNumbers(model, index, v);
    if (c) return c.map((value, position) => ({ value, node: by, holder: v, position }));
    const p = index.producer(v);
    if (!p || depth > 8) return undefined;
    const op = p.opType ?? '';
    if (PASS.has(op)) return vector(p.input[0], p, depth + 1);
    // Reshape(x, [-1]) flattens a vector; Where(x == -1, 1, x) is torch's expand rewrite: both keep x's layout.
    if (op === 'Reshape') return vector(p.input[0], p, depth + 1);
    if (op === 'Where') return vector(p.input[2], p, depth + 1);
    if (op === 'Unsqueeze') {
      const e = scalar(p.input[0], p, depth + 1);
      return [e];
    }
    if (op === 'Concat') {
      const out: ShapeElement[] = [];
      let known = true;
      for (const part of p.input) {
        const sub = vector(part, p, depth + 1);
        if (sub) out.push(...sub);
        else known = false;
      }
      return known ? out : undefined;
    }
    return undefined;
  };
  const elements = vector(value, reader, 0);
  return { ...(elements ? { elements } : {}), factors };
}
