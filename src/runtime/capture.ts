// Reading intermediate tensors: ORT only returns graph outputs, so the names are added to graph.output on a copy
// of the model and fetched like any output.
//
// Type info for an added output comes from value_info, the graph inputs or the initializers when the model has
// it. When it has none the output is added without a type: onnxruntime-node 1.30 infers it (checked in
// test/runtime.test.ts), so no propagation or first pass is needed. A wrong type would be refused, which is why
// nothing is guessed.
import { intAttr, intsAttr } from '../onnx/attributes.js';
import { makeNode } from '../onnx/builder.js';
import { GraphEditor } from '../onnx/editor.js';
import { usedNames } from '../onnx/graph.js';
import { loadModel, ModelError, OnnxModel } from '../onnx/model.js';
import { DataType, type GraphProto, type ModelProto, type NodeProto, type TypeProto } from '../onnx/types.js';
import { type Feeds, type Outputs, Session, type SessionOptions } from './session.js';

export interface CaptureOptions extends SessionOptions {
  /**
   * Default 'disabled': fusions and constant folding would compute the captured tensors differently, or not at
   * all, from the graph as written. Graph outputs themselves survive any level.
   */
  graphOptimization?: SessionOptions['graphOptimization'];
}

/** The model's proto with `names` appended to graph.output (through the graph editor); the given proto is not modified. */
export function withOutputs(proto: ModelProto, names: readonly string[], source = 'model'): ModelProto {
  const edit = editorOf(proto, source);
  const types = knownTypes(edit.model.graph);
  for (const name of new Set(names)) {
    checkProduced(edit, name, source, 'capture');
    edit.addOutput(name, types.get(name));
  }
  return edit.finish().model.proto;
}

function editorOf(proto: ModelProto, source: string): GraphEditor {
  if (!proto.graph) throw new ModelError(`${source}: model has no graph`);
  return new GraphEditor(new OnnxModel(proto, undefined, source));
}

function checkProduced(edit: GraphEditor, name: string, source: string, verb: string): void {
  if (!name || !(edit.index.producer(name) || edit.index.graphInput(name) || edit.index.initializer(name))) {
    throw new ModelError(`${source}: cannot ${verb} '${name}': no node, input or initializer of the main graph produces it`);
  }
}

const INT64_MAX = 2n ** 63n - 1n;

/** A tensor whose range ONNX Runtime computes: its name, whether it is float16 (widened before reducing) and its rank where known. */
export interface RangeTarget {
  name: string;
  float16?: boolean;
  /** Rank, when known (ORT's inferred output shapes give it): the reductions then need no Shape arithmetic. */
  rank?: number;
  /** Size of the last axis, when fixed: the target is then viewed as [-1, channels] by a constant Reshape. */
  channels?: number;
}

/** The graph outputs that carry one target's range for a batch. */
export interface RangeOutputs {
  target: string;
  /** int64 [rank]: the target's dimensions. */
  shape: string;
  /**
   * float32 [channels] (a scalar for a scalar target): the smallest and largest value of each channel of the last
   * axis. For a target of rank 0 or 1 each value is its own channel, so both name the (widened) target itself.
   */
  channelMin: string;
  channelMax: string;
  /**
   * float32 scalar: the sum of every value, which is NaN whenever a value is NaN (the min/max reductions may skip
   * a NaN; a sum cannot). It can also overflow to an infinity with every value finite, and (rarely) to NaN when it
   * overflows both ways, so a NaN sum is a reason to look, not proof. Absent for rank 0 and 1, whose values are
   * fetched themselves.
   */
  sum?: string;
}

/**
 * The model's proto with, for each target, its shape and the per-channel minimum and maximum over every axis but
 * the last appended to graph.output, computed by nodes added to the graph: Shape, ReduceMin and ReduceMax over
 * axes 0..rank-2 and ReduceSum over all (for NaN, see RangeOutputs.sum). Only these small tensors leave ONNX
 * Runtime; the target itself stays inside. From the per-channel extremes a caller gets the minimum, the maximum
 * and each channel's largest |x| (max(-min, max)) exactly, as the values are float32 and min/max round nothing.
 * Where the rank is not known the target is first reshaped to [-1, C], C read from its shape (a scalar becomes
 * [1], one channel), which costs a few more (tiny) nodes.
 *
 * The nodes are written for the model's default-domain opset (7 to 21): Slice takes its bounds as attributes
 * before opset 10 and as inputs from 10; ReduceMin/ReduceMax take axes as an attribute before 18 and as an input
 * from 18; ReduceSum with no axes reduces every axis at any opset. The given proto is not modified.
 */
