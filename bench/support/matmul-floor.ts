// The floor of a decoder step: the same weights' matrix products alone. Every MatMul / MatMulNBits of the model
// whose weight is an initializer, copied with its weights and attributes into a graph of nothing else, each
// reading a [1, 1, K] input of its own width; what ONNX Runtime cannot do faster than this is the step's price.
import { GraphBuilder, modelFrom } from '../../src/onnx/builder.js';
import type { OnnxModel } from '../../src/onnx/model.js';
import { attrInt } from '../../src/onnx/attributes.js';
import { DataType } from '../../src/onnx/types.js';

export interface FloorModel {
  model: OnnxModel['proto'];
  /** Input name -> width K. */
  inputs: Map<string, number>;
  outputs: string[];
  products: number;
}

export function matmulFloor(model: OnnxModel): FloorModel {
  const g = model.graph;
  const inits = new Map(g.initializer.map((t) => [t.name!, t]));
  const b = new GraphBuilder('matmul-floor');
  const inputs = new Map<string, number>();
  const outputs: string[] = [];
  const used = new Set<string>();
  for (const node of g.node) {
    let k: number;
    if (node.opType === 'MatMulNBits') k = attrInt(node, 'K');
    else if (node.opType === 'MatMul' && inits.get(node.input[1])?.dims.length === 2) k = inits.get(node.input[1])!.dims[0];
    else continue;
    const x = `x_${k}`;
    if (!inputs.has(x)) {
      inputs.set(x, k);
      b.input(x, DataType.FLOAT, [1, 1, k]);
    }
    const weights = node.input.slice(1).filter((i) => i !== '');
    for (const w of weights) {
      if (!used.has(w) && inits.has(w)) {
        b.addInitializer(inits.get(w)!);
        used.add(w);
      }
    }
    const out = b.node(node.opType!, [x, ...node.input.slice(1)], 1, node.attribute, node.domain ? { domain: node.domain } : {})[0];
    b.output(out, DataType.FLOAT);
    outputs.push(out);
  }
  const opsets = Object.fromEntries(model.proto.opsetImport.map((o) => [o.domain ?? '', o.version!]));
  return { model: modelFrom(b.graph, { opsets }), inputs, outputs, products: outputs.length };
}
