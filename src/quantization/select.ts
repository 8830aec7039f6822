// Which nodes a writer rewrites: the user's choice (op types, names, patterns to include and exclude) narrowed
// to what ONNX Runtime can execute once rewritten. A node that is considered but cannot be rewritten comes back
// in `skipped` with the reason, so nothing is left in float silently.
import { attrFloat, attrInt } from '../onnx/attributes.js';
import { dtypeName } from '../onnx/dtypes.js';
import { GraphIndex, nodeLabel } from '../onnx/graph.js';
import type { OnnxModel } from '../onnx/model.js';
import { DataType, type NodeProto, type TensorProto } from '../onnx/types.js';
import type { SchemeWriter } from './schemes.js';

/** An exact node or weight name, or a pattern tested against both. */
export type NamePattern = string | RegExp;

export interface NodeSelection {
  /** Op types to consider; default every op type the writer handles. Narrowing only: others are ignored. */
  opTypes?: readonly string[];
  /** When non-empty, only nodes matching one of these are rewritten. */
  include?: readonly NamePattern[];
  /** Nodes matching one of these are left alone (exclude wins over include). */
  exclude?: readonly NamePattern[];
}

/** A node whose constant weight will be quantized, with the facts writers need about its layout. */
export interface WeightTarget {
  node: NodeProto;
  /** Node name for reports (its label when it has no name). */
  label: string;
  op: string;
  weight: TensorProto;
  /** Position of the weight among the node's inputs. */
  weightInput: number;
  /** Axis of the weight holding output channels (N for MatMul/Gemm, M for Conv). */
  channelAxis: number;
  /** Axis summed over by the op (K for MatMul/Gemm, input channels for Conv): where blocks run. */
  reductionAxis: number;
  /** The activation input the weight multiplies (A for MatMul/Gemm, X for Conv). */
  activation: string;
  /** Gemm only: its C input (a 1-D [N] initializer when a writer needs it as a bias). */
  bias?: TensorProto;
}

/**
 * Element types of the weights the writers quantize. The weight's type is the node's float type (MatMul, Gemm
 * and Conv require the activation to share it), so scales, biases and dequantized values are written in it.
 */
export type FloatType = DataType.FLOAT | DataType.FLOAT16 | DataType.BFLOAT16;
const FLOAT_TYPES: readonly number[] = [DataType.FLOAT, DataType.FLOAT16, DataType.BFLOAT16];

/** Whether a tensor holds float32, float16 or bfloat16 values (the weights writers read, decoded to float32). */
export function isFloatWeight(t: TensorProto): boolean {
  return FLOAT_TYPES.includes(t.dataType ?? 0);
}

export interface SkippedNode {
  node: string;
  op: string;
  reason: string;
}

export interface Selection {
  targets: WeightTarget[];
  skipped: SkippedNode[];
}

/** Op types each writer can rewrite at all (the fp16 conversion rewrites the whole model, no node as a target). */
export const WRITER_OPS: Readonly<Record<SchemeWriter, readonly string[]>> = {
  matmulnbits: ['MatMul', 'Gemm'],
  qdq: ['MatMul', 'Gemm', 'Conv'],
  dynamic: ['MatMul', 'Gemm'], // Gemm only to report it as skipped
  fp16: [],
};

function matches(p: NamePattern, names: readonly string[]): boolean {
  if (typeof p === 'string') return names.includes(p);
  return names.some((n) => {
    p.lastIndex = 0; // a /g or /y pattern would otherwise carry state between tests
    return p.test(n);
  });
}

/** Whether the user's selection keeps a node, judged by its name and the names of its inputs (weights). */
export function isSelected(node: NodeProto, selection: NodeSelection, weightName?: string): boolean {
  if (selection.opTypes && !selection.opTypes.includes(node.opType ?? '')) return false;
  const names = [node.name ?? '', ...(weightName ? [weightName] : [])].filter(Boolean);
  if (selection.exclude?.some((p) => matches(p, names))) return false;
  if (selection.include?.length) return selection.include.some((p) => matches(p, names));
  return true;
}

/**
 * The main graph's nodes the writer will rewrite, in graph order, and the considered nodes it will not. Nodes
 * in subgraphs (If/Loop/Scan bodies) are not quantized. `opTypes` is what the scheme rewrites; the selection
 * may narrow it further.
 */
