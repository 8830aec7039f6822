// What the three writers share: their result and report types, the refusal of already-quantized models, reading
// a float weight, and GraphEdit — the one graph edit every writer uses ("run these nodes instead of that one").
import { irVersionForOpset, makeNode, type NodeOptions } from '../../onnx/builder.js';
import { type AttrInput } from '../../onnx/attributes.js';
import { dtypeInfo, byteSize } from '../../onnx/dtypes.js';
import { allNodes, freeNames, NameGenerator, nodeLabel } from '../../onnx/graph.js';
import { OnnxModel } from '../../onnx/model.js';
import { makeTensor, tensorValues, type TensorValues } from '../../onnx/tensor.js';
import type { DataType, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto } from '../../onnx/types.js';
import { QuantizationError, type QuantParams, type SchemeName, type WriterName } from '../schemes.js';
import type { SkippedNode } from '../select.js';
import { upgradeOpset } from './opset.js';

/** One rewritten node. Bytes count the weight's float32 data against its codes, scales and zero points. */
export interface NodeReport {
  node: string;
  op: string;
  /** What the node became ('MatMulNBits', 'DequantizeLinear+MatMul', 'MatMulInteger'...). */
  as: string;
  weight: string;
  bits: number;
  /** Block size along the reduction axis; absent for per-channel / per-tensor weights. */
  blockSize?: number;
  /** 'tensor', 'channel' or 'block'. */
  granularity: 'tensor' | 'channel' | 'block';
  /** SQNR of the dequantized weight against the float weight. */
  sqnrDb: number;
  bytesBefore: number;
  bytesAfter: number;
  /** Static QDQ: the activation input quantized before the node, if its range was known. */
  activation?: string;
  /** A weight shared with an earlier node is quantized once; its bytes are counted there. */
  sharedWeight?: boolean;
}

export interface OpsetChange {
  domain: string;
  /** Absent when the domain was not imported before. */
  from?: number;
  to: number;
}

export interface WriterReport {
  scheme: SchemeName;
  writer: WriterName;
  nodes: NodeReport[];
  skipped: SkippedNode[];
  opsetChanges: OpsetChange[];
  irVersion: { from?: number; to?: number };
  /** Things a user should know that are not per node (weights removed from graph inputs, padding...). */
  notes: string[];
  totals: { bytesBefore: number; bytesAfter: number };
}

export interface WriterResult {
  /** A new model; the input model is never modified (untouched tensors are shared, not copied). */
  model: OnnxModel;
  report: WriterReport;
}

/** Activation clipping ranges by tensor name, as calibration produces them. */
export type ActivationRanges = ReadonlyMap<string, readonly [number, number]> | Readonly<Record<string, readonly [number, number]>>;

export function rangeOf(ranges: ActivationRanges | undefined, name: string): readonly [number, number] | undefined {
  if (!ranges) return undefined;
  return ranges instanceof Map ? ranges.get(name) : (ranges as Record<string, readonly [number, number]>)[name];
}

// Ops that only appear in quantized graphs; quantizing such a model again would stack formats ORT cannot fuse
// and double-count the error.
const QUANTIZED_OPS = new Set([
  'QuantizeLinear',
  'DequantizeLinear',
  'DynamicQuantizeLinear',
  'MatMulInteger',
  'ConvInteger',
  'MatMulNBits',
  'MatMulBnb4',
  'MatMulIntegerToFloat',
  'DynamicQuantizeMatMul',
  'DynamicQuantizeLSTM',
  'GatherBlockQuantized',
  'QGemm',
  'QAttention',
  'QEmbedLayerNormalization',
]);

export function isQuantizedOp(op: string): boolean {
  return QUANTIZED_OPS.has(op) || op.startsWith('QLinear') || op.startsWith('QOrdered');
}

/** Throws when the model already holds quantized operators (anywhere, subgraphs included). */
export function refuseQuantized(model: OnnxModel): void {
  for (const { node, graph } of allNodes(model.graph)) {
    const op = node.opType ?? '';
    if (isQuantizedOp(op)) {
      throw new QuantizationError(
        `${model.source}: the model is already quantized (node ${nodeLabel(node, graph)}); quantize the float model instead`,
      );
    }
  }
}

/** A float32 weight's values, from raw data, typed fields or external data. */
export function floatValues(model: OnnxModel, t: TensorProto): Float32Array {
  return tensorValues(t, model.rawBytes(t)).data as Float32Array;
}

/** Bytes a tensor's data takes (raw layout). */
export function tensorBytes(t: TensorProto): number {
  const count = t.dims.reduce((a, b) => a * b, 1);
  return byteSize(dtypeInfo(t.dataType).code, count);
}

/**
 * Collects a writer's changes to one model and applies them all at once to a copy: nodes run instead of
 * others (in the replaced node's place, so the order stays topological), new initializers, and the opsets
 * the new nodes need. Initializers that only replaced nodes read are dropped (from graph.input too).
 */
export class GraphEdit {
  readonly names: NameGenerator;
  private readonly replaced = new Map<NodeProto, NodeProto[]>();
  private readonly added: TensorProto[] = [];
  private readonly opsets = new Map<string, number>();
  private readonly quantizedWeights = new Set<string>();

  constructor(readonly model: OnnxModel) {
    this.names = new NameGenerator(model.proto);
  }

  /** A new initializer named after `base` (made unique); returns its name. */
  tensor(base: string, dtype: DataType, dims: readonly number[], values: TensorValues): string {
    const name = this.names.fresh(base);
    this.added.push(makeTensor(name, dtype, dims, values));
    return name;
  }

  /** A fresh value name made from `base`. */
  value(base: string): string {
    return this.names.fresh(base);
  }

