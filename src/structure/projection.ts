// Weight-carrying projections as exporters and our quantizers write them: MatMul by an [in, out] initializer (or by
// a DequantizeLinear of one: QDQ weights; or by a Transpose of a table: a tied lm_head), Gemm, MatMulNBits, each
// with an optional bias (Gemm's C, MatMulNBits' bias input, or an Add right after).
import { attrInt } from '../onnx/attributes.js';
import { nodeLabel, type GraphIndex } from '../onnx/graph.js';
import type { GraphProto, NodeProto, TensorProto } from '../onnx/types.js';
import type { Projection, SizeConstant } from './decoder-structure.js';

/** Ops a value passes through unchanged in meaning (casts, and activation QDQ pairs). */
export const ALIAS_OPS = new Set(['Cast', 'Identity', 'QuantizeLinear', 'DequantizeLinear']);

export interface GraphView {
  graph: GraphProto;
  index: GraphIndex;
  label(node: NodeProto): string;
}

export function graphView(graph: GraphProto, index: GraphIndex): GraphView {
  return { graph, index, label: (n) => nodeLabel(n, graph) };
}

/** `value` and every value that only casts or fake-quantizes it (what a consumer may read in its place). */
export function aliases(view: GraphView, value: string): Set<string> {
  const out = new Set([value]);
  const todo = [value];
  while (todo.length) {
    const v = todo.pop()!;
    for (const c of view.index.consumers(v)) {
      if (ALIAS_OPS.has(c.opType ?? '') && c.input[0] === v && c.output[0] && !out.has(c.output[0])) {
        out.add(c.output[0]);
        todo.push(c.output[0]);
      }
    }
  }
  return out;
}

/** The value `value` is a cast or fake-quantized copy of (itself when it is not). */
export function unalias(view: GraphView, value: string): string {
  for (let v = value, depth = 0; depth < 8; depth++) {
    const p = view.index.producer(v);
    if (!p || !ALIAS_OPS.has(p.opType ?? '') || view.index.initializer(p.input[0])) return v;
    v = p.input[0];
  }
  return value;
}

interface WeightSource {
  weight: TensorProto;
  /** The DequantizeLinear (QDQ weight) or Transpose (tied table) between the initializer and the projection. */
  via?: NodeProto;
  transposed: boolean;
}

function weightSource(view: GraphView, value: string): WeightSource | undefined {
  const direct = view.index.initializer(value);
  if (direct) return direct.dims.length === 2 ? { weight: direct, transposed: false } : undefined;
  const p = view.index.producer(value);
  if (!p) return undefined;
  if (p.opType === 'DequantizeLinear') {
    const w = view.index.initializer(p.input[0]);
    return w?.dims.length === 2 ? { weight: w, via: p, transposed: false } : undefined;
  }
  if (p.opType === 'Transpose') {
    const inner = weightSource(view, p.input[0]);
    const perm = p.attribute.find((a) => a.name === 'perm')?.ints.map(Number) ?? [1, 0];
    if (inner && !inner.transposed && perm[0] === 1 && perm[1] === 0) return { ...inner, transposed: true, via: inner.via ?? p };
  }
  return undefined;
}

/** The bias Add right after `value` (Add(bias, x) or Add(x, bias) with a 1-D initializer of `n` elements). */
function biasAfter(view: GraphView, value: string, n: number): { add: NodeProto; bias: string } | undefined {
  const consumers = view.index.consumers(value);
  if (consumers.length !== 1 || consumers[0].opType !== 'Add') return undefined;
  const add = consumers[0];
  const other = add.input[0] === value ? add.input[1] : add.input[0];
  const src = view.index.initializer(other) ?? view.index.initializer(view.index.producer(other)?.opType === 'DequantizeLinear' ? view.index.producer(other)!.input[0] : '');
  if (!src || src.dims.length !== 1 || src.dims[0] !== n) return undefined;
  return { add, bias: src.name! };
}

/** The projection `node` is, or undefined when it does not multiply by a stored weight. */
export function projectionOf(view: GraphView, node: NodeProto): Projection | undefined {
  const op = node.opType;
  let p: Projection;
  if (op === 'MatMulNBits') {
    const w = view.index.initializer(node.input[1]);
    if (!w) return undefined;
    const bias = node.input[5] && view.index.initializer(node.input[5]) ? node.input[5] : undefined;
    p = { node: view.label(node), op, weight: w.name!, outAxis: 0, inFeatures: attrInt(node, 'K'), outFeatures: attrInt(node, 'N'), input: node.input[0], output: node.output[0], ...(bias ? { bias } : {}) };
  } else if (op === 'Gemm') {
    const src = weightSource(view, node.input[1]);
    if (!src || attrInt(node, 'transA', 0) !== 0) return undefined;
    const transB = attrInt(node, 'transB', 0) === 1;
    const [a, b] = src.weight.dims;
    const bias = node.input[2] && view.index.initializer(node.input[2]) ? node.input[2] : undefined;
    p = { node: view.label(node), op, weight: src.weight.name!, outAxis: transB ? 0 : 1, inFeatures: transB ? b : a, outFeatures: transB ? a : b, input: node.input[0], output: node.output[0], ...(bias ? { bias } : {}) };
    if (src.via) p.weightVia = view.label(src.via);
  } else if (op === 'MatMul') {
    const src = weightSource(view, node.input[1]);
    if (!src) return undefined;
    const [a, b] = src.weight.dims;
    p = { node: view.label(node), op, weight: src.weight.name!, outAxis: src.transposed ? 0 : 1, inFeatures: src.transposed ? b : a, outFeatures: src.transposed ? a : b, input: node.input[0], output: node.output[0] };
    if (src.via) p.weightVia = view.label(src.via);
  } else {
    return undefined;
  }
  if (!p.bias) {
    const b = biasAfter(view, node.output[0], p.outFeatures);
    if (b) Object.assign(p, { bias: b.bias, biasNode: view.label(b.add), output: b.add.output[0] });
  }
  return p;
}

/** The projection whose output (after its bias) is `value`, looking through casts and activation QDQ. */
export function projectionProducing(view: GraphView, value: string): Projection | undefined {
  const v = unalias(view, value);
  const p = view.index.producer(v);
  if (!p) return undefined;
  const direct = projectionOf(view, p);
  if (direct) return direct;
  if (p.opType === 'Add') {
    for (const x of p.input) {
      const inner = view.index.producer(unalias(view, x));
      const proj = inner && projectionOf(view, inner);
      if (proj && proj.output === v) return proj;
    }
  }
  return undefined;
}

/** MatMulNBits carries its widths as attributes: N (outputs) and K (inputs). */
export function attributeSizes(proj: Projection, outMeaning?: SizeConstant['meaning'], inMeaning?: SizeConstant['meaning']): SizeConstant[] {
  if (proj.op !== 'MatMulNBits') return [];
  const out: SizeConstant[] = [];
  if (outMeaning) out.push({ node: proj.node, holder: 'attr:N', position: 0, meaning: outMeaning, value: proj.outFeatures });
  if (inMeaning) out.push({ node: proj.node, holder: 'attr:K', position: 0, meaning: inMeaning, value: proj.inFeatures });
  return out;
}
