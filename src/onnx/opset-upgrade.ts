// Raising a graph's default-domain opset (the graph editor's requireOpset), which QDQ needs (13 for per-channel
// `axis`, 21 for int4 and `block_size`; dynamic quantization needs 11). Simply changing the number would break
// models: ReduceMean's `axes`, for one, moved from attribute to input at 18. Between any two versions most
// operators only gained types or optional inputs, so their nodes stay as written. The others are rewritten so
// that they compute what they computed before, as the ONNX version converter's adapters do (and further where
// an adapter gives up: Softmax on a middle axis, Resize-10's nearest rounding, Scan-8's batch axis):
// attributes that became inputs, defaults that changed, operators replaced by others. What has no exact
// rewrite is refused with the node named. docs/opset-conversion.md lists every case and the conformance sweep.
import { findAttr, graphAttr, intAttr, stringAttr } from './attributes.js';
import { makeNode, valueInfo } from './builder.js';
import { GraphError, type NameGenerator } from './graph.js';
import { makeTensor, tensorValues, type TensorValues } from './tensor.js';
import { DataType, type AttributeProto, type GraphProto, type NodeProto, type TensorProto } from './types.js';
import { GraphFacts, type ValueFacts } from './value-facts.js';

export type { ValueFacts } from './value-facts.js';

/** Attributes that became inputs at `since`: name, input position, and how the value is stored. */
interface ToInputs {
  since: number;
  /** `like-input`: a scalar of the element type of input 0 (Clip's bounds, Pad's value). */
  inputs: { attr: string; position: number; kind: 'ints' | 'int' | 'like-input' }[];
}

const axes = (since: number): ToInputs => ({ since, inputs: [{ attr: 'axes', position: 1, kind: 'ints' }] });
const TO_INPUTS: Record<string, ToInputs> = {
  Squeeze: axes(13),
  Unsqueeze: axes(13),
  ReduceSum: axes(13),
  ReduceMean: axes(18),
  ReduceMax: axes(18),
  ReduceMin: axes(18),
  ReduceProd: axes(18),
  ReduceL1: axes(18),
  ReduceL2: axes(18),
  ReduceLogSum: axes(18),
  ReduceLogSumExp: axes(18),
  ReduceSumSquare: axes(18),
  Split: { since: 13, inputs: [{ attr: 'split', position: 1, kind: 'ints' }] },
  Clip: { since: 11, inputs: [{ attr: 'min', position: 1, kind: 'like-input' }, { attr: 'max', position: 2, kind: 'like-input' }] },
  Pad: { since: 11, inputs: [{ attr: 'pads', position: 1, kind: 'ints' }, { attr: 'value', position: 2, kind: 'like-input' }] },
  Slice: {
    since: 10,
    inputs: [
      { attr: 'starts', position: 1, kind: 'ints' },
      { attr: 'ends', position: 2, kind: 'ints' },
      { attr: 'axes', position: 3, kind: 'ints' },
    ],
  },
  TopK: { since: 10, inputs: [{ attr: 'k', position: 1, kind: 'int' }] },
};

/** Attributes removed at `since` whose default behaviour equals the old one at inference. */
const DROPPED: Record<string, { attr: string; since: number }[]> = {
  Gemm: [{ attr: 'broadcast', since: 7 }],
  BatchNormalization: [
    { attr: 'consumed_inputs', since: 6 },
    { attr: 'is_test', since: 7 },
    { attr: 'spatial', since: 9 }, // spatial=0 is rewritten before this applies
  ],
  Dropout: [{ attr: 'is_test', since: 7 }],
};
// Element-wise ops lost `broadcast`/`axis` at 7 for numpy broadcasting, which equals broadcast=1 without axis.
for (const op of ['Add', 'Sub', 'Mul', 'Div', 'Pow', 'And', 'Or', 'Xor', 'Equal', 'Greater', 'Less']) {
  DROPPED[op] = [{ attr: 'broadcast', since: 7 }];
}

/** Experimental operators the standard dropped at opset 10 (ONNX 1.5) without a replacement. */
const EXPERIMENTAL = new Set(['Affine', 'Crop', 'DynamicSlice', 'GRUUnit', 'GivenTensorFill', 'ImageScaler', 'ParametricSoftplus', 'Scale', 'ScaledTanh']);

const utf8 = new TextDecoder();

function crosses(from: number, to: number, since: number): boolean {
  return from < since && since <= to;
}

