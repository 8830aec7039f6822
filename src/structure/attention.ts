// One layer's self-attention, found by data flow from the projections that read the layer's norm to the one that
// feeds the residual add: the scores MatMul (q against k) before the Softmax, the MatMul of the probabilities by v
// after it, the KV-cache Concats, and every shape constant on the way that holds a head count or a width.
import { attrInts } from '../onnx/attributes.js';
import type { OnnxModel } from '../onnx/model.js';
import type { NodeProto } from '../onnx/types.js';
import { constantNumbers, shapeVector, type ConstantElement } from './constants.js';
import type { Attention, Projection, SizeConstant } from './decoder-structure.js';
import { StructureError } from './errors.js';
import { aliases, attributeSizes, projectionOf, type GraphView } from './projection.js';

export interface Flow {
  nodes: Set<NodeProto>;
  values: Set<string>;
}

/**
 * Everything computed from `starts` without passing through `stop` nodes (which are included, their outputs not).
 * Shape nodes are not followed: what they compute is sizes, not data.
 */
export function forward(view: GraphView, starts: readonly string[], stop: ReadonlySet<NodeProto> = new Set()): Flow {
  const nodes = new Set<NodeProto>();
  const values = new Set(starts);
  const todo = [...starts];
  while (todo.length) {
    for (const n of view.index.consumers(todo.pop()!)) {
      if (nodes.has(n) || n.opType === 'Shape' || n.opType === 'Size') continue;
      nodes.add(n);
      if (stop.has(n)) continue;
      for (const o of n.output) if (o && !values.has(o)) (values.add(o), todo.push(o));
    }
  }
  return { nodes, values };
}

/** The projections that read `value` (or a cast or fake-quantized copy of it). */
export function projectionsReading(view: GraphView, value: string): { node: NodeProto; proj: Projection }[] {
  const out: { node: NodeProto; proj: Projection }[] = [];
  for (const x of aliases(view, value)) {
    for (const n of view.index.consumers(x)) {
      if (n.input[0] !== x) continue;
      const proj = projectionOf(view, n);
      if (proj) out.push({ node: n, proj });
    }
  }
  return out;
}

type Side = 'q' | 'kv' | 'repeat' | 'context';

interface Counts {
  heads: number;
  kvHeads: number;
  headDim: number;
}

export interface AttentionMatch {
  attention: Attention;
  /** Every node of the attention block, from the q/k/v projections to the o projection. */
  nodes: Set<NodeProto>;
}

const ATTENTION_OPS = new Set(['Attention', 'MultiHeadAttention', 'GroupQueryAttention', 'PackedAttention', 'SparseAttention']);

