// Static shapes of a model's values for one set of input shapes, as ONNX Runtime computes them: the model runs
// once with a Shape node added beside every value of the main graph, and only those small int64 vectors come back.
// The inputs are declared with the feeds' dims, so ORT infers the dims of most values at load and its constant
// folding answers those Shape nodes without keeping the values alive; only values whose dims depend on the data
// are measured while the model runs. No shape rule is written here for any op.
//
// The inputs are the caller's feeds (a calibration batch) or, by default, zeros of the declared input shapes with
// each symbolic dimension 1 or the size the caller gives it (a sum such as `past + seq` adds its terms). Shapes
// that depend on the data (NonZero, TopK with a computed k...) are those of these inputs. Declared dims
// (initializers, fully static value_info, inputs, outputs) fill in what the run does not cover: values of
// subgraphs are not run, and a node output nothing reads (an optional output such as Dropout's mask, which some
// kernels refuse to produce) is not asked for.
//
// rankOf / rankLookup answer "what rank has this value" cheaply: from a shape map when one was inferred, else from
// the declarations (a declared shape gives the rank even where its dims are symbolic).
import { toOrtTensor } from '../runtime/ort-tensor.js';
import { RuntimeError, Session, type Feeds, type SessionOptions } from '../runtime/session.js';
import { attributeType, findAttr } from './attributes.js';
import { dtypeInfo, dtypeName } from './dtypes.js';
import { GraphEditor } from './editor.js';
import { GraphIndex } from './graph.js';
import { ModelError, type OnnxModel } from './model.js';
import { elementCount, zeroValues, type TensorData } from './tensor.js';
import { AttributeType, DataType, type GraphProto, type NodeProto, type TypeProto } from './types.js';

/** Dims of each value by name. */
export type ShapeMap = Map<string, number[]>;

/** The rank of a value, or undefined when nothing says. */
export type RankLookup = (value: string) => number | undefined;

export interface ShapeOptions {
  /** Sizes of symbolic input dims by their name (`batch: 4`); every other symbolic dim is 1. Unused with feeds. */
  dims?: Readonly<Record<string, number>>;
  session?: Pick<SessionOptions, 'intraOpThreads' | 'executionProvider'>;
}

/** Ops whose outputs are not tensors, so Shape cannot read them. */
const NOT_TENSORS = /^(Sequence\w*|SplitToSequence|Optional)$/;

/** How many times a refused Shape node is taken out and the session reopened before giving up. */
const MAX_RETRIES = 8;

/**
 * Dims of every value of the main graph for the given feeds (or the declared input shapes), from one run in ONNX
 * Runtime, completed by the declared dims. Throws a ModelError naming an input whose shape cannot be generated
 * (unknown rank, or a type ORT cannot take), and the runtime error when the model does not run.
 */
export async function inferShapes(model: OnnxModel, feeds?: Feeds, options: ShapeOptions = {}): Promise<ShapeMap> {
  const inputs = feeds ?? declaredFeeds(model, options.dims ?? {});
  const shapes = declaredShapes(model.graph);
  for (const [name, t] of Object.entries(inputs)) shapes.set(name, [...t.dims]);

  const g = model.graph;
  const index = new GraphIndex(g);
  const outputs = new Set(g.output.map((o) => o.name ?? ''));
  let targets = g.node.flatMap((n) =>
    NOT_TENSORS.test(n.opType ?? '') ? [] : n.output.filter((o) => o && (outputs.has(o) || index.consumers(o).length > 0) && isTensorValue(index, o)),
  );
  for (let attempt = 0; targets.length > 0; attempt++) {
    const { model: probe, shapeOf } = withShapeNodes(model, index, targets, inputs);
    let session: Session;
    try {
      // Basic optimisations include ORT's constant folding, which turns a Shape of a value whose dims it inferred
      // into a constant; with optimisations off, ORT keeps every value alive until its Shape runs (measured: peak
      // memory that of a capture of every value). They rewrite nothing in a way that changes a value's dims.
      session = await Session.create(probe, { ...options.session, graphOptimization: 'basic' });
    } catch (e) {
      // A Shape node ORT refuses (a value that is not a tensor after all) is dropped and the rest tried again.
      const refused = e instanceof RuntimeError && e.opType === 'Shape' ? targets.find((t) => shapeOf.get(t)!.node === e.node) : undefined;
      if (!refused || attempt >= MAX_RETRIES) throw e;
      targets = targets.filter((t) => t !== refused);
      continue;
    }
    try {
      const out = await session.run(inputs, targets.map((t) => shapeOf.get(t)!.output));
      for (const t of targets) shapes.set(t, Array.from(out[shapeOf.get(t)!.output].data as BigInt64Array, Number));
    } finally {
      await session.dispose();
    }
    break;
  }
  return shapes;
}

/**
 * The model with a Shape node for each target (a graph output) and the inputs declared with the dims of the feeds,
 * so that ONNX Runtime infers every static dim at load.
 */
