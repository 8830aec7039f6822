// A quantization plan: for every node to be quantized, its own format, weight bits, granularity, symmetry and
// (static QDQ) activation type. Quantization is plan -> solve -> rewrite: a plan comes from a named scheme (one
// format everywhere) or from a plan file (plan-file.ts: any mix), a weight solver turns each float weight into
// codes (solvers.ts), and one rewriter per format emits the graph (writers/). One model may mix formats, e.g.
// MatMulNBits 4-bit for the MLP, 8-bit QDQ for attention, float for lm_head.
import { attrInt } from '../onnx/attributes.js';
import { GraphIndex, nodeLabel } from '../onnx/graph.js';
import type { OnnxModel } from '../onnx/model.js';
import { dtypeName } from '../onnx/dtypes.js';
import { DataType, type NodeProto } from '../onnx/types.js';
import type { Granularity, QuantSpec } from './quantizers.js';
import { QuantOptionError, type ActivationParams, type QuantParams, type SchemeName, type SchemeWriter, type WeightParams, type WriterName } from './schemes.js';
import { isDefaultDomain, isFloatWeight, isSelected, selectTargets, type NodeSelection, type SkippedNode, type WeightTarget } from './select.js';

export { isDefaultDomain };

/** How a node is written: one of the three weight writers, an embedding lookup, or left in float. */
export type NodeFormat = WriterName | 'gather-block';
export const NODE_FORMATS: readonly (NodeFormat | 'float')[] = ['qdq', 'matmulnbits', 'dynamic', 'gather-block', 'float'];

/** Weights quantized in blocks along the reduction axis (MatMulNBits, GatherBlockQuantized need them). */
export type BlockedWeights = WeightParams & { blockSize: number };

export type NodePlan =
  /** DequantizeLinear of integer weights before the float op; with `activations`, Q/DQ of its input too. */
  | { format: 'qdq'; weights: WeightParams; activations?: ActivationParams; padK: boolean }
  /** com.microsoft MatMulNBits: packed blocked weights, accuracy_level for the kernel. */
  | { format: 'matmulnbits'; weights: BlockedWeights; accuracyLevel: number; padK: boolean }
  /** DynamicQuantizeLinear + MatMulInteger. */
  | { format: 'dynamic'; weights: WeightParams }
  /** com.microsoft GatherBlockQuantized for an embedding table. */
  | { format: 'gather-block'; weights: BlockedWeights };

/** One node the plan quantizes: where its weight is and how it is written. */
export interface PlannedNode {
  target: WeightTarget;
  plan: NodePlan;
}

export type PlanOrigin = { kind: 'scheme'; scheme: SchemeName; writer: SchemeWriter } | { kind: 'file'; path: string };

export interface QuantPlan {
  origin: PlanOrigin;
  /** In rewrite order: weight ops in graph order, then embedding lookups in graph order. */
  nodes: PlannedNode[];
  /** Nodes considered that cannot be quantized as asked, with the reason; they stay float. */
  skipped: SkippedNode[];
  /** Nodes the plan keeps in float on purpose (format 'float'). */
  float: string[];
}

/** The quantizer's spec for a planned node's weight: what the solver must produce. */
export function weightSpec(p: PlannedNode): Required<QuantSpec> {
  const { plan, target: t } = p;
  const w = plan.weights;
  if (plan.format === 'matmulnbits' || plan.format === 'gather-block') {
    // Both kernels take unsigned codes with MLAS's arithmetic (schemes.ts resolves signed = false for them).
    return { bits: w.bits, signed: false, symmetric: w.symmetric, granularity: { kind: 'block', axis: t.reductionAxis, blockSize: w.blockSize! }, convention: 'mlas' };
  }
  return { bits: w.bits, signed: w.signed, symmetric: w.symmetric, granularity: granularityOf(t, w), convention: w.convention };
}

function granularityOf(t: WeightTarget, w: WeightParams): Granularity {
  if (w.blockSize !== undefined) return { kind: 'block', axis: t.reductionAxis, blockSize: w.blockSize };
  return w.perChannel ? { kind: 'channel', axis: t.channelAxis } : { kind: 'tensor' };
}