/** What one graph's upgrade shares across its nodes. */
interface Ctx {
  from: number;
  to: number;
  names: NameGenerator;
  source: string;
  facts: ValueFacts;
  known: GraphFacts;
  /** Values some node (of this graph or a subgraph) or a graph output reads. */
  read: Set<string>;
  /** Initializers and Constant values of this graph, for constant attributes such as Resize scales. */
  constants: Map<string, TensorProto>;
  /** New initializers, which go into this graph. */
  added: TensorProto[];
}

/**
 * The graph (and its subgraphs) rewritten for default-domain opset `to`; new initializers go into the graph
 * holding the node. `facts` (ranks, element types) come first; what the model declares fills the rest.
 * Returns the same object when nothing changed.
 */
export function upgradeOpset(
  graph: GraphProto,
  from: number,
  to: number,
  names: NameGenerator,
  source: string,
  facts: ValueFacts = {},
  outer?: GraphFacts,
): GraphProto {
  const ctx: Ctx = { from, to, names, source, facts, known: new GraphFacts(graph, outer), read: readNames(graph), constants: constantsOf(graph), added: [] };
  let changed = false;
  const nodes: NodeProto[] = [];
  for (const node of graph.node) {
    const next = upgradeNode(node, ctx);
    if (next.length !== 1 || next[0] !== node) changed = true;
    nodes.push(...next);
  }
  if (!changed) return graph;
  return { ...graph, node: nodes, initializer: [...graph.initializer, ...ctx.added] };
}

function readNames(graph: GraphProto): Set<string> {
  const read = new Set<string>();
  const visit = (g: GraphProto): void => {
    for (const o of g.output) if (o.name) read.add(o.name);
    for (const n of g.node) {
      for (const i of n.input) if (i) read.add(i);
      for (const a of n.attribute) for (const sub of a.g ? [a.g, ...a.graphs] : a.graphs) visit(sub);
    }
  };
  visit(graph);
  return read;
}

function constantsOf(graph: GraphProto): Map<string, TensorProto> {
  const out = new Map<string, TensorProto>();
  for (const t of graph.initializer) if (t.name) out.set(t.name, t);
  for (const n of graph.node) {
    const t = n.opType === 'Constant' && !n.domain ? findAttr(n, 'value')?.t : undefined;
    if (t && n.output[0]) out.set(n.output[0], t);
  }
  return out;
}

function refuse(ctx: Ctx, node: NodeProto, why: string): never {
  throw new GraphError(`${ctx.source}: cannot raise the opset from ${ctx.from} to ${ctx.to}: node '${node.name ?? ''}' (${node.opType}) ${why}`);
}

const rankOf = (ctx: Ctx, name: string): number | undefined => ctx.facts.rankOf?.(name) ?? ctx.known.rank(name);
const typeOf = (ctx: Ctx, name: string): DataType | undefined => ctx.facts.elemTypeOf?.(name) ?? ctx.known.elemType(name);

function initializer(ctx: Ctx, base: string, dtype: DataType, dims: readonly number[], values: TensorValues): string {
  const name = ctx.names.fresh(base);
  ctx.added.push(makeTensor(name, dtype, dims, values));
  return name;
}

function newNode(ctx: Ctx, op: string, inputs: readonly string[], outputs: readonly string[], attrs: AttributeProto[] = [], base = op): NodeProto {
  return makeNode(op, inputs, outputs, attrs, { name: ctx.names.fresh(base) });
}

/**
 * A scalar of `like`'s element type: an initializer of that type when it is known; otherwise a float32 one,
 * cast to the type at run time (CastLike, from 15) or left float32 (the type of the models this project
 * quantizes) before 15.
 */
function scalarLike(ctx: Ctx, base: string, value: number, like: string, pre: NodeProto[]): string {
  const type = typeOf(ctx, like);
  if (type !== undefined) return initializer(ctx, base, type, [], [value]);
  const f = initializer(ctx, base, DataType.FLOAT, [], [value]);
  if (ctx.to < 15) return f;
  const out = ctx.names.fresh(`${base}_cast`);
  pre.push(newNode(ctx, 'CastLike', [f, like], [out]));
  return out;
}

/** The float values of a constant input (initializer or Constant), or undefined when computed at run time. */
function constantFloats(ctx: Ctx, name: string): number[] | undefined {
  const t = ctx.constants.get(name);
  if (!t || t.externalData.length) return undefined;
  return Array.from(tensorValues(t).data as ArrayLike<number>);
}