export function matchAttention(model: OnnxModel, view: GraphView, layer: number, normOut: string, o: Projection, oNode: NodeProto): AttentionMatch {
  const where = `${model.source}: layer ${layer}`;
  const readers = projectionsReading(view, normOut);
  if (readers.length === 0) throw new StructureError(`${where}: no projection reads the attention norm's output '${normOut}'`);
  const region = forward(
    view,
    readers.map((r) => r.proj.output),
    new Set([oNode]),
  );
  const fused = [...region.nodes].find((n) => ATTENTION_OPS.has(n.opType ?? ''));
  if (fused) throw new StructureError(`${where}: node ${view.label(fused)} is a fused attention kernel; only attention written out in plain ops is recognised`);
  const softmaxes = [...region.nodes].filter((n) => n.opType === 'Softmax');
  if (softmaxes.length !== 1) {
    throw new StructureError(`${where}: expected one Softmax between the projections reading '${normOut}' and ${o.node}, found ${softmaxes.length}`);
  }
  const softmax = softmaxes[0];
  const scores = scoresMatMul(view, softmax, region.nodes);
  if (!scores) throw new StructureError(`${where}: no q-by-k MatMul feeds ${view.label(softmax)}`);
  const after = forward(view, [softmax.output[0]], new Set([oNode]));
  const pv = [...after.nodes].find((n) => n.opType === 'MatMul' && after.values.has(n.input[0]) && !after.values.has(n.input[1]));
  if (!pv) throw new StructureError(`${where}: no MatMul multiplies the probabilities of ${view.label(softmax)} by values`);
  const stops = new Set([scores, pv]);

  // The parts q, k and v: the separate projections' outputs or the pieces a fused projection is split into.
  let parts: { value: string; width: number; proj?: Projection }[];
  let split: NodeProto | undefined;
  let splitSizes: ConstantElement[] = [];
  let slices: SizeConstant[] | undefined;
  if (readers.length === 3) {
    parts = readers.map((r) => ({ value: r.proj.output, width: r.proj.outFeatures, proj: r.proj }));
  } else if (readers.length === 1) {
    const qkv = readers[0].proj;
    split = view.index.consumers(qkv.output).find((n) => n.opType === 'Split');
    if (split) {
      const axis = split.attribute.find((a) => a.name === 'axis');
      if (split.output.length !== 3 || (axis && Number(axis.i) !== -1 && Number(axis.i) !== 2)) {
        throw new StructureError(`${where}: ${view.label(split)} does not split the fused QKV features into three parts`);
      }
      ({ sizes: splitSizes } = splitWidths(model, view, split));
      parts = split.output.map((value, i) => ({ value, width: splitSizes[i]?.value ?? qkv.outFeatures / 3 }));
    } else {
      const sliced = qkvSlices(model, view, where, qkv);
      slices = sliced.sizes;
      parts = sliced.parts;
    }
  } else {
    throw new StructureError(`${where}: ${readers.length} projections read the attention norm's output '${normOut}' (${readers.map((r) => r.proj.node).join(', ')}); expected q, k, v or one fused QKV`);
  }
  const flows = parts.map((p) => forward(view, [p.value], stops));
  const pick = (want: string, role: string): number => {
    const at = flows.findIndex((f) => f.values.has(want));
    if (at < 0) throw new StructureError(`${where}: no projection output reaches ${role} (value '${want}')`);
    return at;
  };
  const [qi, ki, vi] = [pick(scores.input[0], `the query side of ${view.label(scores)}`), pick(scores.input[1], `the key side of ${view.label(scores)}`), pick(pv.input[1], `the value side of ${view.label(pv)}`)];
  if (new Set([qi, ki, vi]).size !== 3) throw new StructureError(`${where}: q, k and v are not three distinct projections around ${view.label(softmax)}`);
  if (readers.length === 1 && (qi !== 0 || ki !== 1 || vi !== 2)) throw new StructureError(`${where}: ${readers[0].proj.node}'s columns are not q, k, v in that order`);

  const pastOf = (flow: Flow): { past?: string; present?: string } => {
    for (const n of flow.nodes) {
      if (n.opType !== 'Concat') continue;
      const past = n.input.find((i) => view.index.graphInput(i) && !view.index.initializer(i));
      if (past) return { past, ...(view.index.graphOutput(n.output[0]) ? { present: n.output[0] } : {}) };
    }
    return {};
  };
  const key = pastOf(flows[ki]);
  const value = pastOf(flows[vi]);

  const counts = headCounts(model, view, where, parts[qi].width, parts[ki].width, parts[vi].width, key.past, flows[qi]);
  const sides = new Map<NodeProto, Side>();
  const mark = (nodes: Iterable<NodeProto>, side: Side): void => {
    for (const n of nodes) if (!stops.has(n)) sides.set(n, side);
  };
  mark(flows[qi].nodes, 'q');
  const layouts = new Set<GroupLayout>();
  for (const i of [ki, vi]) {
    mark(flows[i].nodes, 'kv');
    const repeat = [...flows[i].nodes].find((n) => n.opType === 'Expand' || n.opType === 'Tile');
    if (repeat) mark([repeat, ...forward(view, [repeat.output[0]], stops).nodes], 'repeat');
    layouts.add(groupLayout(model, view, where, repeat, counts));
  }
  if (layouts.size !== 1) throw new StructureError(`${where}: keys and values are repeated for the query heads in different orders`);
  const layout = [...layouts][0];
  mark(forward(view, [pv.output[0]], new Set([oNode])).nodes, 'context');
  sides.delete(oNode);

  const sizes: SizeConstant[] = [];
  for (const [n, side] of sides) sizes.push(...sizeConstants(model, view, where, n, side, counts, layout));
  const qWidth = counts.heads * counts.headDim;
  const kvWidth = counts.kvHeads * counts.headDim;
  if (split) {
    const meanings: SizeConstant['meaning'][] = ['q-width', 'kv-width', 'kv-width'];
    splitSizes.forEach((e, i) => sizes.push({ node: view.label(e.node), holder: e.holder, position: e.position, meaning: meanings[i], value: e.value }));
  }
  if (slices) sizes.push(...slices);
  const [q, k, v] = [parts[qi].proj, parts[ki].proj, parts[vi].proj];
  if (q) sizes.push(...attributeSizes(q, 'q-width'));
  if (k) sizes.push(...attributeSizes(k, 'kv-width'));
  if (v) sizes.push(...attributeSizes(v, 'kv-width'));
  sizes.push(...attributeSizes(o, undefined, 'q-width'));
  if (o.inFeatures !== qWidth) throw new StructureError(`${where}: ${o.node} reads ${o.inFeatures} features, not heads x head_dim = ${qWidth}`);
  if (parts[ki].width !== kvWidth || parts[vi].width !== kvWidth) throw new StructureError(`${where}: k and v widths ${parts[ki].width} and ${parts[vi].width} differ from ${kvWidth}`);

  const positions = [...flows[qi].nodes].some((n) => n.opType === 'Neg' || n.opType === 'RotaryEmbedding') ? 'rotary' : 'none';
  const attention: Attention = {
    kind: readers.length === 1 ? 'fused-qkv' : 'separate',
    ...(readers.length === 1 ? { qkv: readers[0].proj } : { q, k, v }),
    o,
    ...counts,
    groupLayout: layout,
    positions,
    ...(key.past ? { pastKey: key.past } : {}),
    ...(value.past ? { pastValue: value.past } : {}),
    ...(key.present ? { presentKey: key.present } : {}),
    ...(value.present ? { presentValue: value.present } : {}),
    sizes: dedupe(sizes),
    softmax: view.label(softmax),
    context: o.input,
  };
  const nodes = new Set([...readers.map((r) => r.node), ...region.nodes, ...sides.keys()]);
  return { attention, nodes };
}