export function withRangeOutputs(
  proto: ModelProto,
  targets: readonly RangeTarget[],
  source = 'model',
  /** false: the extremes of the whole tensor only (one 'channel'), which ONNX Runtime reduces several times faster. */
  perChannel = true,
): { proto: ModelProto; outputs: RangeOutputs[] } {
  const edit = editorOf(proto, source);
  const opset = proto.opsetImport.find((o) => (o.domain ?? '') === '' || o.domain === 'ai.onnx')?.version;
  if (opset === undefined || opset < 7) throw new ModelError(`${source}: ranges inside ONNX Runtime need default-domain opset 7 or later, the model has ${opset ?? 'none'}`);
  // One prefix no name of the model starts with, so the added names read as one family and cannot clash.
  const used = [...usedNames(proto)];
  let prefix = 'onnx_compress_range';
  for (let k = 1; used.some((n) => n.startsWith(prefix)); k++) prefix = `onnx_compress_range${k}`;
  const at = (name: string) => `${prefix}/${name}`;
  const constants = new Map<string, string>();
  /** An int64 constant, added once. */
  const int64 = (name: string, values: readonly bigint[]): string => {
    let made = constants.get(name);
    if (!made) constants.set(name, (made = edit.tensor(at(name), DataType.INT64, [values.length], BigInt64Array.from(values))));
    return made;
  };
  const nodes: NodeProto[] = [];
  const addOutput = (name: string, elemType: DataType): void => edit.addOutput(name, elemType);
  const outputs: RangeOutputs[] = [];
  const reduce = (op: 'ReduceMin' | 'ReduceMax', input: string, output: string, axes: number[]): NodeProto =>
    opset >= 18
      ? makeNode(op, [input, int64(`axes_${axes.length}`, axes.map(BigInt))], [output], [intAttr('keepdims', 0)], { name: output })
      : makeNode(op, [input], [output], [intsAttr('axes', axes), intAttr('keepdims', 0)], { name: output });
  const seen = new Set<string>();
  targets.forEach((t, i) => {
    if (seen.has(t.name)) return;
    seen.add(t.name);
    checkProduced(edit, t.name, source, 'observe');
    const n = (what: string) => at(`${i}/${what}`);
    let x = t.name;
    if (t.float16) {
      nodes.push(makeNode('Cast', [x], [n('float')], [intAttr('to', DataType.FLOAT)], { name: n('float') }));
      x = n('float');
    }
    nodes.push(makeNode('Shape', [t.name], [n('shape')], undefined, { name: n('shape') }));
    addOutput(n('shape'), DataType.INT64);
    if (t.rank !== undefined && t.rank <= 1) {
      addOutput(x, DataType.FLOAT);
      outputs.push({ target: t.name, shape: n('shape'), channelMin: x, channelMax: x });
      return;
    }
    if (!perChannel) {
      // Without axes every axis is reduced, at any opset, over the contiguous values: no view, no strided pass.
      for (const [op, what] of [['ReduceMin', 'min'], ['ReduceMax', 'max'], ['ReduceSum', 'sum']] as const) {
        nodes.push(makeNode(op, [x], [n(what)], [intAttr('keepdims', 0)], { name: n(what) }));
        addOutput(n(what), DataType.FLOAT);
      }
      outputs.push({ target: t.name, shape: n('shape'), channelMin: n('min'), channelMax: n('max'), sum: n('sum') });
      return;
    }
    let rows = x;
    let axes = Array.from({ length: (t.rank ?? 2) - 1 }, (_, k) => k);
    if (t.rank !== undefined && t.rank > 2 && t.channels !== undefined && t.channels > 0) {
      // ONNX Runtime reduces the leading axis of a 2-D view faster than several leading axes (about 1.5x at 128
      // channels); a Reshape to a constant shape is a view, not a copy.
      nodes.push(makeNode('Reshape', [x, int64(`rows_by_${t.channels}`, [-1n, BigInt(t.channels)])], [n('rows')], undefined, { name: n('rows') }));
      rows = n('rows');
      axes = [0];
    } else if (t.rank === undefined) {
      nodes.push(
        opset >= 10
          ? makeNode('Slice', [n('shape'), int64('last_start', [-1n]), int64('last_end', [INT64_MAX]), int64('axes_1', [0n])], [n('channels')], undefined, { name: n('channels') })
          : makeNode('Slice', [n('shape')], [n('channels')], [intsAttr('starts', [-1]), intsAttr('ends', [INT64_MAX]), intsAttr('axes', [0])], { name: n('channels') }),
      );
      // A last axis of size 0 is reshaped as 1 (the tensor is empty either way): [-1, 0] leaves -1 undefined.
      nodes.push(makeNode('Equal', [n('channels'), int64('zero', [0n])], [n('no_channels')], undefined, { name: n('no_channels') }));
      nodes.push(makeNode('Cast', [n('no_channels')], [n('no_channels_int')], [intAttr('to', DataType.INT64)], { name: n('no_channels_int') }));
      nodes.push(makeNode('Add', [n('channels'), n('no_channels_int')], [n('channels_at_least_1')], undefined, { name: n('channels_at_least_1') }));
      nodes.push(makeNode('Concat', [int64('minus_one', [-1n]), n('channels_at_least_1')], [n('rows_by_channels')], [intAttr('axis', 0)], { name: n('rows_by_channels') }));
      nodes.push(makeNode('Reshape', [x, n('rows_by_channels')], [n('rows')], undefined, { name: n('rows') }));
      rows = n('rows');
      axes = [0];
    }
    nodes.push(reduce('ReduceMin', rows, n('channel_min'), axes), reduce('ReduceMax', rows, n('channel_max'), axes));
    // No axes: every axis, at any opset (an attribute before 13, an input from 13, both optional).
    nodes.push(makeNode('ReduceSum', [x], [n('sum')], [intAttr('keepdims', 0)], { name: n('sum') }));
    for (const o of ['channel_min', 'channel_max', 'sum']) addOutput(n(o), DataType.FLOAT);
    outputs.push({ target: t.name, shape: n('shape'), channelMin: n('channel_min'), channelMax: n('channel_max'), sum: n('sum') });
  });
  // The added nodes read nothing but their target and each other, so appending them keeps the order topological.
  edit.append(nodes);
  return { proto: edit.finish().model.proto, outputs };
}

