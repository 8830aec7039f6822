// Raising a graph's default-domain opset (the graph editor's requireOpset), which QDQ needs (13 for per-channel `axis`, 21 for int4 and
// `block_size`; dynamic quantization needs 11). Simply changing the number would break models: ReduceMean's
// `axes`, for one, moved from attribute to input at 18. Between any two versions most operators only gained
// types or optional inputs, so their nodes stay as written; operators whose attributes became inputs are
// rewritten; those whose meaning changed, or that were removed, are refused with the node named.
import { findAttr, intAttr as intAttrProto } from './attributes.js';
import { GraphError, type NameGenerator } from './graph.js';
import { makeTensor } from './tensor.js';
import { DataType, type AttributeProto, type GraphProto, type NodeProto, type TensorProto } from './types.js';

/** Attributes that became inputs at `since`: name, input position, and how the value is stored. */
interface ToInputs {
  since: number;
  inputs: { attr: string; position: number; kind: 'ints' | 'int' | 'float' }[];
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
  // Clip's and Pad's values take the input's type; float32 models are what this project quantizes.
  Clip: { since: 11, inputs: [{ attr: 'min', position: 1, kind: 'float' }, { attr: 'max', position: 2, kind: 'float' }] },
  Pad: { since: 11, inputs: [{ attr: 'pads', position: 1, kind: 'ints' }, { attr: 'value', position: 2, kind: 'float' }] },
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
    { attr: 'spatial', since: 9 },
  ],
  Dropout: [
    { attr: 'is_test', since: 7 },
    { attr: 'ratio', since: 12 }, // an input from 12; Dropout is the identity at inference either way
  ],
};
// Element-wise ops lost `broadcast`/`axis` at 7 for numpy broadcasting, which equals broadcast=1 without axis.
for (const op of ['Add', 'Sub', 'Mul', 'Div', 'Pow', 'And', 'Or', 'Xor', 'Equal', 'Greater', 'Less']) {
  DROPPED[op] = [{ attr: 'broadcast', since: 7 }];
}

/** Operators whose meaning changed at `since` in ways no local rewrite covers. */
const REFUSED: Record<string, { since: number; why: string }> = {
  Upsample: { since: 10, why: 'was deprecated for Resize' },
  Scatter: { since: 11, why: 'was deprecated for ScatterElements' },
  Resize: { since: 11, why: 'gained the roi input and new coordinate modes' },
  DFT: { since: 20, why: 'took its axis as an input' },
  GroupNormalization: { since: 21, why: 'changed the shape of scale and bias' },
};

function crosses(from: number, to: number, since: number): boolean {
  return from < since && since <= to;
}

function refuse(source: string, node: NodeProto, from: number, to: number, why: string): never {
  throw new GraphError(
    `${source}: cannot raise the opset from ${from} to ${to}: node '${node.name ?? ''}' (${node.opType}) ${why}`,
  );
}

/**
 * The graph (and its subgraphs) rewritten for default-domain opset `to`; new initializers (attribute values
 * that became inputs) go into the graph holding the node. Returns the same object when nothing changed.
 */
export function upgradeOpset(graph: GraphProto, from: number, to: number, names: NameGenerator, source: string): GraphProto {
  const added: TensorProto[] = [];
  let changed = false;
  const nodes = graph.node.map((node) => {
    const next = upgradeNode(node, from, to, names, source, added);
    if (next !== node) changed = true;
    return next;
  });
  if (!changed) return graph;
  return { ...graph, node: nodes, initializer: [...graph.initializer, ...added] };
}

function upgradeNode(node: NodeProto, from: number, to: number, names: NameGenerator, source: string, added: TensorProto[]): NodeProto {
  let out = node;
  const edit = (): NodeProto => (out === node ? (out = { ...node, input: [...node.input], attribute: [...node.attribute] }) : out);
  const domain = node.domain ?? '';
  const op = node.opType ?? '';

  // Subgraphs share the model's opsets, so their nodes move too.
  for (const [i, a] of node.attribute.entries()) {
    if (!a.g && a.graphs.length === 0) continue;
    const g = a.g ? upgradeOpset(a.g, from, to, names, source) : undefined;
    const gs = a.graphs.map((sub) => upgradeOpset(sub, from, to, names, source));
    if (g !== a.g || gs.some((sub, k) => sub !== a.graphs[k])) {
      const attr: AttributeProto = { ...a, ...(g ? { g } : {}), graphs: gs };
      edit().attribute[i] = attr;
    }
  }
  if (domain !== '' && domain !== 'ai.onnx') return out;

  const refused = REFUSED[op];
  if (refused && crosses(from, to, refused.since)) refuse(source, node, from, to, `${refused.why} at opset ${refused.since}`);
  if ((op === 'Softmax' || op === 'LogSoftmax' || op === 'Hardmax') && crosses(from, to, 13)) {
    // Before 13 the input was flattened to 2-D at `axis` (default 1); from 13 the op runs along `axis`
    // (default -1). Only axis = -1 means the same in both.
    if (Number(findAttr(node, 'axis')?.i ?? 1n) !== -1) refuse(source, node, from, to, 'changed meaning at opset 13 (axis other than -1)');
  }
  if (op === 'GridSample' && crosses(from, to, 20)) {
    const mode = findAttr(node, 'mode');
    const text = mode?.s ? new TextDecoder().decode(mode.s) : undefined;
    const renamed = text === 'bilinear' ? 'linear' : text === 'bicubic' ? 'cubic' : undefined;
    if (renamed) edit().attribute = out.attribute.map((a) => (a === mode ? { ...a, s: new TextEncoder().encode(renamed) } : a));
  }
  for (const d of DROPPED[op] ?? []) {
    const a = findAttr(out, d.attr);
    if (!a || !crosses(from, to, d.since)) continue;
    if (d.attr === 'broadcast' && findAttr(out, 'axis')) refuse(source, node, from, to, 'broadcasts along an explicit axis, which opset 7 removed');
    if (d.attr === 'spatial' && a.i === 0n) refuse(source, node, from, to, 'uses spatial=0, which opset 9 removed');
    edit().attribute = out.attribute.filter((x) => x.name !== d.attr);
  }
  const moves = TO_INPUTS[op];
  if (moves && crosses(from, to, moves.since)) {
    for (const m of moves.inputs) {
      const a = findAttr(out, m.attr);
      if (!a) continue;
      const name = names.fresh(`${node.name || op}_${m.attr}`);
      added.push(
        m.kind === 'float'
          ? makeTensor(name, DataType.FLOAT, [], [a.f ?? 0])
          : m.kind === 'int'
            ? makeTensor(name, DataType.INT64, [1], [a.i ?? 0n])
            : makeTensor(name, DataType.INT64, [a.ints.length], a.ints),
      );
      const n = edit();
      while (n.input.length < m.position) n.input.push('');
      n.input[m.position] = name;
      n.attribute = n.attribute.filter((x) => x.name !== m.attr);
    }
  }
  // From 18 an even Split must say how many outputs it has (before, the output count said it).
  if (op === 'Split' && crosses(from, to, 18) && !out.input[1] && !findAttr(out, 'num_outputs')) {
    edit().attribute.push({ ...intAttrProto('num_outputs', out.output.length) });
  }
  return out;
}