/** The MatMul of q by k that the Softmax's input is computed from (through scaling, masking, casts). */
function scoresMatMul(view: GraphView, softmax: NodeProto, region: ReadonlySet<NodeProto>): NodeProto | undefined {
  const seen = new Set<NodeProto>();
  const todo = [softmax];
  while (todo.length) {
    const n = todo.shift()!;
    for (const i of n.input) {
      const p = view.index.producer(i);
      if (!p || seen.has(p) || !region.has(p)) continue;
      seen.add(p);
      if (p.opType === 'MatMul' && !p.input.some((x) => view.index.initializer(x))) return p;
      todo.push(p);
    }
  }
  return undefined;
}

function splitWidths(model: OnnxModel, view: GraphView, split: NodeProto): { sizes: ConstantElement[] } {
  if (split.input[1]) {
    const values = constantNumbers(model, view.index, split.input[1]);
    if (!values) throw new StructureError(`${model.source}: the sizes of ${view.label(split)} are not constant`);
    return { sizes: values.map((value, position) => ({ value, node: split, holder: split.input[1], position })) };
  }
  const attr = attrInts(split, 'split', []);
  if (attr.length) return { sizes: attr.map((value, position) => ({ value, node: split, holder: 'attr:split', position })) };
  // Equal thirds (opset 18's num_outputs, or no sizes at all): no constant holds a width.
  return { sizes: [] };
}

/**
 * A fused QKV output cut by three Slices on the feature axis (constant bounds, step 1), in column order: the parts,
 * and the bounds as size constants (q ends at q-width, k at qk-width, v at qkv-width or an open end).
 */
