// The model a block's inputs are captured from: a copy whose only outputs are the captured values, cut down to
// the nodes that compute them (so the blocks after it cost nothing), with the weights of the blocks already
// solved replaced by their dequantized values (fake quantization) in sequential mode.
//
// Static schemes (w8a8, w4a8) also quantize each quantized node's input activation. The capture simulates that
// with the Q/DQ pair the QDQ writer emits (writers/qdq.ts, same parameters), at one of two scopes:
//   'graph'   every planned reader of a quantized activation reads it through its Q/DQ pair, as in the written
//             model: the block's inputs are what the deployed model feeds it (sequential mode's default, where the
//             earlier blocks hold their solved weights too);
//   'inputs'  only the captured values themselves are fake-quantized, computed from the float graph: parallel
//             mode's default, since parallel means each block sees the float model's activations, independent of
//             every other block's quantization, while its own input rounding is still what the layer will see.
// Either way a captured activation is its Q/DQ output, a value with another name: `captured` maps the names the
// pipeline asks for to the names the capture model outputs, and `renamedAccumulator` hands the values back under
// the asked names, so the solvers' lookups do not change.
import type { ActivationAccumulator } from '../../calibration/collect.js';
import { GraphEditor } from '../../onnx/editor.js';
import { OnnxModel } from '../../onnx/model.js';
import type { DataType, NodeProto } from '../../onnx/types.js';
import { activationQdq, activationQdqOpset, type PlannedActivationQuant } from '../writers/qdq.js';

/** A weight replaced by its dequantized values, in the weight's own element type and shape. */
export interface FakeQuantWeight {
  dtype: DataType;
  dims: readonly number[];
  values: Float32Array;
}

/** Where the capture simulates activation quantization (see above). */
export type ActivationScope = 'graph' | 'inputs';

export interface ActivationSimulation {
  /** The activations the written model quantizes, by tensor (plannedActivationQuant in writers/qdq.ts). */
  quant: ReadonlyMap<string, PlannedActivationQuant>;
  scope: ActivationScope;
}

export interface CaptureModel {
  model: OnnxModel;
  /** Captured name -> the capture model's output holding it (itself unless it was fake-quantized). */
  captured: ReadonlyMap<string, string>;
  /** How many Q/DQ pairs were inserted. */
  quantized: number;
}

export function captureModel(
  model: OnnxModel,
  names: readonly string[],
  replaced: ReadonlyMap<string, FakeQuantWeight>,
  activations?: ActivationSimulation,
): CaptureModel {
  // Without the model's own outputs, dead-code removal keeps only what the captured values need.
  const bare = new OnnxModel({ ...model.proto, graph: { ...model.graph, output: [] } }, model.baseDir, model.source);
  const edit = new GraphEditor(bare);
  for (const [name, w] of replaced) if (edit.index.initializer(name)) edit.replaceInitializer(name, w.dtype, w.dims, w.values);
  const wanted = [...new Set(names)];
  const fakeQuant = activations ? simulateActivations(edit, bare, wanted, activations) : new Map<string, string>();
  const captured = new Map(wanted.map((n) => [n, fakeQuant.get(n) ?? n]));
  // Untyped outputs: ONNX Runtime infers their types (src/runtime/capture.ts relies on the same).
  for (const name of captured.values()) edit.addOutput(name);
  edit.removeDeadCode();
  return { model: edit.finish().model, captured, quantized: fakeQuant.size };
}

/**
 * Inserts the Q/DQ pairs: each before the first planned reader of its tensor in graph order (as the writer does, so
 * the order stays topological), that reader and the later ones rewired to it with scope 'graph'. Returns tensor ->
 * its Q/DQ output for every pair inserted; pairs nothing reads are removed with the dead code.
 */
function simulateActivations(edit: GraphEditor, model: OnnxModel, wanted: readonly string[], sim: ActivationSimulation): Map<string, string> {
  const wantedSet = new Set(wanted);
  const tensors = [...sim.quant.keys()].filter((t) => sim.scope === 'graph' || wantedSet.has(t));
  const readersOf = new Map<NodeProto, string>();
  for (const t of tensors) for (const r of sim.quant.get(t)!.readers) readersOf.set(r, t);
  const outputs = new Map<string, string>();
  let opset = 0;
  for (const node of model.graph.node) {
    const tensor = readersOf.get(node);
    if (tensor === undefined) continue;
    const prefix: NodeProto[] = [];
    let output = outputs.get(tensor);
    if (output === undefined) {
      const q = sim.quant.get(tensor)!;
      const qdq = activationQdq(edit, tensor, q);
      prefix.push(...qdq.nodes);
      output = qdq.output;
      outputs.set(tensor, output);
      opset = Math.max(opset, activationQdqOpset(q));
    }
    const input = sim.scope === 'graph' ? node.input.map((i) => (i === tensor ? output : i)) : node.input;
    if (prefix.length || sim.scope === 'graph') edit.replace(node, [...prefix, { ...node, input }]);
  }
  if (opset) edit.requireOpset('', opset);
  return outputs;
}

/** An accumulator fed from the capture model's outputs: targets and names translated both ways by `captured`. */
export function renamedAccumulator(accumulator: ActivationAccumulator, captured: ReadonlyMap<string, string>): ActivationAccumulator {
  const asked = new Map([...captured].map(([name, output]) => [output, name]));
  return {
    targets: [...new Set(accumulator.targets.map((t) => captured.get(t) ?? t))],
    add: (name, values, dims) => accumulator.add(asked.get(name) ?? name, values, dims),
    finish: () => accumulator.finish(),
  };
}