/** Activations whose ranges the plan needs from calibration (static QDQ inputs), in plan order. */
export function plannedActivations(plan: QuantPlan): string[] {
  return [...new Set(plan.nodes.filter((n) => n.plan.format === 'qdq' && n.plan.activations).map((n) => n.target.activation))];
}

/** The plan as JSON-safe rows, one per node: what reports print and what `--save-plan` writes. */
export interface PlanRow {
  node: string;
  op: string;
  format: NodeFormat | 'float';
  weight?: string;
  bits?: number;
  granularity?: Granularity['kind'];
  blockSize?: number;
  symmetric?: boolean;
  activations?: 'uint8' | 'int8';
  accuracyLevel?: number;
  /** Present when the plan refuses to pad a K the block size does not divide. */
  padding?: 'refuse';
}

export function planRows(plan: QuantPlan): PlanRow[] {
  const rows: PlanRow[] = plan.nodes.map(({ target: t, plan: p }) => {
    const spec = weightSpec({ target: t, plan: p });
    return {
      node: t.label,
      op: t.op,
      format: p.format,
      weight: t.weight.name ?? '',
      bits: p.weights.bits,
      granularity: spec.granularity.kind,
      ...(spec.granularity.kind === 'block' ? { blockSize: spec.granularity.blockSize } : {}),
      symmetric: p.weights.symmetric,
      ...(p.format === 'qdq' && p.activations ? { activations: p.activations.signed ? 'int8' : 'uint8' } : {}),
      ...(p.format === 'matmulnbits' ? { accuracyLevel: p.accuracyLevel } : {}),
      ...('padK' in p && !p.padK && spec.granularity.kind === 'block' ? { padding: 'refuse' as const } : {}),
    } satisfies PlanRow;
  });
  return [...rows, ...plan.float.map((node) => ({ node, op: '', format: 'float' as const }))];
}

/** The node plan a named scheme gives every node its writer handles. */
export function schemeNodePlan(params: QuantParams): NodePlan {
  const w = params.weights;
  switch (params.writer) {
    case 'qdq':
      return { format: 'qdq', weights: w, ...(params.activations ? { activations: params.activations } : {}), padK: params.padK };
    case 'matmulnbits':
      return { format: 'matmulnbits', weights: w as BlockedWeights, accuracyLevel: params.accuracyLevel, padK: params.padK };
    case 'dynamic':
      return { format: 'dynamic', weights: w };
    case 'fp16':
      throw new QuantOptionError(`scheme ${params.scheme} converts the whole model to float16: it has no per-node plan`);
  }
}

/**
 * A named scheme as a plan: every node of the scheme's op types that the selection keeps and the writer can
 * rewrite, in graph order, then (MatMulNBits schemes) the embedding lookups. Nodes the writer cannot rewrite
 * are skipped with the reason, as the scheme writers always did.
 */
export function planFromScheme(model: OnnxModel, params: QuantParams, selection: NodeSelection = {}): QuantPlan {
  const plan = schemeNodePlan(params);
  const { targets, skipped } = selectTargets(model, selection, params.writer, params.opTypes);
  const nodes: PlannedNode[] = targets.map((target) => ({ target, plan }));
  if (params.quantizeEmbeddings && params.weights.blockSize !== undefined) {
    const embeddings = embeddingLookups(model, new GraphIndex(model.graph), selection, params.weights.bits);
    const gather: NodePlan = { format: 'gather-block', weights: params.weights as BlockedWeights };
    nodes.push(...embeddings.targets.map((target) => ({ target, plan: gather })));
    skipped.push(...embeddings.skipped);
  }
  return { origin: { kind: 'scheme', scheme: params.scheme, writer: params.writer }, nodes, skipped, float: [] };
}

/**
 * Gathers of a float 2-D table that is a token embedding: rows as wide as some MatMul weight's side, or a table
 * an lm_head also reads (tied, through Transpose). Rotary cos/sin caches and other small lookup tables are not
 * embeddings and are left alone silently. Those that GatherBlockQuantized cannot take are skipped with the reason.
 */
