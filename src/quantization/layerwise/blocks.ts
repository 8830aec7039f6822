// The units a layer-wise solver walks in order: the planned weight nodes grouped into blocks in topological
// order. A block is solved from its nodes' inputs captured together, and (sequential mode) the blocks before it
// are already quantized when its inputs are captured, so the grouping decides what each solver sees.
//
// Transformer decoders: one block per decoder layer (the decoder structure discovered from the graph, when
// src/structure can recognise it), else from the graph alone: residual Adds (Add(x, f(x)) where f reaches back to
// x through a planned node, and no other Add reads x) cut the planned nodes into residual segments, and a segment holding an attention
// (a Softmax) starts a new layer that the following segments without one (its MLP) join. Graphs without
// residual Adds get one block per planned node, and so do the nodes before the first residual Add (a CNN stem)
// and after the last (the lm_head, when one node follows decoder layers; a classifier).
import { GraphIndex, nodeLabel, topologicalOrder } from '../../onnx/graph.js';
import type { OnnxModel } from '../../onnx/model.js';
import type { NodeProto } from '../../onnx/types.js';
import type { DecoderStructure } from '../../structure/decoder-structure.js';
import type { PlannedNode, QuantPlan } from '../plan.js';

export interface Block {
  /** For reports and errors: 'layer 0', 'lm_head', 'node /conv1/Conv', 'residual block 2'. */
  name: string;
  /** The planned weight nodes of the block, in topological order. */
  nodes: PlannedNode[];
  /** The value that carries the block's result onward (a residual Add's output, a lone node's output), when one does. */
  output?: string;
}

export interface BlockGrouping {
  blocks: Block[];
  /** How the blocks were found: 'decoder' (structure discovery), 'residual' (the graph's residual Adds), 'nodes'. */
  from: 'decoder' | 'residual' | 'nodes';
  /** Why structure discovery was not used, when it was tried and failed. */
  fallback?: string;
}

/** Planned nodes a layer-wise solver takes: everything but embedding lookups (rounded to nearest up front). */
export function layerwiseNodes(plan: QuantPlan): PlannedNode[] {
  return plan.nodes.filter((p) => p.plan.format !== 'gather-block');
}

/**
 * Blocks of the plan's layer-wise nodes. `structure` is the decoder structure when discovery succeeded (its
 * layers' projections name the nodes by label); without it the graph's residual Adds decide.
 */
export function findBlocks(model: OnnxModel, plan: QuantPlan, structure?: DecoderStructure): BlockGrouping {
  const nodes = layerwiseNodes(plan);
  const graph = model.graph;
  const index = new GraphIndex(graph);
  const order = topologicalOrder(graph, { index });
  const position = new Map<NodeProto, number>(order.map((n, i) => [n, i]));
  const sorted = [...nodes].sort((a, b) => position.get(a.target.node)! - position.get(b.target.node)!);
  if (structure) {
    const grouped = decoderBlocks(sorted, structure, (p) => nodeLabel(p.target.node, graph));
    if (grouped) return { blocks: grouped, from: 'decoder' };
  }
  const residuals = residualAdds(order, index, position, new Set(sorted.map((p) => p.target.node)));
  if (residuals.length === 0) return { blocks: sorted.map((p) => single(p)), from: 'nodes' };
  return { blocks: residualBlocks(sorted, order, position, residuals), from: 'residual' };
}

/** A residual Add and the position of the node producing the value it skips (-1 for a graph input). */
interface Residual {
  add: NodeProto;
  skipFrom: number;
}

function single(p: PlannedNode): Block {
  return { name: `node ${p.target.label}`, nodes: [p], ...(p.target.node.output[0] ? { output: p.target.node.output[0] } : {}) };
}

/**
 * One block per decoder layer and one for the lm_head; undefined when a planned node belongs to none of them.
 * The structure names nodes by `nodeLabel`.
 */
function decoderBlocks(sorted: PlannedNode[], s: DecoderStructure, labelOf: (p: PlannedNode) => string): Block[] | undefined {
  const layerOf = new Map<string, number>();
  for (const layer of s.layers) {
    const a = layer.attention;
    const m = layer.mlp;
    for (const p of [a.q, a.k, a.v, a.qkv, a.o, m.gate, m.up, m.down]) if (p) layerOf.set(p.node, layer.index);
  }
  const blocks: Block[] = s.layers.map((l) => ({ name: `layer ${l.index}`, nodes: [], output: l.residualOut }));
  const head: Block = { name: 'lm_head', nodes: [], output: s.lmHead.output };
  const byIndex = new Map(s.layers.map((l, i) => [l.index, blocks[i]]));
  for (const p of sorted) {
    const label = labelOf(p);
    const layer = layerOf.get(label);
    if (layer !== undefined) byIndex.get(layer)!.nodes.push(p);
    else if (label === s.lmHead.node) head.nodes.push(p);
    else return undefined;
  }
  return [...blocks, head].filter((b) => b.nodes.length > 0);
}

