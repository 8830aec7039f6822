// The model a block's inputs are captured from: a copy whose only outputs are the captured values, cut down to
// the nodes that compute them (so the blocks after it cost nothing), with the weights of the blocks already
// solved replaced by their dequantized values (fake quantization) in sequential mode. What ONNX Runtime computes
// for the block's inputs is then what the quantized model will feed it, up to activation quantization, which is
// not simulated.
import { GraphEditor } from '../../onnx/editor.js';
import { OnnxModel } from '../../onnx/model.js';
import type { DataType } from '../../onnx/types.js';

/** A weight replaced by its dequantized values, in the weight's own element type and shape. */
export interface FakeQuantWeight {
  dtype: DataType;
  dims: readonly number[];
  values: Float32Array;
}

export function captureModel(model: OnnxModel, names: readonly string[], replaced: ReadonlyMap<string, FakeQuantWeight>): OnnxModel {
  // Without the model's own outputs, dead-code removal keeps only what the captured values need.
  const bare = new OnnxModel({ ...model.proto, graph: { ...model.graph, output: [] } }, model.baseDir, model.source);
  const edit = new GraphEditor(bare);
  // Untyped outputs: ONNX Runtime infers their types (src/runtime/capture.ts relies on the same).
  for (const name of new Set(names)) edit.addOutput(name);
  for (const [name, w] of replaced) if (edit.index.initializer(name)) edit.replaceInitializer(name, w.dtype, w.dims, w.values);
  edit.removeDeadCode();
  return edit.finish().model;
}