  /** A node named after `options.name` (default the op type), made unique; `outputs` are used as given. */
  node(op: string, inputs: readonly string[], outputs: readonly string[], attrs?: AttrInput, options: NodeOptions = {}): NodeProto {
    return makeNode(op, inputs, outputs, attrs, { ...options, name: this.names.fresh(options.name ?? op) });
  }

  /** Records that a float weight now has a quantized copy (so finish() can tell if the float one must stay). */
  quantized(weight: string): void {
    this.quantizedWeights.add(weight);
  }

  /** `nodes` run in the place of `node`; they must produce its outputs (graph outputs keep their names). */
  replace(node: NodeProto, nodes: readonly NodeProto[]): void {
    if (this.replaced.has(node)) throw new Error(`node ${node.name} is replaced twice`);
    this.replaced.set(node, [...nodes]);
  }

  /** The new nodes need at least this opset of `domain` ('' is the default domain). */
  requireOpset(domain: string, version: number): void {
    this.opsets.set(domain, Math.max(version, this.opsets.get(domain) ?? 0));
  }

  /** The edited copy of the model, and what changed besides the nodes. */
  finish(): {
    model: OnnxModel;
    opsetChanges: OpsetChange[];
    irVersion: { from?: number; to?: number };
    removedInputs: string[];
    /** Quantized weights that other nodes still read, so their float data stays in the model too. */
    keptFloat: string[];
  } {
    const proto = this.model.proto;
    const g = this.model.graph;
    let graph: GraphProto = { ...g, node: g.node.flatMap((n) => this.replaced.get(n) ?? [n]) };

    // Drop initializers that replaced nodes read and nothing reads now.
    const candidates = new Set([...this.replaced.keys()].flatMap((n) => n.input));
    const read = new Set(freeNames({ ...graph, initializer: [], input: [] }));
    const removed = new Set(g.initializer.filter((t) => t.name && candidates.has(t.name) && !read.has(t.name)).map((t) => t.name!));
    graph.initializer = [...g.initializer.filter((t) => !removed.has(t.name ?? '')), ...this.added];
    graph.input = g.input.filter((v) => !removed.has(v.name ?? ''));
    graph.valueInfo = g.valueInfo.filter((v) => !removed.has(v.name ?? ''));
    const removedInputs = g.input.filter((v) => removed.has(v.name ?? '')).map((v) => v.name!);

    const opsetImport: OperatorSetIdProto[] = proto.opsetImport.map((o) => ({ ...o }));
    const opsetChanges: OpsetChange[] = [];
    for (const [domain, version] of this.opsets) {
      const entry = opsetImport.find((o) => (o.domain ?? '') === domain || (domain === '' && o.domain === 'ai.onnx'));
      const from = entry?.version;
      if (from !== undefined && from >= version) continue;
      if (domain === '' && from !== undefined) graph = upgradeOpset(graph, from, version, this.names, this.model.source);
      if (entry) entry.version = version;
      else opsetImport.push({ domain, version });
      opsetChanges.push({ domain, ...(from !== undefined ? { from } : {}), to: version });
    }

    // IR 3 wanted every initializer listed as a graph input; the new ones are not, so such models move to IR 4.
    // A raised default opset needs the IR version that came with it.
    const defaultOpset = opsetImport.find((o) => (o.domain ?? '') === '' || o.domain === 'ai.onnx')?.version;
    let ir = proto.irVersion;
    const need = Math.max(this.added.length ? 4 : 0, opsetChanges.some((c) => c.domain === '') && defaultOpset ? irVersionForOpset(defaultOpset) : 0);
    if (ir !== undefined && ir < need) ir = need;

    const out: ModelProto = { ...proto, opsetImport, graph, ...(ir !== undefined ? { irVersion: ir } : {}) };
    return {
      model: new OnnxModel(out, this.model.baseDir, this.model.source),
      opsetChanges,
      irVersion: ir !== proto.irVersion ? { from: proto.irVersion, to: ir } : {},
      removedInputs,
      keptFloat: [...this.quantizedWeights].filter((w) => read.has(w)),
    };
  }
}

/** The report with totals computed and the edit's side effects written out as notes. */
export function makeReport(
  params: QuantParams,
  nodes: NodeReport[],
  skipped: SkippedNode[],
  finished: ReturnType<GraphEdit['finish']>,
  notes: string[] = [],
): WriterReport {
  const all = [...notes];
  for (const c of finished.opsetChanges) {
    const name = c.domain || 'ai.onnx';
    all.push(c.from === undefined ? `imported opset ${name} ${c.to}` : `raised opset ${name} from ${c.from} to ${c.to}`);
  }
  if (finished.irVersion.to !== undefined) all.push(`raised IR version from ${finished.irVersion.from} to ${finished.irVersion.to}`);
  if (finished.removedInputs.length) {
    all.push(`quantized weights removed from the graph inputs (they were overridable initializers): ${finished.removedInputs.join(', ')}`);
  }
  if (finished.keptFloat.length) {
    all.push(`float weights also read by nodes left in float, so kept beside their quantized copies: ${finished.keptFloat.join(', ')}`);
  }
  const counted = nodes.filter((n) => !n.sharedWeight);
  return {
    scheme: params.scheme,
    writer: params.writer,
    nodes,
    skipped,
    opsetChanges: finished.opsetChanges,
    irVersion: finished.irVersion,
    notes: all,
    totals: {
      bytesBefore: counted.reduce((a, n) => a + n.bytesBefore, 0),
      bytesAfter: counted.reduce((a, n) => a + n.bytesAfter, 0),
    },
  };
}