function text(a: AttributeProto | undefined): string | undefined {
  return a?.s ? utf8.decode(a.s) : undefined;
}

function upgradeNode(node: NodeProto, ctx: Ctx): NodeProto[] {
  const { from, to } = ctx;
  let n = node;
  const edit = (): NodeProto => (n === node ? (n = { ...node, input: [...node.input], output: [...node.output], attribute: [...node.attribute] }) : n);
  const setAttr = (a: AttributeProto): void => {
    const m = edit();
    const i = m.attribute.findIndex((x) => x.name === a.name);
    if (i >= 0) m.attribute[i] = a;
    else m.attribute.push(a);
  };
  const dropAttr = (name: string): void => {
    if (findAttr(n, name)) edit().attribute = n.attribute.filter((x) => x.name !== name);
  };
  const setInput = (position: number, name: string): void => {
    const m = edit();
    while (m.input.length < position) m.input.push('');
    m.input[position] = name;
  };
  const label = node.name || node.opType || 'node';
  const pre: NodeProto[] = [];

  // Subgraphs share the model's opsets, so their nodes move too; what they add stays in them.
  for (const [i, a] of node.attribute.entries()) {
    if (!a.g && a.graphs.length === 0) continue;
    const g = a.g ? upgradeOpset(a.g, from, to, ctx.names, ctx.source, ctx.facts, ctx.known) : undefined;
    const gs = a.graphs.map((sub) => upgradeOpset(sub, from, to, ctx.names, ctx.source, ctx.facts, ctx.known));
    if (g !== a.g || gs.some((sub, k) => sub !== a.graphs[k])) edit().attribute[i] = { ...a, ...(g ? { g } : {}), graphs: gs };
  }
  const domain = node.domain ?? '';
  if (domain !== '' && domain !== 'ai.onnx') return [n];
  const op = node.opType ?? '';

  if (EXPERIMENTAL.has(op) && crosses(from, to, 10)) refuse(ctx, node, 'is an experimental operator that opset 10 removed');

  if ((op === 'Softmax' || op === 'LogSoftmax' || op === 'Hardmax') && crosses(from, to, 13)) return softmax13(n, ctx);
  if (op === 'Scan' && crosses(from, to, 9)) return scan9(n, ctx);
  if (op === 'BatchNormalization' && crosses(from, to, 9) && findAttr(n, 'spatial')?.i === 0n) return perActivationBatchNorm(n, ctx);

  // Upsample: `scales` became an input at 9, and the operator gave way to Resize at 10.
  let upsampled = false;
  if (op === 'Upsample' && (crosses(from, to, 9) || crosses(from, to, 10))) {
    const attr = findAttr(n, 'scales');
    if (attr) {
      setInput(1, initializer(ctx, `${label}_scales`, DataType.FLOAT, [attr.floats.length], attr.floats));
      dropAttr('scales');
    }
    if (to >= 10) {
      edit().opType = 'Resize';
      upsampled = true;
    }
  }
  // Resize-10 sampled at x_out / scale (asymmetric) and rounded that down when enlarging, up when shrinking
  // (ONNX Runtime's and the reference's reading); from 11 both are attributes, with other defaults.
  if ((op === 'Resize' && crosses(from, to, 11)) || (upsampled && to >= 11)) {
    const scales = n.input[1];
    const roi = to >= 13 ? '' : initializer(ctx, `${label}_roi`, DataType.FLOAT, [0], []);
    edit().input = [n.input[0], roi, scales];
    setAttr(stringAttr('coordinate_transformation_mode', 'asymmetric'));
    if ((text(findAttr(n, 'mode')) ?? 'nearest') === 'nearest') {
      const values = upsampled ? [1] : constantFloats(ctx, scales);
      if (!values) refuse(ctx, node, 'rounds nearest samples by whether its run-time scales enlarge or shrink, which opset 11 cannot express');
      const up = values.every((s) => s >= 1);
      const down = values.every((s) => s <= 1);
      if (!up && !down) refuse(ctx, node, 'enlarges some axes and shrinks others in nearest mode, which opset 11 rounds alike');
      setAttr(stringAttr('nearest_mode', up ? 'floor' : 'ceil'));
    }
  } else if (op === 'Resize' && crosses(from, to, 13)) {
    resize13(n, ctx, edit, setAttr, setInput);
  }
  if (op === 'Scatter' && crosses(from, to, 11)) edit().opType = 'ScatterElements';
  if (op === 'GridSample' && crosses(from, to, 20)) {
    const mode = text(findAttr(n, 'mode'));
    const renamed = mode === 'bilinear' ? 'linear' : mode === 'bicubic' ? 'cubic' : undefined;
    if (renamed) setAttr(stringAttr('mode', renamed));
  }
  // RoiAlign-16's default sampling is half_pixel; before, it was what 16 calls output_half_pixel.
  if (op === 'RoiAlign' && crosses(from, to, 16) && !findAttr(n, 'coordinate_transformation_mode')) {
    setAttr(stringAttr('coordinate_transformation_mode', 'output_half_pixel'));
  }
  // DFT's axis became input 2 at 20, and its default changed from 1 to -2.
  if (op === 'DFT' && crosses(from, to, 20)) {
    setInput(2, initializer(ctx, `${label}_axis`, DataType.INT64, [], [findAttr(n, 'axis')?.i ?? 1n]));
    dropAttr('axis');
  }
  if (op === 'GroupNormalization' && crosses(from, to, 21)) groupNorm21(n, ctx, edit, setAttr, pre);
  if (op === 'BatchNormalization' && crosses(from, to, 14)) batchNorm14(n, ctx, edit, setAttr);
  if (op === 'Dropout') dropout(n, ctx, edit, dropAttr, setInput);

  if (crosses(from, to, 7)) broadcast7(n, ctx, setInput, dropAttr, pre);
  for (const d of DROPPED[op] ?? []) {
    if (findAttr(n, d.attr) && crosses(from, to, d.since)) dropAttr(d.attr);
  }
  const moves = TO_INPUTS[op];
  if (moves && crosses(from, to, moves.since)) {
    for (const m of moves.inputs) {
      const a = findAttr(n, m.attr);
      if (!a) continue;
      // Pad's value is read in constant mode only.
      if (op === 'Pad' && m.attr === 'value' && (text(findAttr(n, 'mode')) ?? 'constant') !== 'constant') {
        dropAttr(m.attr);
        continue;
      }
      const base = `${label}_${m.attr}`;
      const name =
        m.kind === 'like-input'
          ? scalarLike(ctx, base, a.f ?? 0, n.input[0], pre)
          : m.kind === 'int'
            ? initializer(ctx, base, DataType.INT64, [1], [a.i ?? 0n])
            : initializer(ctx, base, DataType.INT64, [a.ints.length], a.ints);
      setInput(m.position, name);
      dropAttr(m.attr);
    }
  }
  // From 18 an even Split must say how many outputs it has (before, the output count said it).
  if (op === 'Split' && crosses(from, to, 18) && !n.input[1] && !findAttr(n, 'num_outputs')) setAttr(intAttr('num_outputs', n.output.length));
  return [...pre, n];
}