function qkvSlices(model: OnnxModel, view: GraphView, where: string, qkv: Projection): { parts: { value: string; width: number }[]; sizes: SizeConstant[] } {
  const cut = view.index.consumers(qkv.output).filter((n) => n.opType === 'Slice' && n.input[0] === qkv.output);
  if (cut.length !== 3) throw new StructureError(`${where}: the one projection ${qkv.node} reading the attention norm is not cut into q, k and v by a Split or three Slices`);
  const bounds = cut.map((n) => {
    const one = (i: number): number | undefined => {
      const v = n.input[i] ? constantNumbers(model, view.index, n.input[i]) : undefined;
      return v?.length === 1 ? v[0] : undefined;
    };
    const [start, end, axis, step] = [one(1), one(2), n.input[3] ? one(3) : undefined, n.input[4] ? one(4) : 1];
    if (start === undefined || end === undefined || (axis !== -1 && axis !== 2) || step !== 1) {
      throw new StructureError(`${where}: ${view.label(n)} does not cut the fused QKV features with constant bounds`);
    }
    return { node: n, start, end: Math.min(end, qkv.outFeatures) };
  });
  bounds.sort((a, b) => a.start - b.start);
  if (bounds[0].start !== 0 || bounds[0].end !== bounds[1].start || bounds[1].end !== bounds[2].start || bounds[2].end !== qkv.outFeatures) {
    throw new StructureError(`${where}: the Slices of ${qkv.node} do not cover its ${qkv.outFeatures} columns in three adjacent parts`);
  }
  const sizes: SizeConstant[] = [];
  const record = (n: NodeProto, input: number, meaning: SizeConstant['meaning']): void => {
    const value = constantNumbers(model, view.index, n.input[input])![0];
    // An open end (INT64_MAX) stays open whatever the width.
    if (value <= qkv.outFeatures) sizes.push({ node: view.label(n), holder: n.input[input], position: 0, meaning, value });
  };
  record(bounds[0].node, 2, 'q-width');
  record(bounds[1].node, 1, 'q-width');
  record(bounds[1].node, 2, 'qk-width');
  record(bounds[2].node, 1, 'qk-width');
  record(bounds[2].node, 2, 'qkv-width');
  return { parts: bounds.map((b) => ({ value: b.node.output[0], width: b.end - b.start })), sizes };
}

function headCounts(model: OnnxModel, view: GraphView, where: string, qWidth: number, kWidth: number, vWidth: number, pastKey: string | undefined, qFlow: Flow): Counts {
  let headDim: number | undefined;
  const pastDims = pastKey ? view.index.graphInput(pastKey)?.type?.tensorType?.shape?.dim : undefined;
  if (pastDims?.length === 4 && pastDims[3].dimValue) headDim = pastDims[3].dimValue;
  if (headDim === undefined) {
    // The reshape that splits q into heads: [batch, seq, heads, head_dim] with a static last element.
    for (const n of qFlow.nodes) {
      if (n.opType !== 'Reshape') continue;
      const els = shapeVector(model, view.index, n.input[1], n).elements;
      const last = els?.at(-1);
      if (els?.length === 4 && last && last.value > 1) {
        headDim = last.value;
        break;
      }
    }
  }
  if (headDim === undefined) throw new StructureError(`${where}: cannot find the head dimension (no static KV-cache input shape, no static head reshape of q)`);
  if (qWidth % headDim || kWidth % headDim || vWidth !== kWidth) {
    throw new StructureError(`${where}: q, k, v widths ${qWidth}, ${kWidth}, ${vWidth} do not split into heads of ${headDim}`);
  }
  const heads = qWidth / headDim;
  const kvHeads = kWidth / headDim;
  if (heads % kvHeads) throw new StructureError(`${where}: ${heads} query heads do not share ${kvHeads} key/value heads evenly`);
  return { heads, kvHeads, headDim };
}

type GroupLayout = NonNullable<Attention['groupLayout']>;

/**
 * How the key/value heads are repeated for the query heads. Expand of Unsqueeze(x, 2) ([batch, kv, n_rep, ...],
 * HF's repeat_kv) keeps each head's copies together; Unsqueeze(x, 1) or Tile on the heads axis interleaves them.
 */
function groupLayout(model: OnnxModel, view: GraphView, where: string, repeat: NodeProto | undefined, c: Counts): GroupLayout {
  if (c.heads === c.kvHeads) return 'contiguous';
  if (!repeat) throw new StructureError(`${where}: ${c.heads} query heads share ${c.kvHeads} key/value heads, but no Expand or Tile repeats them`);
  if (repeat.opType === 'Tile') return 'strided';
  const u = view.index.producer(repeat.input[0]);
  const axes = u?.opType === 'Unsqueeze' ? (u.input[1] ? constantNumbers(model, view.index, u.input[1]) : attrInts(u, 'axes', [])) : undefined;
  if (axes?.length === 1 && axes[0] === 2) return 'contiguous';
  if (axes?.length === 1 && axes[0] === 1) return 'strided';
  throw new StructureError(`${where}: cannot tell in which order ${view.label(repeat)} repeats the key/value heads`);
}

