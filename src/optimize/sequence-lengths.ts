// GroupQueryAttention's seqlens_k (per row, the index of its last token: real tokens - 1) and
// total_sequence_length (past + new, a scalar), computed inside the graph from attention_mask so the optimized
// model takes exactly the inputs the original took. Made once and shared by every layer.
import { makeNode } from '../onnx/builder.js';
import { DataType, type NodeProto } from '../onnx/types.js';
import type { FusionContext } from './context.js';

export interface SequenceLengths {
  seqlensK: string;
  totalLength: string;
  /** The nodes computing them, to place before the first attention that reads them. */
  nodes: NodeProto[];
}

export function sequenceLengths(ctx: FusionContext, mask: string): SequenceLengths {
  const e = ctx.editor;
  const v = (base: string) => e.value(`/optimize/${base}`);
  const node = (op: string, inputs: string[], output: string, attrs?: Record<string, number | number[]>) =>
    makeNode(op, inputs, [output], attrs, { name: e.value(`/optimize/${op}`) });
  const mask32 = v('attention_mask_int32');
  const real = v('real_tokens');
  const seqlensK = v('seqlens_k');
  const shape = v('attention_mask_shape');
  const total64 = v('total_sequence_length_int64');
  const totalLength = v('total_sequence_length');
  const one = e.tensor('/optimize/one', DataType.INT32, [], [1]);
  const axis1 = e.tensor('/optimize/axis_1', DataType.INT64, [1], [1n]);
  const index1 = e.tensor('/optimize/index_1', DataType.INT64, [], [1n]);
  // ReduceSum took its axes as an attribute before opset 13.
  const opset = ctx.model.opset('') ?? 17;
  const sum = opset >= 13 ? node('ReduceSum', [mask32, axis1], real, { keepdims: 0 }) : node('ReduceSum', [mask32], real, { keepdims: 0, axes: [1] });
  return {
    seqlensK,
    totalLength,
    nodes: [
      node('Cast', [mask], mask32, { to: DataType.INT32 }),
      sum,
      node('Sub', [real, one], seqlensK),
      node('Shape', [mask], shape),
      node('Gather', [shape, index1], total64, { axis: 0 }),
      node('Cast', [total64], totalLength, { to: DataType.INT32 }),
    ],
  };
}