/**
 * Add nodes joining a value x with a branch computed from x through a planned node: the residual connections,
 * in topological order. The branch is searched backwards from the Add's other input among the nodes after x's
 * producer only, so the search stays inside one residual block.
 */
function residualAdds(order: readonly NodeProto[], index: GraphIndex, position: Map<NodeProto, number>, planned: ReadonlySet<NodeProto>): Residual[] {
  const found: Residual[] = [];
  const from = (x: string): number => {
    const p = index.producer(x);
    return p ? position.get(p)! : -1;
  };
  const constant = (v: string): boolean => index.initializer(v) !== undefined || index.producer(v)?.opType === 'Constant';
  for (const node of order) {
    if (node.opType !== 'Add' || node.input.length !== 2) continue;
    const [a, b] = node.input;
    if (!a || !b || constant(a) || constant(b)) continue;
    // A value several Adds read directly is shared by many blocks (an attention mask added to every layer's
    // scores), not a residual stream, even when a later block's branch is computed from it.
    const skip = (x: string): boolean => index.consumers(x).filter((c) => c.opType === 'Add').length === 1;
    if (skip(a) && reachesThroughPlanned(b, a, index, position, planned)) found.push({ add: node, skipFrom: from(a) });
    else if (skip(b) && reachesThroughPlanned(a, b, index, position, planned)) found.push({ add: node, skipFrom: from(b) });
  }
  return found;
}

/** Whether `from` is computed from `skip` through some planned node (backwards search bounded by skip's producer). */
function reachesThroughPlanned(from: string, skip: string, index: GraphIndex, position: Map<NodeProto, number>, planned: ReadonlySet<NodeProto>): boolean {
  const source = index.producer(skip);
  const floor = source ? position.get(source)! : -1;
  const seen = new Set<NodeProto>();
  const stack: NodeProto[] = [];
  const start = index.producer(from);
  if (!start || position.get(start)! <= floor) return false;
  stack.push(start);
  let reached = false;
  let throughPlanned = false;
  while (stack.length) {
    const n = stack.pop()!;
    if (seen.has(n)) continue;
    seen.add(n);
    if (planned.has(n)) throughPlanned = true;
    for (const input of index.dependencies(n)) {
      if (input === skip) {
        reached = true;
        continue;
      }
      const p = index.producer(input);
      if (p && position.get(p)! > floor && !seen.has(p)) stack.push(p);
    }
    if (reached && throughPlanned) return true;
  }
  return false;
}

/** Planned nodes cut at the residual Adds, attention segments starting layers that MLP segments join. */
function residualBlocks(sorted: PlannedNode[], order: readonly NodeProto[], position: Map<NodeProto, number>, residuals: readonly Residual[]): Block[] {
  const cuts = residuals.map((r) => position.get(r.add)!);
  const softmax = order.filter((n) => n.opType === 'Softmax').map((n) => position.get(n)!);
  // Segment i holds the planned nodes after cut i-1 up to cut i; segment cuts.length holds those after the last.
  const segments: PlannedNode[][] = Array.from({ length: cuts.length + 1 }, () => []);
  for (const p of sorted) {
    const at = position.get(p.target.node)!;
    let s = 0;
    while (s < cuts.length && at > cuts[s]) s++;
    segments[s].push(p);
  }
  const hasAttention = (s: number): boolean => s < cuts.length && softmax.some((x) => x < cuts[s] && (s === 0 || x > cuts[s - 1]));
  const blocks: Block[] = [];
  let layers = 0;
  let open: Block | undefined; // the layer an attention segment started, which its MLP segment joins
  // Nodes that compute the first residual block's input (a CNN stem) are not part of that block.
  const stem = segments[0].filter((p) => position.get(p.target.node)! <= residuals[0].skipFrom);
  blocks.push(...stem.map((p) => single(p)));
  segments[0] = segments[0].filter((p) => !stem.includes(p));
  for (let s = 0; s < segments.length; s++) {
    const nodes = segments[s];
    const tail = s === cuts.length;
    if (tail) {
      // After the last residual Add (a head): one block per node.
      const lmHead = tail && layers > 0 && nodes.length === 1;
      blocks.push(...nodes.map((p) => ({ ...single(p), ...(lmHead ? { name: 'lm_head' } : {}) })));
      open = undefined;
      continue;
    }
    const output = residuals[s].add.output[0];
    if (hasAttention(s)) {
      open = { name: `layer ${layers++}`, nodes: [...nodes], ...(output ? { output } : {}) };
      blocks.push(open);
    } else if (open && nodes.length) {
      open.nodes.push(...nodes);
      if (output) open.output = output;
      open = undefined;
    } else if (nodes.length) {
      blocks.push({ name: `residual block ${s}`, nodes: [...nodes], ...(output ? { output } : {}) });
    }
  }
  return blocks.filter((b) => b.nodes.length > 0);
}
