// Writing trained values back into an ONNX model object: same graph, same initializer names, order and shapes;
// only the float values change (stored as raw little-endian float32, as the builder stores them).
import { ModelError } from '../onnx/model.js';
import { makeTensor } from '../onnx/tensor.js';
import { DataType, type ModelProto, type TensorProto } from '../onnx/types.js';

/**
 * A copy of `model` whose initializers named in `weights` hold the given values. Throws when a name is not a
 * float initializer or the element count differs; everything else (nodes, other initializers) is shared.
 */
export function withWeights(model: ModelProto, weights: ReadonlyMap<string, Float32Array>): ModelProto {
  const graph = model.graph;
  if (!graph) throw new ModelError('withWeights: model has no graph');
  const seen = new Set<string>();
  const initializer = graph.initializer.map((t): TensorProto => {
    const values = weights.get(t.name ?? '');
    if (!values) return t;
    if (t.dataType !== DataType.FLOAT) throw new ModelError(`withWeights: initializer '${t.name}' is not float32`);
    const count = t.dims.reduce((a, d) => a * Number(d), 1);
    if (values.length !== count) throw new ModelError(`withWeights: '${t.name}' has ${count} values, got ${values.length}`);
    seen.add(t.name!);
    return makeTensor(t.name!, DataType.FLOAT, t.dims.map(Number), values);
  });
  const missing = [...weights.keys()].filter((n) => !seen.has(n));
  if (missing.length) throw new ModelError(`withWeights: no float initializer named ${missing.join(', ')}`);
  return { ...model, graph: { ...graph, initializer } };
}

/** The float32 initializers of a model by name (for handing trained weights to a builder). */
export function floatInitializers(model: ModelProto, read: (t: TensorProto) => Float32Array): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const t of model.graph?.initializer ?? []) if (t.dataType === DataType.FLOAT && t.name) out.set(t.name, read(t));
  return out;
}
