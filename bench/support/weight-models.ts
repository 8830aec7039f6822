// The conformance models a quantizer has something to do in: Debian's libonnx-testdata models with a Conv, Gemm or
// MatMul whose weight (input 1) is computed from constants only — initializers (graph inputs of the same name
// included, IR < 4), Constant nodes, and chains of deterministic ops over them — whether or not the writers can
// take that weight today (which the benches then report).
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel, type OnnxModel } from '../../src/onnx/model.js';

export const CONFORMANCE_ROOT = '/usr/share/libonnx-testdata/data';
export const WEIGHT_OPS: readonly string[] = ['Conv', 'Gemm', 'MatMul'];

export function hasConstantWeight(model: OnnxModel): boolean {
  const g = model.graph;
  const constant = new Set(g.initializer.map((t) => t.name ?? ''));
  for (const n of g.node) {
    if (!/Random/.test(n.opType ?? '') && n.input.every((i) => i === '' || constant.has(i))) for (const o of n.output) constant.add(o);
  }
  return g.node.some((n) => WEIGHT_OPS.includes(n.opType ?? '') && constant.has(n.input[1] ?? ''));
}

/** The folders (model.onnx + test_data_set_*) of the suites' models with a constant weight, sorted. */
export function conformanceWeightModels(suites: readonly string[]): string[] {
  const found: string[] = [];
  for (const suite of suites) {
    const root = join(CONFORMANCE_ROOT, suite);
    if (!existsSync(root)) continue;
    for (const name of readdirSync(root).sort()) {
      const path = join(root, name, 'model.onnx');
      if (!existsSync(path)) continue;
      let model: OnnxModel;
      try {
        model = loadModel(path);
      } catch {
        continue; // unreadable models are the round-trip test's business, not a quantizer's
      }
      if (hasConstantWeight(model)) found.push(join(root, name));
    }
  }
  return found;
}