/**
 * Opset 7 brought numpy broadcasting, which aligns trailing axes. Before, an element-wise op's second input
 * could be aligned at `axis` of the first, and PRelu's slope of shape [C] followed axis 1 (the channels). Both
 * become numpy broadcasts by giving that input trailing axes of size 1.
 */
function broadcast7(
  n: NodeProto,
  ctx: Ctx,
  setInput: (position: number, name: string) => void,
  dropAttr: (name: string) => void,
  pre: NodeProto[],
): void {
  const op = n.opType ?? '';
  const [a, b] = n.input;
  const axisAttr = findAttr(n, 'axis');
  let ones = 0;
  if (op === 'PRelu') {
    const slope = ctx.constants.get(b);
    if (slope && slope.dims.reduce((x, y) => x * y, 1) === 1) return;
    const rank = rankOf(ctx, a);
    const slopeRank = slope ? slope.dims.length : rankOf(ctx, b);
    if (slopeRank !== 1) return; // a full-rank slope broadcasts the same way in both
    if (rank === undefined) refuse(ctx, n, 'has a per-channel slope, which opset 7 aligns with the last axis, and the rank of its input is unknown');
    ones = Math.max(0, rank - 2);
  } else if (DROPPED[op]?.some((d) => d.attr === 'broadcast') && axisAttr && findAttr(n, 'broadcast')?.i === 1n) {
    const rank = rankOf(ctx, a);
    const bRank = ctx.constants.get(b)?.dims.length ?? rankOf(ctx, b);
    if (rank === undefined || bRank === undefined) refuse(ctx, n, 'broadcasts along an explicit axis, which opset 7 removed, and the ranks of its inputs are unknown');
    const axis = Number(axisAttr.i ?? 0n);
    ones = rank - (axis < 0 ? axis + rank : axis) - bRank;
    dropAttr('axis');
  } else {
    return;
  }
  if (ones > 0) setInput(1, withTrailingOnes(ctx, b, ones, pre, n.name || op));
}