export function embeddingLookups(
  model: OnnxModel,
  index: GraphIndex,
  selection: NodeSelection,
  bits: number,
): { targets: WeightTarget[]; skipped: SkippedNode[] } {
  const graph = model.graph;
  const targets: WeightTarget[] = [];
  const skipped: SkippedNode[] = [];
  if (8 % bits !== 0) return { targets, skipped };
  const widths = new Set<number>();
  const tied = new Set<string>();
  for (const n of graph.node) {
    if (n.opType === 'Transpose' && n.input[0]) tied.add(n.input[0]);
    if (n.opType !== 'MatMul' && n.opType !== 'Gemm') continue;
    const w = index.initializer(n.input[1] ?? '');
    if (w?.dims.length === 2) widths.add(w.dims[0]).add(w.dims[1]);
    if (n.input[1]) tied.add(n.input[1]);
  }
  for (const node of graph.node) {
    if (node.opType !== 'Gather' || !isDefaultDomain(node)) continue;
    const verdict = inspectGather(node, index, bits, widths, tied);
    if (verdict === undefined) continue;
    const table = node.input[0]!;
    if (!isSelected(node, selection, table)) continue;
    const label = node.name || nodeLabel(node, graph);
    if (verdict !== 'ok') skipped.push({ node: label, op: 'Gather', reason: verdict });
    else targets.push(gatherTarget(node, label, index));
  }
  return { targets, skipped };
}

/** A Gather of a table as a weight target: rows are channels, blocks run along each row (axis 1). */
export function gatherTarget(node: NodeProto, label: string, index: GraphIndex): WeightTarget {
  return { node, label, op: 'Gather', weight: index.initializer(node.input[0]!)!, weightInput: 0, channelAxis: 0, reductionAxis: 1, activation: node.input[1]! };
}

/**
 * Table types GatherBlockQuantized can replace: its output takes the scales' type, and ONNX Runtime 1.30's CPU
 * kernel is registered for float32 and float16 scales only (a bfloat16 table stays a float Gather, reported skipped).
 */
const EMBEDDING_TYPES: readonly number[] = [DataType.FLOAT, DataType.FLOAT16];

/** Whether a Gather reads an embedding table GatherBlockQuantized can hold: 'ok', the reason not, or undefined (not a table lookup). */
function inspectGather(
  node: NodeProto,
  index: GraphIndex,
  bits: number,
  embeddingWidths: ReadonlySet<number>,
  tiedTables: ReadonlySet<string>,
): string | undefined | 'ok' {
  const t = index.initializer(node.input[0] ?? '');
  if (!t || t.dims.length !== 2 || !isFloatWeight(t)) return undefined;
  if (!embeddingWidths.has(t.dims[1]) && !tiedTables.has(t.name ?? '')) return undefined;
  return gatherVerdict(node, index, bits);
}

/** Why GatherBlockQuantized cannot replace this table Gather, or 'ok'. */
export function gatherVerdict(node: NodeProto, index: GraphIndex, bits: number): string | 'ok' {
  const t = index.initializer(node.input[0] ?? '');
  if (!t || t.dims.length !== 2 || !isFloatWeight(t)) return `data ('${node.input[0] ?? ''}') is not a 2-D float32 initializer or a float16 one`;
  if (!EMBEDDING_TYPES.includes(t.dataType ?? 0)) {
    return `a ${dtypeName(t.dataType)} table: ONNX Runtime's GatherBlockQuantized has float32 and float16 kernels only`;
  }
  const axis = attrInt(node, 'axis', 0);
  if (axis !== 0 && axis !== -2) return `gathers along axis ${axis}; GatherBlockQuantized with uint8 data gathers rows (axis 0) only`;
  if ((t.dims[1] * bits) % 8 !== 0) return `rows of ${t.dims[1]} x ${bits}-bit codes are not a whole number of bytes`;
  if (!node.input[1] || index.initializer(node.input[1])) return 'the indices are a constant (left to constant folding)';
  return 'ok';
}
