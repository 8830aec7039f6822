// `--scheme fp16`: a float32 model converted to float16 weights and activations, the graph's inputs and outputs
// kept float32 with Casts at the boundary (what ORT's float16 converter does with keep_io_types). Values float16
// cannot hold stay float32 in islands: a float32 constant with a finite value past ±65504 (float32-min attention
// masks) keeps its type, the nodes that read it run in float32, and so does every node downstream that may still
// carry such a value, until an op whose output is bounded (Softmax, Sigmoid...) ends the island. Ops on a block
// list (reductions that overflow, Range, random ops, top-k, resize, non-default domains) run in float32 too.
// Integer and bool values are untouched. Casts are inserted where a value crosses between the two, once per value
// and type.
//
// Which values are float32 comes from ONNX Runtime's own type inference (the model opened with every node output
// as a graph output), not from a per-op table here.
import { subgraphsOf, tensorAttr } from '../onnx/attributes.js';
import { ALL_DTYPES, dtypeByName } from '../onnx/dtypes.js';
import { GraphEditor } from '../onnx/editor.js';
import { GraphIndex, nodeLabel } from '../onnx/graph.js';
import { OnnxModel } from '../onnx/model.js';
import { makeTensor, roundTo, tensorValues } from '../onnx/tensor.js';
import { DataType, type AttributeProto, type NodeProto, type TensorProto } from '../onnx/types.js';
import { withOutputs } from '../runtime/capture.js';
import { Session, type SessionOptions } from '../runtime/session.js';
import { QuantizationError } from './schemes.js';
import { tensorBytes } from './writers/common.js';

/**
 * Default-domain ops that run in float32: reductions whose sums overflow float16, ops whose float inputs are
 * positions or counts (Range, CumSum, TopK, Resize/Upsample scales, RoiAlign, NonMaxSuppression boxes), the
 * ops onnxconverter-common's float16 converter keeps (Min, Max), random ops, and quantization ops whose types
 * are fixed by their scales.
 */
export const FLOAT16_BLOCKED_OPS: readonly string[] = [
  'ReduceSum',
  'ReduceSumSquare',
  'ReduceProd',
  'ReduceL1',
  'ReduceL2',
  'ReduceLogSum',
  'ReduceLogSumExp',
  'CumSum',
  'Range',
  'TopK',
  'NonMaxSuppression',
  'RoiAlign',
  'Resize',
  'Upsample',
  'Min',
  'Max',
  'RandomNormal',
  'RandomNormalLike',
  'RandomUniform',
  'RandomUniformLike',
  'Multinomial',
  'Bernoulli',
  'QuantizeLinear',
  'DequantizeLinear',
  'DynamicQuantizeLinear',
];

// Ops whose float output is bounded whatever their input (a masked score of float32-min becomes 0 in Softmax):
// a float32 island ends after them.
const BOUNDED_OUTPUT = new Set(['Softmax', 'Sigmoid', 'Tanh', 'Erf', 'HardSigmoid', 'Softsign', 'Sin', 'Cos', 'LayerNormalization']);

export interface Float16Options {
  /** More op types to keep in float32, beside FLOAT16_BLOCKED_OPS. */
  blockOps?: readonly string[];
  /** Nodes to keep in float32 (a user's selection leaving them out). */
  keep?: (node: NodeProto) => boolean;
  /** Session options for the type probe. */
  session?: SessionOptions;
}

export interface KeptNode {
  node: string;
  op: string;
  reason: string;
}

export interface Float16Report {
  /** Nodes that now compute in float16. */
  converted: number;
  /** Nodes that read or write float32 values and stay float32, with the reason. */
  kept: KeptNode[];
  initializers: {
    converted: number;
    /** Float32 initializers kept as they are: out of float16's range, or read only by float32 nodes. */
    kept: { name: string; reason: string }[];
  };
  casts: number;
  /** Bytes of the float32 initializers before and after (converted ones at 2 bytes an element). */
  bytesBefore: number;
  bytesAfter: number;
}

type Home = DataType.FLOAT | DataType.FLOAT16;