/** `name` with `count` trailing axes of size 1: a re-dimensioned copy of a constant, else a run-time Reshape. */
function withTrailingOnes(ctx: Ctx, name: string, count: number, pre: NodeProto[], label: string): string {
  const t = ctx.constants.get(name);
  const ones = new Array<number>(count).fill(1);
  if (t) {
    const copy = ctx.names.fresh(`${name}_aligned`);
    ctx.added.push({ ...t, name: copy, dims: [...t.dims, ...ones] });
    return copy;
  }
  const [shape, full, out] = ['shape', 'aligned_shape', 'aligned'].map((s) => ctx.names.fresh(`${name}_${s}`));
  const tail = initializer(ctx, `${name}_ones`, DataType.INT64, [count], ones.map(BigInt));
  pre.push(
    newNode(ctx, 'Shape', [name], [shape], [], `${label}_Shape`),
    newNode(ctx, 'Concat', [shape, tail], [full], [intAttr('axis', 0)], `${label}_Concat`),
    newNode(ctx, 'Reshape', [name, full], [out], [], `${label}_Reshape`),
  );
  return out;
}

/**
 * Softmax, LogSoftmax and Hardmax before 13 flattened the input to 2-D at `axis` (default 1) and worked along
 * the second dimension; from 13 they work along `axis` alone (default -1). The same when `axis` is the last
 * axis; otherwise Flatten(axis) -> op(-1) -> Reshape(Shape(input)) computes the old result for any rank.
 */
function softmax13(node: NodeProto, ctx: Ctx): NodeProto[] {
  const axis = Number(findAttr(node, 'axis')?.i ?? 1n);
  const x = node.input[0];
  const rank = rankOf(ctx, x);
  const others = node.attribute.filter((a) => a.name !== 'axis');
  if (axis === -1 || (rank !== undefined && axis === rank - 1)) {
    return [{ ...node, attribute: [...others, intAttr('axis', axis)] }];
  }
  const label = node.name || node.opType!;
  const flat = ctx.names.fresh(`${label}_flat`);
  const out = ctx.names.fresh(`${label}_2d`);
  const shape = ctx.names.fresh(`${label}_shape`);
  return [
    newNode(ctx, 'Flatten', [x], [flat], [intAttr('axis', axis)], `${label}_Flatten`),
    { ...node, input: [flat], output: [out], attribute: [...others, intAttr('axis', -1)] },
    newNode(ctx, 'Shape', [x], [shape], [], `${label}_Shape`),
    newNode(ctx, 'Reshape', [out, shape], [node.output[0]], [], `${label}_Reshape`),
  ];
}

/**
 * Scan-8 ran its body over a leading batch axis of every input and output; Scan-9 has no batch axis. A Loop
 * over the batch that runs a Scan-9 on each item (Gather at the iteration number) and stacks what it returns
 * (Loop's scan outputs) computes the same. Per-item sequence lengths have no Scan-9 form.
 */