function withShapeNodes(model: OnnxModel, index: GraphIndex, targets: readonly string[], feeds: Feeds): { model: OnnxModel; shapeOf: Map<string, { node: string; output: string }> } {
  const edit = new GraphEditor(model);
  for (const [name, t] of Object.entries(feeds)) {
    const elemType = index.graphInput(name)?.type?.tensorType?.elemType;
    if (elemType !== undefined) edit.setValueType(name, elemType, t.dims);
  }
  const shapeOf = new Map<string, { node: string; output: string }>();
  const nodes = targets.map((t) => {
    const output = edit.value(`${t}/shape`);
    const node = edit.node('Shape', [t], [output], undefined, { name: `${t}/Shape` });
    shapeOf.set(t, { node: node.name!, output });
    edit.addOutput(output, DataType.INT64);
    return node;
  });
  // They read nothing but graph values, so appending them keeps the order topological.
  edit.append(nodes);
  return { model: edit.finish().model, shapeOf };
}

function isTensorValue(index: GraphIndex, name: string): boolean {
  const type = index.valueInfo(name)?.type;
  return !type || type.tensorType !== undefined;
}

/** Zeros of every required input's declared shape, symbolic dims from `dims` or 1. */
function declaredFeeds(model: OnnxModel, dims: Readonly<Record<string, number>>): Feeds {
  const feeds: Feeds = {};
  const index = new GraphIndex(model.graph);
  for (const input of index.feeds()) {
    const name = input.name ?? '';
    const tensor = input.type?.tensorType;
    const shape = tensor?.shape?.dim;
    if (tensor?.elemType === undefined || !shape) {
      throw new ModelError(`${model.source}: input '${name}' has no declared ${tensor ? 'shape' : 'tensor type'}; give feeds to infer shapes`);
    }
    const size = shape.map((d) => d.dimValue ?? symbolicSize(d.dimParam ?? '', dims));
    const info = dtypeInfo(tensor.elemType);
    if (info.ort === null) throw new ModelError(`${model.source}: input '${name}' is ${dtypeName(tensor.elemType)}, which ONNX Runtime cannot be fed from JavaScript; give feeds`);
    const count = elementCount(size, `input '${name}'`);
    const data: TensorData = info.kind === 'string' ? Array.from({ length: count }, () => '') : zeroValues(tensor.elemType, count);
    feeds[name] = toOrtTensor({ dtype: tensor.elemType, dims: size, data }, `input '${name}'`);
  }
  return feeds;
}

/**
 * A symbolic dim's size: given by name, or a sum of names and numbers (exporters write the attention mask of a
 * decoder as `past_sequence_length + sequence_length`), each unknown name 1.
 */
function symbolicSize(param: string, dims: Readonly<Record<string, number>>): number {
  const given = dims[param];
  if (given !== undefined) return given;
  const terms = param.split('+').map((t) => t.trim());
  if (terms.length < 2 || terms.some((t) => t === '')) return 1;
  return terms.reduce((a, t) => a + (/^\d+$/.test(t) ? Number(t) : (dims[t] ?? 1)), 0);
}

/** Dims the graph declares in full: initializers, stored Constant values, and value_info, inputs, outputs without symbolic dims. */
export function declaredShapes(graph: GraphProto): ShapeMap {
  const shapes: ShapeMap = new Map();
  for (const v of [...graph.valueInfo, ...graph.input, ...graph.output]) {
    const dims = declaredDims(v.type);
    if (v.name && dims && dims.every((d): d is number => d !== undefined)) shapes.set(v.name, dims);
  }
  for (const n of graph.node) {
    const t = constantTensor(n);
    if (t) shapes.set(n.output[0], [...t.dims]);
  }
  // An initializer's own dims are exact; a declaration may be stale.
  for (const t of graph.initializer) if (t.name) shapes.set(t.name, [...t.dims]);
  return shapes;
}

function declaredDims(type: TypeProto | undefined): (number | undefined)[] | undefined {
  return type?.tensorType?.shape?.dim.map((d) => d.dimValue);
}

function constantTensor(node: NodeProto) {
  if (node.opType !== 'Constant' || !node.output[0]) return undefined;
  const a = findAttr(node, 'value');
  return a && attributeType(a) === AttributeType.TENSOR ? a.t : undefined;
}

/**
 * A rank lookup over a graph: the inferred shapes first when given, then initializers, stored Constant values and
 * declared types (symbolic dims count: the rank is known). Built once, each lookup is a map read.
 */
export function rankLookup(graph: GraphProto, shapes?: ReadonlyMap<string, readonly number[]>): RankLookup {
  const ranks = new Map<string, number>();
  for (const v of [...graph.valueInfo, ...graph.input, ...graph.output]) {
    const dims = declaredDims(v.type);
    if (v.name && dims) ranks.set(v.name, dims.length);
  }
  for (const n of graph.node) {
    const t = constantTensor(n);
    if (t) ranks.set(n.output[0], t.dims.length);
  }
  for (const t of graph.initializer) if (t.name) ranks.set(t.name, t.dims.length);
  return (value) => shapes?.get(value)?.length ?? ranks.get(value);
}

/** The rank of one value (see rankLookup); build a rankLookup instead for many values. */
export function rankOf(graph: GraphProto, value: string, shapes?: ReadonlyMap<string, readonly number[]>): number | undefined {
  return rankLookup(graph, shapes)(value);
}