/** The float16 copy of a float32 model; the input model is not modified. */
export async function convertToFloat16(model: OnnxModel, options: Float16Options = {}): Promise<{ model: OnnxModel; report: Float16Report }> {
  const graph = model.graph;
  for (const n of graph.node) {
    if (subgraphsOf(n).length) {
      throw new QuantizationError(`${model.source}: node ${nodeLabel(n, graph)} (${n.opType}) has a subgraph; float16 conversion handles main graphs only`);
    }
  }
  const types = await valueTypes(model, options.session);
  const index = new GraphIndex(graph);
  const isFloat32 = (name: string): boolean => name !== '' && types.get(name) === DataType.FLOAT;
  const blocked = new Set([...FLOAT16_BLOCKED_OPS, ...(options.blockOps ?? [])]);

  // Constants float16 cannot hold: values that become infinite when rounded to float16.
  const tooWide = new Set<string>();
  for (const t of graph.initializer) if (t.dataType === DataType.FLOAT && overflows(tensorValues(t, model.rawBytes(t)).data as Float32Array)) tooWide.add(t.name!);
  for (const n of graph.node) {
    const value = n.opType === 'Constant' ? constantFloat32(n) : undefined;
    if (value && overflows(value)) tooWide.add(n.output[0]);
  }

  // Which nodes stay float32, in graph order so an island spreads downstream.
  const kept = new Map<NodeProto, string>();
  const wide = new Set(tooWide);
  for (const n of graph.node) {
    const op = n.opType ?? '';
    const floatIo = [...n.input, ...n.output].some(isFloat32);
    if (!floatIo) continue;
    const wideInput = n.input.find((i) => wide.has(i));
    let reason: string | undefined;
    if (n.opType === 'Constant' && wide.has(n.output[0])) reason = 'its value is out of float16 range';
    else if (wideInput !== undefined) reason = `reads '${wideInput}', which may exceed float16 range`;
    else if ((n.domain ?? '') !== '' && n.domain !== 'ai.onnx') reason = `domain ${n.domain}`;
    else if (blocked.has(op)) reason = `${op} is kept in float32`;
    else if (options.keep?.(n)) reason = 'left out by the node selection';
    else if ([...n.input, ...n.output].some((v) => v !== '' && !types.has(v) && !index.initializer(v))) reason = 'reads or writes a non-tensor value';
    if (reason === undefined) continue;
    kept.set(n, reason);
    if ((wideInput !== undefined || n.opType === 'Constant') && !BOUNDED_OUTPUT.has(op)) for (const o of n.output) if (isFloat32(o)) wide.add(o);
  }

  // Where each float32 value lives after conversion.
  const home = new Map<string, Home>();
  const keptInitializers: { name: string; reason: string }[] = [];
  let bytesBefore = 0;
  let bytesAfter = 0;
  const edit = new GraphEditor(model);
  for (const v of graph.input) if (v.name && isFloat32(v.name) && !index.initializer(v.name)) home.set(v.name, DataType.FLOAT);
  for (const t of graph.initializer) {
    if (t.dataType !== DataType.FLOAT) continue;
    const name = t.name!;
    const bytes = tensorBytes(t);
    bytesBefore += bytes;
    const readers = index.consumers(name);
    let reason: string | undefined;
    if (tooWide.has(name)) reason = 'a value is out of float16 range';
    else if (index.graphInput(name) || index.graphOutput(name)) reason = 'it is a graph input or output (kept float32 like the graph interface)';
    else if (readers.length && readers.every((r) => kept.has(r))) reason = 'read only by nodes kept in float32';
    if (reason !== undefined) {
      home.set(name, DataType.FLOAT);
      keptInitializers.push({ name, reason });
      bytesAfter += bytes;
      continue;
    }
    home.set(name, DataType.FLOAT16);
    edit.replaceInitializer(name, DataType.FLOAT16, t.dims, tensorValues(t, model.rawBytes(t)).data as Float32Array);
    bytesAfter += bytes / 2;
  }
  for (const n of graph.node) for (const o of n.output) if (isFloat32(o)) home.set(o, kept.has(n) ? DataType.FLOAT : DataType.FLOAT16);

  // Casts, made once per value and type before the first node that needs them. A graph output computed in
  // float16 is written under a new name (`renamed`) and cast back to float32 under its own.
  const casts = new Map<string, string>();
  const renamed = new Map<string, string>();
  let castCount = 0;
  const read = (name: string, want: Home, before: NodeProto[]): string => {
    const inner = renamed.get(name);
    if (inner !== undefined) return want === DataType.FLOAT16 ? inner : name;
    const at = home.get(name);
    if (at === undefined || at === want) return name;
    const key = `${name}\u0000${want}`;
    let cast = casts.get(key);
    if (cast === undefined) {
      const suffix = want === DataType.FLOAT16 ? 'float16' : 'float32';
      cast = edit.value(`${name}_${suffix}`);
      before.push(edit.node('Cast', [name], [cast], { to: want }, { name: `${name}_Cast_${suffix}` }));
      casts.set(key, cast);
      castCount++;
    }
    return cast;
  };
  const outputs = new Set(graph.output.map((o) => o.name!));
  let converted = 0;
  for (const n of graph.node) {
    const touches = [...n.input, ...n.output].some(isFloat32);
    if (!touches) continue;
    const want: Home = kept.has(n) ? DataType.FLOAT : DataType.FLOAT16;
    if (want === DataType.FLOAT16) converted++;
    const before: NodeProto[] = [];
    const after: NodeProto[] = [];
    const input = n.input.map((i) => (isFloat32(i) ? read(i, want, before) : i));
    const output = n.output.map((o) => {
      if (!outputs.has(o) || home.get(o) !== DataType.FLOAT16) return o;
      const inner = edit.value(`${o}_float16`);
      renamed.set(o, inner);
      after.push(edit.node('Cast', [inner], [o], { to: DataType.FLOAT }, { name: `${o}_Cast_float32` }));
      castCount++;
      return inner;
    });
    const attribute = want === DataType.FLOAT16 ? float16Attributes(n) : n.attribute;
    edit.replace(n, [...before, { ...n, input, output, attribute }, ...after]);
  }

  for (const v of graph.valueInfo) if (v.name && home.get(v.name) === DataType.FLOAT16) edit.setValueType(v.name, DataType.FLOAT16, dimsOf(v.type?.tensorType?.shape?.dim));
  const finished = edit.finish();
  const keptNodes = [...kept].map(([n, reason]) => ({ node: n.name || nodeLabel(n, graph), op: n.opType ?? '', reason }));
  return {
    model: finished.model,
    report: {
      converted,
      kept: keptNodes,
      initializers: { converted: graph.initializer.filter((t) => home.get(t.name ?? '') === DataType.FLOAT16).length, kept: keptInitializers },
      casts: castCount,
      bytesBefore,
      bytesAfter,
    },
  };
}