function scan9(node: NodeProto, ctx: Ctx): NodeProto[] {
  if (node.input[0]) refuse(ctx, node, 'takes sequence_lens, which Scan lost at opset 9');
  const label = node.name || 'Scan';
  const inputs = node.input.slice(1);
  if (inputs.length === 0) refuse(ctx, node, 'has no inputs to scan');
  const fresh = (s: string): string => ctx.names.fresh(`${label}_${s}`);
  const shape = fresh('batch_shape');
  const zero = initializer(ctx, `${label}_zero`, DataType.INT64, [], [0n]);
  const batch = fresh('batch');
  const iter = fresh('item');
  const condIn = fresh('cond_in');
  const condOut = fresh('cond_out');
  const items = inputs.map((x) => ctx.names.fresh(`${x}_item`));
  const results = node.output.map((o) => ctx.names.fresh(`${o}_item`));
  const attrs = node.attribute.map((a) => (a.name === 'directions' ? { ...a, name: 'scan_input_directions' } : a));
  const bodyNodes = [
    ...inputs.map((x, i) => newNode(ctx, 'Gather', [x, iter], [items[i]], [intAttr('axis', 0)], `${label}_Gather`)),
    makeNode('Scan', items, results, attrs, { name: ctx.names.fresh(label) }),
    newNode(ctx, 'Identity', [condIn], [condOut], [], `${label}_cond`),
  ];
  const body: GraphProto = {
    name: ctx.names.fresh(`${label}_batch_loop`),
    node: bodyNodes,
    initializer: [],
    sparseInitializer: [],
    input: [valueInfo(iter, DataType.INT64, []), valueInfo(condIn, DataType.BOOL, [])],
    output: [valueInfo(condOut, DataType.BOOL, []), ...results.map((r) => ({ name: r, metadataProps: [] }))],
    valueInfo: [],
    quantizationAnnotation: [],
    metadataProps: [],
  };
  return [
    newNode(ctx, 'Shape', [inputs[0]], [shape], [], `${label}_Shape`),
    newNode(ctx, 'Gather', [shape, zero], [batch], [intAttr('axis', 0)], `${label}_batch`),
    makeNode('Loop', [batch, ''], node.output, [graphAttr('body', body)], { name: label }),
  ];
}

/**
 * BatchNormalization with spatial=0 (before 9) normalised each activation with statistics of shape
 * (C, D1, ...); numpy broadcasting of (X - mean) / sqrt(var + epsilon) * scale + B computes the same.
 */
function perActivationBatchNorm(node: NodeProto, ctx: Ctx): NodeProto[] {
  if (node.output.slice(1).some((o) => o)) refuse(ctx, node, 'computes training statistics with spatial=0, which opset 9 removed');
  const [x, scale, bias, mean, variance] = node.input;
  const label = node.name || 'BatchNormalization';
  const pre: NodeProto[] = [];
  const eps = scalarLike(ctx, `${label}_epsilon`, findAttr(node, 'epsilon')?.f ?? 1e-5, variance, pre);
  const v = (s: string): string => ctx.names.fresh(`${label}_${s}`);
  const [centred, varEps, std, inv, scaled] = [v('centred'), v('var_eps'), v('std'), v('inv_std'), v('scaled')];
  return [
    ...pre,
    newNode(ctx, 'Sub', [x, mean], [centred], [], `${label}_Sub`),
    newNode(ctx, 'Add', [variance, eps], [varEps], [], `${label}_AddEps`),
    newNode(ctx, 'Sqrt', [varEps], [std], [], `${label}_Sqrt`),
    newNode(ctx, 'Div', [scale, std], [inv], [], `${label}_Div`),
    newNode(ctx, 'Mul', [centred, inv], [scaled], [], `${label}_Mul`),
    newNode(ctx, 'Add', [scaled, bias], [node.output[0]], [], `${label}_Add`),
  ];
}

/**
 * Before 14, a BatchNormalization with outputs beside Y ran in training mode (the spec's output case #1);
 * from 14 training_mode says so and the saved mean and variance outputs are gone.
 */
function batchNorm14(n: NodeProto, ctx: Ctx, edit: () => NodeProto, setAttr: (a: AttributeProto) => void): void {
  const extra = n.output.slice(1);
  if (!extra.some((o) => o)) {
    if (n.output.length > 1) edit().output = [n.output[0]];
    return;
  }
  const saved = extra.slice(2).filter((o) => o);
  if (saved.some((o) => ctx.read.has(o))) refuse(ctx, n, 'reads saved_mean/saved_var, outputs that opset 14 removed');
  edit().output = n.output.slice(0, 3);
  setAttr(intAttr('training_mode', 1));
}

/**
 * Dropout's mask became bool at 10 (before, it had the input's type, and its value at inference was left open:
 * ONNX Runtime returns zeros, opset 10 all true), so a mask something reads has no exact counterpart; an unread
 * one is dropped. `ratio` became an input at 12. At inference the output is the input either way.
 */