function knownTypes(graph: GraphProto): Map<string, TypeProto> {
  const types = new Map<string, TypeProto>();
  for (const t of graph.initializer) {
    if (t.name && t.dataType) {
      types.set(t.name, { tensorType: { elemType: t.dataType, shape: { dim: t.dims.map((d) => ({ dimValue: d })) } } });
    }
  }
  // An initializer's own element type and dims are exact; declared value info and inputs fill in the rest.
  for (const v of [...graph.valueInfo, ...graph.input]) if (v.name && v.type && !types.has(v.name)) types.set(v.name, v.type);
  return types;
}

/** A session over a copy of the model whose outputs include the captured tensors. */
export class Capture {
  private constructor(
    private readonly session: Session,
    /** The captured names, in the order asked for, without repeats. */
    readonly names: readonly string[],
  ) {}

  static async open(model: string | OnnxModel, names: readonly string[], options: CaptureOptions = {}): Promise<Capture> {
    const m = typeof model === 'string' ? loadModel(model) : model;
    const copy = new OnnxModel(withOutputs(m.proto, names, m.source), m.baseDir, m.source);
    const session = await Session.create(copy, { ...options, graphOptimization: options.graphOptimization ?? 'disabled' });
    return new Capture(session, [...new Set(names)]);
  }

  /** The captured tensors for one set of feeds, by name. */
  async run(feeds: Feeds): Promise<Outputs> {
    return this.session.run(feeds, this.names);
  }

  /** Session.runBatched over the captured tensors (all must have the batch on axis 0). */
  async runBatched(samples: readonly Feeds[], batchSize = 1): Promise<Outputs> {
    return this.session.runBatched(samples, batchSize, this.names);
  }

  async dispose(): Promise<void> {
    await this.session.dispose();
  }
}

/** One-shot capture: opens, runs once, closes. */
export async function captureTensors(
  model: string | OnnxModel,
  names: readonly string[],
  feeds: Feeds,
  options: CaptureOptions = {},
): Promise<Outputs> {
  const capture = await Capture.open(model, names, options);
  try {
    return await capture.run(feeds);
  } finally {
    await capture.dispose();
  }
}