/** Whether some finite value becomes infinite in float16. */
function overflows(values: Float32Array): boolean {
  const rounded = roundTo(DataType.FLOAT16, values);
  for (let i = 0; i < values.length; i++) if (Number.isFinite(values[i]) && !Number.isFinite(rounded[i])) return true;
  return false;
}

/** A Constant node's float32 value, in any of its attribute forms; undefined for other types. */
function constantFloat32(n: NodeProto): Float32Array | undefined {
  const a = n.attribute[0];
  if (!a) return undefined;
  if (a.name === 'value' && a.t?.dataType === DataType.FLOAT) return tensorValues(a.t).data as Float32Array;
  if (a.name === 'value_float') return Float32Array.of(a.f ?? 0);
  if (a.name === 'value_floats') return Float32Array.from(a.floats);
  return undefined;
}

/**
 * A float16 node's attributes: what names float32 as the type it produces now names float16 (Cast's `to`,
 * EyeLike's `dtype`), and float32 tensors it holds (Constant's value in any form, ConstantOfShape's fill) become
 * float16 tensors.
 */
function float16Attributes(n: NodeProto): AttributeProto[] {
  const op = n.opType ?? '';
  return n.attribute.map((a) => {
    if ((op === 'Cast' && a.name === 'to') || (op === 'EyeLike' && a.name === 'dtype')) {
      return Number(a.i) === DataType.FLOAT ? { ...a, i: BigInt(DataType.FLOAT16) } : a;
    }
    if (op === 'Constant' && (a.name === 'value_float' || a.name === 'value_floats')) {
      const values = constantFloat32(n)!;
      return tensorAttr('value', anonymousFloat16(a.name === 'value_float' ? [] : [values.length], values));
    }
    if ((op === 'Constant' || op === 'ConstantOfShape') && a.name === 'value' && a.t?.dataType === DataType.FLOAT) {
      return tensorAttr('value', anonymousFloat16(a.t.dims, tensorValues(a.t).data as Float32Array));
    }
    return a;
  });
}

function anonymousFloat16(dims: readonly number[], values: Float32Array): TensorProto {
  const t = makeTensor('', DataType.FLOAT16, dims, values);
  delete t.name; // Constant values are anonymous, as exporters write them
  return t;
}

function dimsOf(dims: readonly { dimValue?: number; dimParam?: string }[] | undefined): (number | string | null)[] | undefined {
  return dims?.map((d) => d.dimValue ?? d.dimParam ?? null);
}

/**
 * Element type of every value of the main graph: graph inputs and initializers as declared, node outputs as
 * ONNX Runtime infers them (the model opened, not run, with every node output as a graph output). Values that
 * are not tensors (sequences, maps) are absent.
 */
async function valueTypes(model: OnnxModel, session: SessionOptions = {}): Promise<Map<string, DataType>> {
  const types = new Map<string, DataType>();
  for (const v of model.graph.input) {
    const t = v.type?.tensorType?.elemType;
    if (v.name && t !== undefined) types.set(v.name, t);
  }
  for (const t of model.graph.initializer) if (t.name && t.dataType !== undefined) types.set(t.name, t.dataType);
  const names = model.graph.node.flatMap((n) => n.output.filter((o) => o !== ''));
  const probe = await Session.create(new OnnxModel(withOutputs(model.proto, names, model.source), model.baseDir, model.source), { ...session, graphOptimization: 'disabled' });
  try {
    for (const m of probe.outputMetadata) if (m.isTensor && ALL_DTYPES.some((d) => d.name === m.type)) types.set(m.name, dtypeByName(m.type).code);
  } finally {
    await probe.dispose();
  }
  return types;
}