function dropout(n: NodeProto, ctx: Ctx, edit: () => NodeProto, dropAttr: (name: string) => void, setInput: (position: number, name: string) => void): void {
  const mask = n.output[1];
  if (mask && crosses(ctx.from, ctx.to, 10)) {
    if (ctx.read.has(mask)) refuse(ctx, n, 'has a mask that other nodes or the graph outputs read, which opset 10 redefined (bool, all true at inference)');
    edit().output = [n.output[0]];
  }
  const ratio = findAttr(n, 'ratio');
  if (ratio && crosses(ctx.from, ctx.to, 12)) {
    setInput(1, initializer(ctx, `${n.name || 'Dropout'}_ratio`, DataType.FLOAT, [], [ratio.f ?? 0.5]));
    dropAttr('ratio');
  }
}

/**
 * Resize 11/12 -> 13: with `sizes` given, 13 takes no scales (12 wanted an empty tensor); tf_half_pixel_for_nn
 * is gone. It sampled at (x + 0.5) / s; half_pixel samples at that minus 0.5, so rounding down there is
 * rounding half up here, and rounding half down there is rounding up here.
 */
function resize13(
  n: NodeProto,
  ctx: Ctx,
  edit: () => NodeProto,
  setAttr: (a: AttributeProto) => void,
  setInput: (position: number, name: string) => void,
): void {
  if (n.input[3] && n.input[2]) setInput(2, '');
  if (text(findAttr(n, 'coordinate_transformation_mode')) !== 'tf_half_pixel_for_nn') return;
  const mode = text(findAttr(n, 'mode')) ?? 'nearest';
  const rounding = text(findAttr(n, 'nearest_mode')) ?? 'round_prefer_floor';
  const shifted = mode === 'nearest' ? ({ floor: 'round_prefer_ceil', round_prefer_floor: 'ceil' } as Record<string, string>)[rounding] : undefined;
  if (!shifted) refuse(ctx, n, `uses tf_half_pixel_for_nn with ${mode === 'nearest' ? `nearest_mode ${rounding}` : `mode ${mode}`}, which opset 13 removed and cannot express`);
  edit();
  setAttr(stringAttr('coordinate_transformation_mode', 'half_pixel'));
  setAttr(stringAttr('nearest_mode', shifted));
}

/**
 * GroupNormalization-18 took one scale and bias per group; 21 takes one per channel. Each is repeated
 * C / num_groups times (Reshape [-1, 1] -> Expand [1, C / G] -> Reshape [-1]), and stash_type keeps the
 * first stage in the input's type, as the ONNX adapter does.
 */
function groupNorm21(n: NodeProto, ctx: Ctx, edit: () => NodeProto, setAttr: (a: AttributeProto) => void, pre: NodeProto[]): void {
  const label = n.name || 'GroupNormalization';
  const groups = findAttr(n, 'num_groups')?.i;
  if (groups === undefined) refuse(ctx, n, 'has no num_groups');
  const v = (s: string): string => ctx.names.fresh(`${label}_${s}`);
  const [channels, perGroup, expandShape] = [v('channels'), v('per_group'), v('expand_shape')];
  const g = initializer(ctx, `${label}_groups`, DataType.INT64, [1], [groups]);
  const one = initializer(ctx, `${label}_one`, DataType.INT64, [1], [1n]);
  const column = initializer(ctx, `${label}_column`, DataType.INT64, [2], [-1n, 1n]);
  const flat = initializer(ctx, `${label}_flat`, DataType.INT64, [1], [-1n]);
  pre.push(
    newNode(ctx, 'Shape', [n.input[0]], [channels], [intAttr('start', 1), intAttr('end', 2)], `${label}_Shape`),
    newNode(ctx, 'Div', [channels, g], [perGroup], [], `${label}_Div`),
    newNode(ctx, 'Concat', [one, perGroup], [expandShape], [intAttr('axis', 0)], `${label}_Concat`),
  );
  const m = edit();
  for (const i of [1, 2]) {
    const [col, wide, out] = [v(`${i}_column`), v(`${i}_expanded`), v(i === 1 ? 'scale' : 'bias')];
    pre.push(
      newNode(ctx, 'Reshape', [n.input[i], column], [col], [], `${label}_Reshape`),
      newNode(ctx, 'Expand', [col, expandShape], [wide], [], `${label}_Expand`),
      newNode(ctx, 'Reshape', [wide, flat], [out], [], `${label}_Reshape`),
    );
    m.input[i] = out;
  }
  const type = typeOf(ctx, n.input[0]);
  if (type !== undefined && !findAttr(n, 'stash_type')) setAttr(intAttr('stash_type', type));
}