export function selectTargets(model: OnnxModel, selection: NodeSelection, writer: SchemeWriter, opTypes: readonly string[]): Selection {
  const graph = model.graph;
  const index = new GraphIndex(graph);
  const ops = opTypes.filter((op) => WRITER_OPS[writer].includes(op));
  const targets: WeightTarget[] = [];
  const skipped: SkippedNode[] = [];
  for (const node of graph.node) {
    const op = node.opType ?? '';
    if (!isDefaultDomain(node) || !ops.includes(op)) continue;
    if (!isSelected(node, selection, node.input[1])) continue;
    const verdict = inspectNode(node, index, writer);
    if (typeof verdict === 'string') skipped.push({ node: node.name || nodeLabel(node, graph), op, reason: verdict });
    else targets.push(verdict);
  }
  return { targets, skipped };
}

export function isDefaultDomain(node: NodeProto): boolean {
  return (node.domain ?? '') === '' || node.domain === 'ai.onnx';
}

/** The node as a weight target for this writer, or why the writer cannot rewrite it. */
export function inspectNode(node: NodeProto, index: GraphIndex, writer: SchemeWriter): WeightTarget | string {
  if (!WRITER_OPS[writer].includes(node.opType ?? '')) return `${writer} does not rewrite ${node.opType} nodes (it rewrites ${WRITER_OPS[writer].join(', ')})`;
  const verdict = inspect(node, index, writer);
  if (typeof verdict === 'string') return verdict;
  return { ...verdict, node, label: node.name || nodeLabel(node, index.graph), op: node.opType ?? '', weightInput: 1 };
}

type Facts = Omit<WeightTarget, 'node' | 'label' | 'op' | 'weightInput'>;

/** The target's facts, or why the node cannot be rewritten by this writer. */
function inspect(node: NodeProto, index: GraphIndex, writer: SchemeWriter): Facts | string {
  const op = node.opType ?? '';
  const weightName = node.input[1] ?? '';
  const activation = node.input[0] ?? '';
  const weight = index.initializer(weightName);
  const what = op === 'Conv' ? 'W' : 'B';
  if (!weight) return `${what} ('${weightName}') is not a constant initializer`;
  if (!isFloatWeight(weight)) return `${what} ('${weightName}') is not float32, float16 or bfloat16`;
  const floatType = weight.dataType;
  if (!activation || index.initializer(activation)) return `the activation input is not a runtime value`;
  const rank = weight.dims.length;

  if (op === 'Conv') {
    if (rank < 3) return `W ('${weightName}') has rank ${rank}, expected 3 or more`;
    return { weight, channelAxis: 0, reductionAxis: 1, activation };
  }
  if (rank !== 2) return `${what} ('${weightName}') is ${rank}-D; only 2-D weights are quantized`;
  if (op === 'MatMul') return { weight, channelAxis: 1, reductionAxis: 0, activation };

  // Gemm: Y = alpha * A' B' + beta * C.
  if (writer === 'dynamic') return 'dynamic int8 rewrites MatMul only (as ORT quantize_dynamic does); this Gemm stays float';
  const transB = attrInt(node, 'transB', 0) !== 0;
  const facts: Facts = { weight, channelAxis: transB ? 0 : 1, reductionAxis: transB ? 1 : 0, activation };
  if (writer !== 'matmulnbits') return facts; // QDQ only swaps B for DequantizeLinear(B): Gemm keeps its attributes
  if (attrInt(node, 'transA', 0) !== 0) return 'Gemm with transA=1 has no MatMulNBits form';
  if (attrFloat(node, 'alpha', 1) !== 1) return 'Gemm with alpha != 1 has no MatMulNBits form';
  const cName = node.input[2] ?? '';
  if (!cName) return facts;
  const n = weight.dims[transB ? 0 : 1];
  const c = index.initializer(cName);
  if (attrFloat(node, 'beta', 1) !== 1) return 'Gemm with beta != 1 has no MatMulNBits form';
  if (!c || c.dataType !== floatType) return `C ('${cName}') is not a ${dtypeName(floatType)} initializer like B, so it cannot become the bias`;
  const count = c.dims.reduce((a, b) => a * b, 1);
  if (count !== n || c.dims.length > 2 || (c.dims.length === 2 && c.dims[0] !== 1)) {
    return `C ('${cName}') of shape [${c.dims.join(', ')}] is not a per-column bias of ${n}`;
  }
  return { ...facts, bias: c };
}
