// The conformance models a quantizer has something to do in: Debian's libonnx-testdata models with a Conv, Gemm or
// MatMul whose weight (input 1) is computed from constants only — initializers (graph inputs of the same name
// included, IR < 4), Constant nodes, and chains of deterministic ops over them — whether or not the writers can
// take that weight today (which the benches then report).
import { dirname } from 'node:path';
import { foldableNodes } from '../../src/onnx/fold-constants.js';
import { loadModel, type OnnxModel } from '../../src/onnx/model.js';
import { conformanceModels, TESTDATA_ROOT } from '../../test/support/testdata.js';

export const CONFORMANCE_ROOT = TESTDATA_ROOT;
export const WEIGHT_OPS: readonly string[] = ['Conv', 'Gemm', 'MatMul'];

/** Whether a Conv/Gemm/MatMul weight is an initializer or the output of a subgraph constant folding would take. */
export function hasConstantWeight(model: OnnxModel): boolean {
  const g = model.graph;
  const constant = new Set([...g.initializer.map((t) => t.name ?? ''), ...foldableNodes(g).flatMap((n) => n.output)]);
  return g.node.some((n) => WEIGHT_OPS.includes(n.opType ?? '') && constant.has(n.input[1] ?? ''));
}

/** The folders (model.onnx + test_data_set_*) of the suites' models with a constant weight, sorted. */
export function conformanceWeightModels(suites: readonly string[]): string[] {
  const found: string[] = [];
  for (const path of conformanceModels(suites)) {
    let model: OnnxModel;
    try {
      model = loadModel(path);
      if (hasConstantWeight(model)) found.push(dirname(path));
    } catch {
      continue; // unreadable or invalid models are the round-trip test's business, not a quantizer's
    }
  }
  return found;
}
