// Finds the blocks of a decoder language model from its graph alone: from the token embedding's Gather along the
// residual stream (each layer: norm, attention, residual add, norm, MLP, residual add) to the final norm and the
// projection that produces the logits. Names are never read; anything that does not fit is a StructureError
// naming the node or value, so no caller ever acts on half a structure.
import { GraphIndex, nodeLabel } from '../onnx/graph.js';
import type { OnnxModel } from '../onnx/model.js';
import { DataType, type GraphProto, type NodeProto } from '../onnx/types.js';
import { matchAttention } from './attention.js';
import { constantNumbers } from './constants.js';
import type { DecoderLayer, DecoderStructure, Projection } from './decoder-structure.js';
import { StructureError } from './errors.js';
import { matchMlp } from './mlp.js';
import { normAt } from './norm.js';
import { aliases, graphView, projectionOf, projectionProducing, unalias, type GraphView } from './projection.js';

/** Node labels (as the structure names nodes) to nodes. */
export function nodesByLabel(graph: GraphProto): Map<string, NodeProto> {
  return new Map(graph.node.map((n) => [nodeLabel(n, graph), n]));
}

const memo = new WeakMap<GraphProto, { nodes: readonly NodeProto[]; count: number; structure: DecoderStructure }>();

/** The decoder structure of `model`; computed once per graph (an edited model is a new graph). */
export function discoverDecoderStructure(model: OnnxModel): DecoderStructure {
  const graph = model.graph;
  const hit = memo.get(graph);
  if (hit && hit.nodes === graph.node && hit.count === graph.node.length) return hit.structure;
  const structure = discover(model, graph);
  memo.set(graph, { nodes: graph.node, count: graph.node.length, structure });
  return structure;
}

/** Ops that may sit between the embedding Gather and the first norm (position embeddings, scaling, casts). */
const PRELUDE = new Set(['Add', 'Mul', 'Cast', 'Identity', 'Dropout']);

function discover(model: OnnxModel, graph: GraphProto): DecoderStructure {
  const index = new GraphIndex(graph);
  const view = graphView(graph, index);
  const byLabel = nodesByLabel(graph);
  const nodeOf = (p: Projection): NodeProto => byLabel.get(p.node)!;
  const src = model.source;

  const logits = graph.output.find((o) => o.name === 'logits') ?? graph.output[0];
  if (!logits?.name) throw new StructureError(`${src}: the graph has no outputs`);
  const lmHead = projectionProducing(view, logits.name);
  if (!lmHead) {
    const by = index.producer(unalias(view, logits.name));
    throw new StructureError(`${src}: output '${logits.name}'${by ? `, produced by ${view.label(by)},` : ''} is not a projection (MatMul, Gemm or MatMulNBits by a stored weight)`);
  }

  const embedding = embeddingGather(view, src);
  let h = embedding.node.output[0];
  for (let step = 0; !normAt(model, view, h); step++) {
    const next = index.consumers(h).filter((n) => n.opType !== 'Shape');
    if (step > 4 || next.length !== 1 || !PRELUDE.has(next[0].opType ?? '')) {
      throw new StructureError(`${src}: no norm reads the embedding output '${embedding.node.output[0]}' (stopped at '${h}')`);
    }
    h = next[0].output[0];
  }

  const layers: DecoderLayer[] = [];
  const claimed = new Set<NodeProto>([nodeOf(lmHead)]);
  for (;;) {
    const norm = normAt(model, view, h);
    const where = `${src}: layer ${layers.length}`;
    if (!norm) throw new StructureError(`${where}: no norm reads the residual value '${h}'`);
    if (aliases(view, norm.output).has(lmHead.input)) {
      const hidden = index.initializer(norm.gain)!.dims[0];
      checkAllClaimed(view, src, claimed);
      return { layers, hidden, vocab: lmHead.outFeatures, embedding: { node: nodeLabel(embedding.node, graph), table: embedding.table }, finalNorm: norm, lmHead };
    }
    if (layers.length >= graph.node.length) throw new StructureError(`${where}: the residual stream does not reach '${logits.name}'`);

    const add1 = residualAdd(model, view, where, h);
    const o = projectionProducing(view, add1.branch);
    if (!o) throw new StructureError(`${where}: the residual add ${view.label(add1.node)} adds '${add1.branch}', which no projection produces`);
    const attn = matchAttention(model, view, layers.length, norm.output, o, nodeOf(o));

    const mid = add1.node.output[0];
    const norm2 = normAt(model, view, mid);
    if (!norm2) throw new StructureError(`${where}: no norm reads the value after attention '${mid}'`);
    const add2 = residualAdd(model, view, where, mid);
    const down = projectionProducing(view, add2.branch);
    if (!down) throw new StructureError(`${where}: the residual add ${view.label(add2.node)} adds '${add2.branch}', which no projection produces`);
    const mlp = matchMlp(model, view, layers.length, norm2.output, down, nodeOf(down));

    for (const n of [...attn.nodes, ...mlp.nodes]) claimed.add(n);
    layers.push({
      index: layers.length,
      residualIn: h,
      residualMid: mid,
      residualOut: add2.node.output[0],
      attentionNorm: norm,
      attention: attn.attention,
      mlpNorm: norm2,
      mlp: mlp.mlp,
    });
    h = add2.node.output[0];
  }
}

function embeddingGather(view: GraphView, src: string): { node: NodeProto; table: string } {
  const ids = view.index.graphInput('input_ids') ? aliases(view, 'input_ids') : new Set(view.index.feeds().filter((v) => v.type?.tensorType?.elemType === DataType.INT64 || v.type?.tensorType?.elemType === DataType.INT32).map((v) => v.name!));
  for (const n of view.graph.node) {
    if ((n.opType !== 'Gather' && n.opType !== 'GatherBlockQuantized') || !ids.has(n.input[1])) continue;
    const table = view.index.initializer(n.input[0]) ?? view.index.initializer(view.index.producer(n.input[0])?.opType === 'DequantizeLinear' ? view.index.producer(n.input[0])!.input[0] : '');
    if (table && table.dims.length === 2) return { node: n, table: table.name! };
  }
  throw new StructureError(`${src}: no Gather reads a token embedding table at 'input_ids'`);
}

/** The residual Add reading `h` (or a cast of it) and a branch computed from it. */
function residualAdd(model: OnnxModel, view: GraphView, where: string, h: string): { node: NodeProto; branch: string } {
  const xs = aliases(view, h);
  const found: { node: NodeProto; branch: string }[] = [];
  for (const x of xs) {
    for (const n of view.index.consumers(x)) {
      if (n.opType !== 'Add' || found.some((f) => f.node === n)) continue;
      const other = n.input[0] === x ? n.input[1] : n.input[0];
      if (xs.has(other) || constantNumbers(model, view.index, unalias(view, other)) || view.index.initializer(unalias(view, other))) continue;
      found.push({ node: n, branch: other });
    }
  }
  if (found.length !== 1) {
    throw new StructureError(`${where}: expected one residual Add reading '${h}', found ${found.length}${found.length ? ` (${found.map((f) => view.label(f.node)).join(', ')})` : ''}`);
  }
  return found[0];
}

/** Every projection by a stored weight must belong to a layer or be the lm_head: a block we did not see is an error. */
function checkAllClaimed(view: GraphView, src: string, claimed: ReadonlySet<NodeProto>): void {
  for (const n of view.graph.node) {
    if (claimed.has(n)) continue;
    if (projectionOf(view, n)) throw new StructureError(`${src}: projection ${view.label(n)} belongs to no recognised decoder block`);
  }
}
