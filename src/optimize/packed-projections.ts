// Several projections of one input as one: q, k and v (or gate and up) weights concatenated along their output
// features, so a step runs one matrix product instead of three (decode at batch 1 pays per node). Float MatMul
// weights [in, out] are joined column-wise; MatMulNBits weights (codes [N, blocks, bytes], scales, zero points,
// all laid out by output row) row-wise, bit for bit, so 4-bit models keep their exact codes. Anything else
// (QDQ weights, biases, Gemm) is left as separate projections.
import { attrInt } from '../onnx/attributes.js';
import { makeNode } from '../onnx/builder.js';
import { tensorValues, type TensorData } from '../onnx/tensor.js';
import { DataType, type NodeProto, type TensorProto } from '../onnx/types.js';
import type { Projection } from '../structure/decoder-structure.js';
import type { FusionContext } from './context.js';

export interface PackedProjection {
  /** The new node (to place where the fused block runs) and the value it produces: the outputs side by side. */
  node: NodeProto;
  output: string;
}

/** One projection for `parts` (same input), or the reason they stay separate. */
export function packProjections(ctx: FusionContext, parts: readonly Projection[], name: string): PackedProjection | string {
  const input = parts[0].input;
  if (parts.some((p) => p.input !== input)) return 'the projections read different inputs';
  if (parts.some((p) => p.bias || p.biasNode)) return 'a projection has a bias';
  const nodes = parts.map((p) => ctx.producer(p.output));
  if (nodes.some((n) => !n || ctx.isClaimed(n))) return 'a projection node is missing or already fused';
  const ops = new Set(parts.map((p) => p.op));
  if (ops.size !== 1) return `the projections mix ${[...ops].join(' and ')}`;
  const output = ctx.editor.value(`${name}_output_0`);
  if (parts[0].op === 'MatMul') {
    const weights = parts.map((p) => ctx.index.initializer(p.weight));
    if (weights.some((w) => !w || w.dataType !== DataType.FLOAT || w.dims.length !== 2) || nodes.some((n) => n!.input[1] !== undefined && ctx.index.initializer(n!.input[1]) === undefined)) {
      return 'a weight is not a float32 [in, out] initializer (QDQ or computed weights stay separate)';
    }
    const joined = joinColumns(ctx, weights as TensorProto[]);
    const w = ctx.editor.tensor(`${name}.weight`, DataType.FLOAT, [weights[0]!.dims[0], joined.length / weights[0]!.dims[0]], joined);
    return { node: makeNode('MatMul', [input, w], [output], undefined, { name: ctx.editor.value(name) }), output };
  }
  if (parts[0].op === 'MatMulNBits') {
    const ns = nodes as NodeProto[];
    const attrs = ['K', 'bits', 'block_size', 'accuracy_level'].map((a) => ns.map((n) => attrInt(n, a, a === 'accuracy_level' ? 0 : -1)));
    if (attrs.some((values) => new Set(values).size !== 1)) return 'the MatMulNBits nodes differ in K, bits, block size or accuracy level';
    const arity = new Set(ns.map((n) => n.input.filter((i) => i !== '').length));
    if (arity.size !== 1 || ns.some((n) => n.input.length > 4)) return 'the MatMulNBits nodes differ in their optional inputs (zero points, g_idx, bias)';
    const inputs: string[] = [input];
    for (let slot = 1; slot < ns[0].input.length; slot++) {
      const tensors = ns.map((n) => ctx.index.initializer(n.input[slot]));
      if (tensors.some((t) => !t)) return `MatMulNBits input ${slot} is not an initializer`;
      inputs.push(joinRows(ctx, tensors as TensorProto[], `${name}.${['', 'B', 'scales', 'zero_points'][slot]}`));
    }
    const n = parts.reduce((sum, p) => sum + p.outFeatures, 0);
    const [k, bits, blockSize, accuracy] = attrs.map((v) => v[0]);
    const node = makeNode('MatMulNBits', inputs, [output], { K: k, N: n, bits, block_size: blockSize, ...(accuracy ? { accuracy_level: accuracy } : {}) }, {
      name: ctx.editor.value(name),
      domain: 'com.microsoft',
    });
    return { node, output };
  }
  return `${parts[0].op} projections are not packed`;
}

function values(ctx: FusionContext, t: TensorProto): TensorData {
  return tensorValues(t, ctx.model.rawBytes(t)).data;
}

/** [in, a] [in, b] ... -> [in, a + b + ...]. */
function joinColumns(ctx: FusionContext, weights: readonly TensorProto[]): Float32Array {
  const rows = weights[0].dims[0];
  const widths = weights.map((w) => w.dims[1]);
  const total = widths.reduce((a, b) => a + b, 0);
  const out = new Float32Array(rows * total);
  let offset = 0;
  weights.forEach((w, i) => {
    const data = values(ctx, w) as Float32Array;
    for (let r = 0; r < rows; r++) out.set(data.subarray(r * widths[i], (r + 1) * widths[i]), r * total + offset);
    offset += widths[i];
  });
  return out;
}

/** Tensors laid out by output row (first axis, or flat) joined end to end: a new initializer's name. */
function joinRows(ctx: FusionContext, tensors: readonly TensorProto[], base: string): string {
  const parts = tensors.map((t) => values(ctx, t));
  const length = parts.reduce((a, p) => a + p.length, 0);
  const first = parts[0];
  const out = new (first.constructor as new (n: number) => Exclude<TensorData, string[]>)(length);
  let offset = 0;
  for (const p of parts) {
    (out as Float32Array).set(p as Float32Array, offset);
    offset += p.length;
  }
  const dims = [tensors.reduce((a, t) => a + (t.dims[0] ?? 0), 0), ...tensors[0].dims.slice(1)];
  return ctx.editor.tensor(base, tensors[0].dataType as DataType, dims, out);
}