/** What a static element of a shape vector on `side` at `position` of `length` holds, by the layouts exporters use. */
function meaningAt(op: string, side: Side, position: number, length: number, layout: GroupLayout): SizeConstant['meaning'] | 'head-dim' | undefined {
  const last = position === length - 1;
  const heads = side === 'kv' ? 'kv-heads' : 'heads';
  if (op === 'Tile') return side === 'repeat' && position === 1 ? 'group-size' : undefined;
  const [kvAt, groupAt] = layout === 'strided' ? [2, 1] : [1, 2];
  if (length === 5) return last ? 'head-dim' : position === kvAt ? 'kv-heads' : position === groupAt ? 'group-size' : undefined;
  if (length === 4) return last ? 'head-dim' : position === 1 || position === 2 ? heads : undefined;
  if ((length === 3 || length === 2) && last) return side === 'kv' ? 'kv-width' : 'q-width';
  return undefined;
}

function expected(meaning: SizeConstant['meaning'] | 'head-dim', c: Counts): number {
  switch (meaning) {
    case 'heads':
      return c.heads;
    case 'kv-heads':
      return c.kvHeads;
    case 'group-size':
      return c.heads / c.kvHeads;
    case 'q-width':
      return c.heads * c.headDim;
    case 'kv-width':
      return c.kvHeads * c.headDim;
    case 'qk-width':
      return (c.heads + c.kvHeads) * c.headDim;
    case 'qkv-width':
      return (c.heads + 2 * c.kvHeads) * c.headDim;
    case 'head-dim':
      return c.headDim;
    default:
      return NaN;
  }
}

function sizeConstants(model: OnnxModel, view: GraphView, where: string, n: NodeProto, side: Side, c: Counts, layout: GroupLayout): SizeConstant[] {
  const op = n.opType ?? '';
  if (op !== 'Reshape' && op !== 'Expand' && op !== 'Tile') return [];
  const vec = shapeVector(model, view.index, n.input[1], n);
  const out: SizeConstant[] = [];
  const add = (e: ConstantElement, meaning: SizeConstant['meaning']): void => {
    out.push({ node: view.label(e.node), holder: e.holder, position: e.position, meaning, value: e.value });
  };
  const counted = new Set([c.heads, c.kvHeads, c.heads * c.headDim, c.kvHeads * c.headDim, ...(c.heads > c.kvHeads ? [c.heads / c.kvHeads] : [])]);
  if (!vec.elements) {
    throw new StructureError(`${where}: cannot follow how the shape '${n.input[1]}' read by ${view.label(n)} is computed`);
  }
  vec.elements.forEach((e, position) => {
    if (!e || e.value <= 1) return;
    const meaning = meaningAt(op, side, position, vec.elements!.length, layout);
    if (meaning === undefined) {
      if (counted.has(e.value)) throw new StructureError(`${where}: cannot tell what ${e.value} at position ${position} of the shape read by ${view.label(n)} counts`);
      return;
    }
    if (e.value !== expected(meaning, c)) {
      throw new StructureError(`${where}: ${view.label(n)} has ${e.value} where its layout puts the ${meaning} (${expected(meaning, c)})`);
    }
    if (meaning !== 'head-dim') add(e, meaning);
  });
  for (const f of vec.factors) {
    const group = c.heads / c.kvHeads;
    if (side === 'repeat' && f.value === group) add(f, 'group-size');
    else if (f.value === c.heads) add(f, 'heads');
    else if (side !== 'q' && f.value === c.kvHeads) add(f, 'kv-heads');
  }
  return out;
}

function dedupe(sizes: SizeConstant[]): SizeConstant[] {
  const seen = new Set<string>();
  return sizes.filter((s) => {
    const key = `${s.node}\u0000${s.holder}\u0000${s.position}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
